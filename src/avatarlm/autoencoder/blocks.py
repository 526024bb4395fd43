"""Spatial DC-AE blocks: residual autoencoding with space-to-channel / channel-to-space shortcuts.

All blocks work on single frames, shape (N, C, H, W).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ChannelRMSNorm(nn.Module):
    """RMS norm over the channel dimension of (N, C, H, W), per pixel (so per frame and causal)."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + self.eps)
        return x * scale * self.weight[:, None, None]


class ResBlock(nn.Module):
    """DC-AE residual block: x + norm(conv(silu(conv(x))))."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.norm = ChannelRMSNorm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.norm(self.conv2(F.silu(self.conv1(x))))


def space_to_channel_average(x: torch.Tensor, factor: int, out_channels: int) -> torch.Tensor:
    """Pixel-unshuffle by ``factor`` then average groups of channels down to ``out_channels``."""
    if factor > 1:
        x = F.pixel_unshuffle(x, factor)
    n, c, h, w = x.shape
    group = c // out_channels
    if group == 1:
        return x
    return x.reshape(n, out_channels, group, h, w).mean(dim=2)


def channel_to_space_duplicate(x: torch.Tensor, factor: int, out_channels: int) -> torch.Tensor:
    """Repeat channels up to ``out_channels * factor**2`` then pixel-shuffle by ``factor``."""
    repeats = out_channels * factor * factor // x.shape[1]
    if repeats > 1:
        x = x.repeat_interleave(repeats, dim=1)
    return F.pixel_shuffle(x, factor) if factor > 1 else x


class DownBlock(nn.Module):
    """Halve the resolution: strided conv plus a space-to-channel averaging shortcut."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1)
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) + space_to_channel_average(x, 2, self.out_channels)


class UpBlock(nn.Module):
    """Double the resolution: conv + pixel shuffle plus a channel-to-space duplicating shortcut."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels * 4, kernel, padding=kernel // 2)
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # pixel_shuffle is linear, so conv and duplicated shortcut share one shuffle
        repeats = self.out_channels * 4 // x.shape[1]
        shortcut = x.repeat_interleave(repeats, dim=1) if repeats > 1 else x
        return F.pixel_shuffle(self.conv(x) + shortcut, 2)


class LatentProjection(nn.Module):
    """Width change at the same resolution with a residual shortcut (channel averaging or duplication)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.out_channels = out_channels
        self.reduce = out_channels <= in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.reduce:
            shortcut = space_to_channel_average(x, 1, self.out_channels)
        else:
            shortcut = channel_to_space_duplicate(x, 1, self.out_channels)
        return self.conv(x) + shortcut


class PatchStem(nn.Module):
    """Image -> level-0 features: pixel-unshuffle by ``patch`` then a 3x3 conv."""

    def __init__(self, in_channels: int, width: int, patch: int) -> None:
        super().__init__()
        self.patch = patch
        self.conv = nn.Conv2d(in_channels * patch * patch, width, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.patch > 1:
            x = F.pixel_unshuffle(x, self.patch)
        return self.conv(x)


class PatchHead(nn.Module):
    """Level-0 features -> image: norm, SiLU, 3x3 conv to ``out * patch**2`` channels, pixel shuffle."""

    def __init__(self, width: int, out_channels: int, patch: int) -> None:
        super().__init__()
        self.patch = patch
        self.norm = ChannelRMSNorm(width)
        self.conv = nn.Conv2d(width, out_channels * patch * patch, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(F.silu(self.norm(x)))
        return F.pixel_shuffle(x, self.patch) if self.patch > 1 else x


class SpatialAttention(nn.Module):
    """Global multi-head self-attention over all pixels of a (small) feature map, pre-norm, residual."""

    def __init__(self, channels: int, head_dim: int) -> None:
        super().__init__()
        self.heads = channels // head_dim
        self.norm = ChannelRMSNorm(channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        qkv = self.qkv(self.norm(x)).view(n, 3, self.heads, c // self.heads, h * w).transpose(-1, -2)
        y = F.scaled_dot_product_attention(qkv[:, 0], qkv[:, 1], qkv[:, 2])
        return x + self.out(y.transpose(-1, -2).reshape(n, c, h, w))
