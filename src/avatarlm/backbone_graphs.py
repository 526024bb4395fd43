"""The backbone's cached step in fixed buffers, replayed as CUDA graphs on a GPU.

At batch 1 a step through a deep backbone is a few dozen small kernels per layer (the `paper` backbone: 36
layers), and launching them from Python costs more than running them. A CUDA graph replays a recorded
step with one launch, but it needs every tensor it touches at a fixed address: :class:`StaticKVCache` keeps
each layer's keys and values in buffers of a fixed capacity, writes a step's new tokens at their slots
(``index_copy_`` at device-side indices) and attends over the whole buffer with the empty slots masked
out. One graph is recorded per (rows, new tokens) the first time it is needed; the capacity doubles when
the cache would overflow (new buffers, graphs recorded again). On the CPU the same step runs eagerly, so
the tests check it against :class:`~avatarlm.kv_cache.KVCache` there.

A window roll (``Backbone.evict``) moves the kept tokens inside the buffers, in place, between steps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from avatarlm.backbone import Backbone
from avatarlm.cuda_graphs import record_graph
from avatarlm.kv_cache import KVCache


@dataclass
class _StepGraph:
    x: torch.Tensor  # (B, n, D) new embeddings
    positions: torch.Tensor  # (B, n)
    mask: torch.Tensor  # (B, 1, n, capacity) additive
    slots: torch.Tensor  # (n,) where the new tokens' keys and values go
    out: torch.Tensor | None = None  # (B, n, D) hidden states (after recording)
    graph: torch.cuda.CUDAGraph | None = None  # None on the CPU: run eagerly


class StaticKVCache(KVCache):
    """A :class:`KVCache` whose keys and values live in fixed buffers (B, kv_heads, capacity, head_dim);
    :meth:`Backbone.step` runs on it through :meth:`step` (one run at a time)."""

    static = True

    def __init__(self, num_layers: int, capacity: int = 256, warmup: int = 2) -> None:
        super().__init__(num_layers)
        self._length = 0
        self.capacity = capacity
        self.warmup = warmup
        self._graphs: dict[tuple[int, int], _StepGraph] = {}

    @property
    def length(self) -> int:
        return self._length

    @property
    def graphs(self) -> int:
        return len(self._graphs)

    def append(self, layer: int, key: torch.Tensor, value: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise ValueError("a StaticKVCache is filled by its own step (Backbone.step dispatches to it)")

    def remove(self, start: int, stop: int) -> None:
        if not 0 <= start <= stop <= self._length:
            raise ValueError(f"cannot remove tokens [{start}, {stop}) of a cache of {self._length}")
        kept = self._length - stop
        for buf in (*self.keys, *self.values):
            if buf is not None and kept:
                buf[:, :, start : start + kept] = buf[:, :, stop : self._length].clone()
        self._length -= stop - start

    def rotate_from(self, start: int, rotate: Callable[[torch.Tensor], torch.Tensor]) -> None:
        for k in self.keys:
            if k is not None:
                k[:, :, start : self._length] = rotate(k[:, :, start : self._length])

    def crop(self, length: int) -> None:
        if not 0 <= length <= self._length:
            raise ValueError(f"crop length {length} outside [0, {self._length}]")
        self._length = length

    # -- the step ------------------------------------------------------------------------------------
    def step(
        self, backbone: Backbone, x: torch.Tensor, positions: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """New tokens ``x`` (B, n, D) at ``positions`` (B, n) with ``mask`` (1 or B, 1, n, length + n): their
        hidden states, as :meth:`Backbone.step` on a :class:`KVCache` holding the same tokens."""
        b, n, _ = x.shape
        end = self._length + n
        first = self.keys[0]
        if first is not None and first.shape[0] != b:
            raise ValueError(f"this cache holds {first.shape[0]} row(s); the step brings {b}")
        if first is None or end > self.capacity:
            capacity = self.capacity if first is None else 2 * self.capacity
            while capacity < end:
                capacity *= 2
            self._allocate(backbone, x, capacity)
        g = self._graphs.get((b, n))
        if g is None:
            g = self._graphs[(b, n)] = self._record(backbone, x, positions, mask)
        g.x.copy_(x)
        g.positions.copy_(positions)
        g.mask.fill_(float("-inf"))
        g.mask[..., :end].copy_(mask.to(g.mask.dtype).expand(b, -1, -1, -1))
        g.slots.copy_(torch.arange(self._length, end, device=x.device))
        if g.graph is not None:
            g.graph.replay()
            assert g.out is not None
            out = g.out.clone()
        else:
            out = self._forward(backbone, g)
        self._length = end
        return out

    def _allocate(self, backbone: Backbone, x: torch.Tensor, capacity: int) -> None:
        """(Re)allocate buffers of ``capacity`` tokens, keeping what is cached; recorded graphs are dropped."""
        cfg = backbone.config
        shape = (x.shape[0], cfg.num_kv_heads, capacity, cfg.head_dim)
        for store in (self.keys, self.values):
            for i, old in enumerate(store):
                buf = x.new_zeros(shape)
                if old is not None and self._length:
                    buf[:, :, : self._length] = old[:, :, : self._length]
                store[i] = buf
        self.capacity = capacity
        self._graphs.clear()

    def _forward(self, backbone: Backbone, g: _StepGraph) -> torch.Tensor:
        def attend(i: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
            keys, values = self.keys[i], self.values[i]
            assert keys is not None and values is not None
            keys.index_copy_(2, g.slots, k)
            values.index_copy_(2, g.slots, v)
            return F.scaled_dot_product_attention(
                q, keys, values, attn_mask=g.mask, scale=scale, enable_gqa=True
            )

        return backbone.layers_with_cache(g.x, g.positions, attend)

    def _record(
        self, backbone: Backbone, x: torch.Tensor, positions: torch.Tensor, mask: torch.Tensor
    ) -> _StepGraph:
        b, n, _ = x.shape
        g = _StepGraph(
            x=x.clone(),
            positions=positions.expand(b, n).clone(),
            mask=x.new_full((b, 1, n, self.capacity), float("-inf")),
            slots=torch.arange(self._length, self._length + n, device=x.device),
        )
        if not x.is_cuda:
            return g
        # the warm-up runs write slots past the cached tokens: the buffers' cached part is untouched, and
        # the real step overwrites the new tokens' slots
        g.mask[..., : self._length + n] = mask.to(g.mask.dtype)
        g.graph, g.out = record_graph(lambda: self._forward(backbone, g), x.device, self.warmup)
        return g
