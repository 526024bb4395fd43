"""Building blocks shared by the heads: timestep embedding, AdaLN modulation, split modulation tables."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class TimestepEmbedding(nn.Module):
    """Flow time ``t`` in [0, 1], shape (N,) -> (N, width): sinusoidal features (of 1000 t) and an MLP."""

    freqs: torch.Tensor

    def __init__(self, width: int, frequency_dim: int = 256, max_period: float = 10000.0) -> None:
        super().__init__()
        half = frequency_dim // 2
        freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
        self.register_buffer("freqs", freqs, persistent=False)
        self.fc1 = nn.Linear(frequency_dim, width)
        self.fc2 = nn.Linear(width, width)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        args = (1000.0 * t.float())[:, None] * self.freqs[None]
        features = torch.cat([torch.cos(args), torch.sin(args)], dim=-1).to(self.fc1.weight.dtype)
        return self.fc2(F.silu(self.fc1(features)))


class SplitModulation(nn.Module):
    """AdaLN parameters from time and condition: ``A(silu(t_emb)) + B(silu(cond_emb))``.

    Splitting the two sources (instead of ``A(silu(t_emb + cond_emb))``) lets sampling compute the
    condition part once per frame and only the tiny time part per Euler step. ``zero_init`` closes every
    gate, so every block starts as the identity.
    """

    def __init__(self, width: int, out_features: int) -> None:
        super().__init__()
        self.time_linear = nn.Linear(width, out_features)
        self.cond_linear = nn.Linear(width, out_features, bias=False)  # the time part carries the bias

    def zero_init(self) -> None:
        nn.init.zeros_(self.time_linear.weight)
        nn.init.zeros_(self.time_linear.bias)
        nn.init.zeros_(self.cond_linear.weight)

    def time_part(self, t_emb: torch.Tensor) -> torch.Tensor:
        """(N, width) -> (N, out_features); fixed for a fixed sampling grid."""
        return self.time_linear(F.silu(t_emb))

    def cond_part(self, cond_emb: torch.Tensor) -> torch.Tensor:
        """(B, T, width) -> (B, T, out_features); reused across sampling steps."""
        return self.cond_linear(F.silu(cond_emb))

    def forward(self, time_part: torch.Tensor, cond_part: torch.Tensor) -> torch.Tensor:
        """Time part (B or 1, out) + condition part (B, T, out) -> (B, T, out)."""
        return time_part.unsqueeze(1) + cond_part


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """AdaLN: ``x * (1 + scale) + shift``."""
    return torch.addcmul(shift, x, 1.0 + scale)


def init_linear_xavier(module: nn.Module) -> None:
    """Xavier-uniform weights and zero biases for every Linear in ``module`` (DiT/MAR initialisation)."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class FinalLayer(nn.Module):
    """LayerNorm, AdaLN shift/scale, linear projection to the latent channels (zero-initialised)."""

    def __init__(self, width: int, out_channels: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(width, out_channels)

    def zero_init(self) -> None:
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        return self.linear(modulate(self.norm(x), shift, scale))
