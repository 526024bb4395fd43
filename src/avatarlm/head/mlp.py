"""MAR-style per-token head: a residual MLP with AdaLN, applied to every token independently."""

from __future__ import annotations

import torch
from torch import nn

from .base import Context, FlowHead
from .config import HeadConfig
from .layers import FinalLayer, SplitModulation, modulate


class AdaLNResBlock(nn.Module):
    """``x + gate * MLP(modulate(LN(x), shift, scale))``."""

    def __init__(self, width: int, hidden: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.SiLU(), nn.Linear(hidden, width))

    def forward(
        self, x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor, gate: torch.Tensor
    ) -> torch.Tensor:
        return torch.addcmul(x, gate, self.mlp(modulate(self.norm(x), shift, scale)))


class MLPHead(FlowHead):
    """Each token is denoised alone from its own condition vector; any number of tokens per frame."""

    def __init__(self, config: HeadConfig) -> None:
        super().__init__(config)
        w = config.width
        self.in_proj = nn.Linear(config.in_channels, w)
        self.cond_proj = nn.Linear(config.cond_dim, w)
        self.blocks = nn.ModuleList(AdaLNResBlock(w, config.hidden_width) for _ in range(config.depth))
        self.modulation = SplitModulation(w, (3 * config.depth + 2) * w)
        self.final = FinalLayer(w, config.in_channels)
        self._initialize()

    def encode_cond(self, cond: torch.Tensor) -> Context:
        return (self.modulation.cond_part(self.cond_proj(cond)),)

    def denoise(self, x_t: torch.Tensor, time_mod: torch.Tensor, context: Context) -> torch.Tensor:
        mods = self.modulation(time_mod, context[0]).chunk(3 * len(self.blocks) + 2, dim=-1)
        h = self.in_proj(x_t)
        for i, block in enumerate(self.blocks):
            h = block(h, *mods[3 * i : 3 * i + 3])
        return self.final(h, mods[-2], mods[-1])
