"""Causal temporal layers with an explicit feature cache, for frame-by-frame streaming.

Clips are (B, T, C, H, W). The output at frame t depends on frames <= t only. Passing a cache makes a
call continue the stream the cache has seen (one frame or a chunk at a time); without a cache the clip
starts from an empty history. Both layers add a zero-initialised residual, so they are the identity at
initialisation and adding them to a trained spatial model does not change its output.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import ChannelRMSNorm


@dataclass
class TemporalLayerState:
    """History of one temporal layer: conv inputs of the last k-1 frames, attention keys/values of the
    last window-1 frames (keys stored before rotation)."""

    history: list[torch.Tensor] = field(default_factory=list)  # k-1 tensors (B, 1, C, H, W), oldest first
    keys: torch.Tensor | None = None  # (B*H*W, heads, n, head_dim)
    values: torch.Tensor | None = None


@dataclass
class TemporalCache:
    """Feature cache of one streaming pass (encoder or decoder), one state per named layer."""

    layers: dict[str, TemporalLayerState] = field(default_factory=dict)
    frames_seen: int = 0

    def layer(self, name: str) -> TemporalLayerState:
        return self.layers.setdefault(name, TemporalLayerState())

    def reset(self) -> None:
        self.layers.clear()
        self.frames_seen = 0

    def nbytes(self) -> int:
        """Memory held by the cached tensors (bounded by kernel and window, not by stream length)."""
        total = 0
        for s in self.layers.values():
            for t in (*s.history, s.keys, s.values):
                if t is not None:
                    total += t.numel() * t.element_size()
        return total


def _check_batch(cached: torch.Tensor, expected: int, what: str) -> None:
    if cached.shape[0] != expected:
        raise ValueError(f"cache holds {what} for batch size {cached.shape[0]}, got batch {expected}")


class CausalTemporalConv(nn.Module):
    """Causal (kernel, s, s) conv over time, run as a 2-D conv over the stacked last ``kernel`` frames."""

    def __init__(self, channels: int, kernel: int, spatial_kernel: int = 1) -> None:
        super().__init__()
        self.kernel = kernel
        self.conv = nn.Conv2d(channels * kernel, channels, spatial_kernel, padding=spatial_kernel // 2)
        nn.init.zeros_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)  # type: ignore[arg-type]

    def forward(self, x: torch.Tensor, state: TemporalLayerState | None = None) -> torch.Tensor:
        b, t, c, h, w = x.shape
        k = self.kernel
        if k > 1:
            if state is not None and state.history:
                _check_batch(state.history[0], b, "conv history")
                past = state.history
            else:
                past = [x.new_zeros(b, 1, c, h, w)] * (k - 1)
            frames = [*past, *x.detach().split(1, dim=1)] if state is not None else []
            if t == 1:  # streaming: one copy, the history is a list of earlier frames
                windows = torch.cat([*past, x], dim=2)
            else:
                padded = torch.cat([*past, x], dim=1)
                windows = torch.cat([padded[:, i : i + t] for i in range(k)], dim=2)
            if state is not None:
                state.history = frames[-(k - 1) :]
        else:
            windows = x
        return x + self.conv(windows.reshape(b * t, k * c, h, w)).view(b, t, c, h, w)


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


class CausalTemporalAttention(nn.Module):
    """Per-pixel attention over the current and the previous ``window - 1`` frames, RoPE over time."""

    def __init__(self, channels: int, head_dim: int, window: int, rope_base: float = 10000.0) -> None:
        super().__init__()
        self.heads = channels // head_dim
        self.head_dim = head_dim
        self.window = window
        self.norm = ChannelRMSNorm(channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)  # type: ignore[arg-type]
        inv_freq = rope_base ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
        self.inv_freq: torch.Tensor
        self.register_buffer("inv_freq", inv_freq, persistent=False)
        self._tables: dict[tuple[int, str], tuple[torch.Tensor, torch.Tensor]] = {}

    def _rope_table(self, length: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """cos/sin of positions 0..length-1, cached per length (lengths are bounded by the window)."""
        key = (length, str(device))
        if key not in self._tables or device.type == "meta":
            # normal tensors even under inference_mode, so a later training call can use them
            with torch.inference_mode(False), torch.no_grad():
                pos = torch.arange(length, device=device, dtype=torch.float32)
                angles = pos[:, None] * self.inv_freq.to(device).clone()[None, :]
                self._tables[key] = (angles.cos(), angles.sin())
        return self._tables[key]

    def forward(self, x: torch.Tensor, state: TemporalLayerState | None = None) -> torch.Tensor:
        b, t, c, h, w = x.shape
        nh, d, hw = self.heads, self.head_dim, h * w
        qkv = self.qkv(self.norm(x.reshape(b * t, c, h, w)))
        qkv = qkv.view(b, t, 3, nh, d, hw).permute(2, 0, 5, 3, 1, 4).reshape(3, b * hw, nh, t, d)
        q, k, v = qkv[0], qkv[1], qkv[2]
        if state is not None and state.keys is not None and state.values is not None:
            _check_batch(state.keys, b * hw, "attention keys")
            k = torch.cat([state.keys, k], dim=2)
            v = torch.cat([state.values, v], dim=2)
        total = k.shape[2]
        past = total - t
        if state is not None:
            keep = self.window - 1
            state.keys = k[:, :, total - keep :].detach() if keep > 0 else None
            state.values = v[:, :, total - keep :].detach() if keep > 0 else None
        cos, sin = self._rope_table(total, x.device)
        q = _rotate(q, cos[past:], sin[past:])
        k = _rotate(k, cos, sin)
        mask = None
        if t > 1 or total > self.window:
            q_pos = torch.arange(past, total, device=x.device)[:, None]
            k_pos = torch.arange(total, device=x.device)[None, :]
            mask = (k_pos <= q_pos) & (k_pos > q_pos - self.window)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        y = y.view(b, hw, nh, t, d).permute(0, 3, 2, 4, 1).reshape(b * t, c, h, w)
        return x + self.out(y).view(b, t, c, h, w)


class TemporalBlock(nn.Module):
    """Causal temporal conv, optionally followed by causal temporal attention; state keyed by ``name``."""

    def __init__(
        self,
        name: str,
        channels: int,
        kernel: int,
        window: int,
        attention: bool,
        head_dim: int,
        spatial_kernel: int = 1,
    ) -> None:
        super().__init__()
        self.name = name
        self.conv = CausalTemporalConv(channels, kernel, spatial_kernel)
        self.attention = CausalTemporalAttention(channels, head_dim, window) if attention else None

    def forward(self, x: torch.Tensor, cache: TemporalCache | None = None) -> torch.Tensor:
        x = self.conv(x, cache.layer(f"{self.name}.conv") if cache is not None else None)
        if self.attention is not None:
            x = self.attention(x, cache.layer(f"{self.name}.attn") if cache is not None else None)
        return x
