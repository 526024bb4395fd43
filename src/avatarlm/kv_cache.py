"""The backbone's key/value cache for incremental steps: rotated keys and values per layer, grown by
concatenation; a rolling window removes tokens and re-rotates the keys that move
(``backbone_graphs.StaticKVCache`` is the fixed-buffer twin that CUDA graphs replay)."""

from __future__ import annotations

from collections.abc import Callable

import torch


class KVCache:
    """Rotated keys and values per layer, each (B, kv_heads, length, head_dim); grows by concatenation."""

    def __init__(self, num_layers: int) -> None:
        self.keys: list[torch.Tensor | None] = [None] * num_layers
        self.values: list[torch.Tensor | None] = [None] * num_layers

    @property
    def length(self) -> int:
        k = self.keys[0]
        return 0 if k is None else int(k.shape[2])

    def append(self, layer: int, key: torch.Tensor, value: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store the new tokens of ``layer``; return all its keys and values."""
        old_k, old_v = self.keys[layer], self.values[layer]
        if old_k is not None and old_v is not None:
            key, value = torch.cat([old_k, key], dim=2), torch.cat([old_v, value], dim=2)
        self.keys[layer], self.values[layer] = key, value
        return key, value

    def remove(self, start: int, stop: int) -> None:
        """Drop tokens [start, stop)."""
        if not 0 <= start <= stop <= self.length:
            raise ValueError(f"cannot remove tokens [{start}, {stop}) of a cache of {self.length}")
        for i, (k, v) in enumerate(zip(self.keys, self.values, strict=True)):
            if k is not None and v is not None:
                self.keys[i] = torch.cat([k[:, :, :start], k[:, :, stop:]], dim=2)
                self.values[i] = torch.cat([v[:, :, :start], v[:, :, stop:]], dim=2)

    def rotate_from(self, start: int, rotate: Callable[[torch.Tensor], torch.Tensor]) -> None:
        """Replace the keys of tokens [start, length) by ``rotate(keys)`` (a window roll's re-rotation)."""
        for i, k in enumerate(self.keys):
            if k is not None:
                self.keys[i] = torch.cat([k[:, :, :start], rotate(k[:, :, start:])], dim=2)

    def crop(self, length: int) -> None:
        """Keep only the first ``length`` tokens."""
        if not 0 <= length <= self.length:
            raise ValueError(f"crop length {length} outside [0, {self.length}]")
        for i, (k, v) in enumerate(zip(self.keys, self.values, strict=True)):
            if k is not None and v is not None:
                self.keys[i], self.values[i] = k[:, :, :length], v[:, :, :length]
