"""Toy problems for the flow heads: 2-D tokens whose distribution a short training must learn."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from avatarlm.head import FlowHead, HeadConfig, build_head

TOKENS, CHANNELS, COND_DIM = 4, 2, 8
CENTERS = torch.tensor([[1.5, 1.5], [-1.5, 1.5], [-1.5, -1.5], [1.5, -1.5]])


def mixture_batch(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each token's condition (one-hot) selects one of four Gaussian modes: (x, cond, mode)."""
    mode = torch.randint(0, len(CENTERS), (n, TOKENS), generator=g)
    cond = F.one_hot(mode, COND_DIM).float()
    x = CENTERS[mode] + 0.1 * torch.randn(n, TOKENS, CHANNELS, generator=g)
    return x, cond, mode


def slot_cond(n: int) -> torch.Tensor:
    """A condition that names only the token slot (it carries no information about the sign)."""
    return torch.eye(COND_DIM)[:TOKENS].expand(n, TOKENS, COND_DIM)


def shared_sign_batch(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Every token is near (+1, 0) or (-1, 0), all tokens of a frame with the same random sign."""
    sign = torch.randint(0, 2, (n, 1, 1), generator=g).float() * 2 - 1
    x = sign * torch.tensor([1.0, 0.0]) + 0.1 * torch.randn(n, TOKENS, CHANNELS, generator=g)
    return x, slot_cond(n)


def train_toy_head(architecture: str, batch_fn, steps: int, batch: int = 32, lr: float = 2e-3) -> FlowHead:
    """A small head trained with AdamW on ``batch_fn(batch, generator)[:2]`` for ``steps`` steps."""
    torch.manual_seed(0)
    cfg = HeadConfig(
        architecture=architecture,
        in_channels=CHANNELS,
        tokens_per_frame=TOKENS,
        cond_dim=COND_DIM,
        width=32,
        depth=2,
        num_heads=2,
        frequency_dim=32,
    )
    head = build_head(cfg)
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=0.0)
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x, cond = batch_fn(batch, g)[:2]
        loss = head.loss(x, cond, generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return head.eval()
