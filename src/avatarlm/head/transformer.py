"""Frame transformer head: the tokens of one frame attend to each other while being denoised.

Full self-attention over the frame's T tokens keeps structure (a mouth) consistent across token borders,
which a per-token head cannot do. Each token gets a learned slot embedding and its own condition vector,
added to the input and used (with the timestep) for AdaLN.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import Context, FlowHead
from .config import HeadConfig
from .layers import FinalLayer, SplitModulation, modulate


class FrameAttention(nn.Module):
    """Multi-head self-attention over the tokens of a frame (no mask)."""

    def __init__(self, width: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, w = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.num_heads, w // self.num_heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v)
        return self.out(y.transpose(1, 2).reshape(b, t, w))


class FrameBlock(nn.Module):
    """DiT block with per-token AdaLN: attention then MLP, each gated."""

    def __init__(self, width: int, num_heads: int, hidden: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.attn = FrameAttention(width, num_heads)
        self.norm2 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.mlp = nn.Sequential(
            nn.Linear(width, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, width)
        )

    def forward(self, x: torch.Tensor, *mods: torch.Tensor) -> torch.Tensor:
        shift1, scale1, gate1, shift2, scale2, gate2 = mods
        x = torch.addcmul(x, gate1, self.attn(modulate(self.norm1(x), shift1, scale1)))
        return torch.addcmul(x, gate2, self.mlp(modulate(self.norm2(x), shift2, scale2)))


class FrameTransformerHead(FlowHead):
    """Denoises all ``tokens_per_frame`` tokens of a frame jointly."""

    def __init__(self, config: HeadConfig) -> None:
        super().__init__(config)
        w = config.width
        self.in_proj = nn.Linear(config.in_channels, w)
        self.cond_proj = nn.Linear(config.cond_dim, w)
        self.pos_embed = nn.Parameter(torch.zeros(1, config.tokens_per_frame, w))
        self.blocks = nn.ModuleList(
            FrameBlock(w, config.num_heads, config.hidden_width) for _ in range(config.depth)
        )
        self.modulation = SplitModulation(w, (6 * config.depth + 2) * w)
        self.final = FinalLayer(w, config.in_channels)
        self._initialize()
        nn.init.normal_(self.pos_embed, std=0.02)

    def _check_tokens(self, t: int) -> None:
        if t != self.config.tokens_per_frame:
            raise ValueError(
                f"the transformer head needs tokens_per_frame={self.config.tokens_per_frame} tokens, got T={t}"
            )

    def encode_cond(self, cond: torch.Tensor) -> Context:
        c = self.cond_proj(cond)
        return c + self.pos_embed, self.modulation.cond_part(c)

    def denoise(self, x_t: torch.Tensor, time_mod: torch.Tensor, context: Context) -> torch.Tensor:
        token_bias, cond_mod = context
        mods = self.modulation(time_mod, cond_mod).chunk(6 * len(self.blocks) + 2, dim=-1)
        h = self.in_proj(x_t) + token_bias
        for i, block in enumerate(self.blocks):
            h = block(h, *mods[6 * i : 6 * i + 6])
        return self.final(h, mods[-2], mods[-1])
