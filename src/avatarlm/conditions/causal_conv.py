"""Causal 1-D convolution blocks that run offline over a whole sequence or step by step with a cache.

Tensors are channels-last: (batch, time, channels). A causal conv gathers its dilated taps by slicing and
applies one Linear, which is much faster on CPU than a dilated ``conv1d`` at these sizes. Offline, the
input is padded on the left with zeros; in streaming, the cache starts as those zeros and then holds the
last inputs, so both paths apply the same weights to the same values.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class CausalConv1d(nn.Module):
    """Output at step t sees inputs t - (kernel - 1) * dilation, ..., t (taps ``dilation`` apart)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int = 1) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.kernel_size = kernel_size
        self.dilation = dilation
        self.context = (kernel_size - 1) * dilation
        self.linear = nn.Linear(in_channels * kernel_size, out_channels)

    def _taps(self, padded: torch.Tensor) -> torch.Tensor:
        steps = padded.shape[1] - self.context
        d = self.dilation
        return torch.cat([padded[:, j * d : j * d + steps] for j in range(self.kernel_size)], dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self._taps(F.pad(x, (0, 0, self.context, 0))))

    def initial_cache(self, batch: int, like: torch.Tensor) -> torch.Tensor:
        return like.new_zeros(batch, self.context, self.in_channels)

    def step(self, x: torch.Tensor, cache: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Outputs for new steps ``x`` (B, k, C) given the last ``context`` inputs; also the new cache."""
        full = torch.cat([cache, x], dim=1)
        return self.linear(self._taps(full)), full[:, full.shape[1] - self.context :]


class CausalResBlock(nn.Module):
    """x + linear(silu(causal_conv(silu(norm(x)))))."""

    def __init__(self, channels: int, kernel_size: int, dilation: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels)
        self.conv = CausalConv1d(channels, channels, kernel_size, dilation)
        self.out = nn.Linear(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.out(F.silu(self.conv(F.silu(self.norm(x)))))

    def step(self, x: torch.Tensor, cache: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y, cache = self.conv.step(F.silu(self.norm(x)), cache)
        return x + self.out(F.silu(y)), cache


class CausalConvStack(nn.Module):
    """Residual causal blocks with dilations 1, 2, 4, ...; the receptive field grows exponentially."""

    def __init__(self, channels: int, layers: int, kernel_size: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(CausalResBlock(channels, kernel_size, 2**i) for i in range(layers))

    def _blocks(self) -> list[CausalResBlock]:
        return [b for b in self.blocks if isinstance(b, CausalResBlock)]

    @property
    def receptive_field(self) -> int:
        return 1 + sum(b.conv.context for b in self._blocks())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x

    def initial_cache(self, batch: int, like: torch.Tensor) -> list[torch.Tensor]:
        return [b.conv.initial_cache(batch, like) for b in self._blocks()]

    def step(self, x: torch.Tensor, caches: list[torch.Tensor]) -> torch.Tensor:
        """Run new steps ``x`` (B, k, C), replacing ``caches`` entries in place (one per block)."""
        for i, block in enumerate(self._blocks()):
            x, caches[i] = block.step(x, caches[i])
        return x
