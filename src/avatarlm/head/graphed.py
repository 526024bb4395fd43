"""The flow head's sampling replayed as CUDA graphs.

At batch 1 a frame's few Euler steps through the head are hundreds of small kernels (the `paper` head: 16
transformer blocks x 4 steps), and on a GPU launching them from Python costs more than running them. A CUDA
graph records the whole loop once per input shape and replays it with one launch. Inputs are copied into
the graph's own buffers and the result copied out, so callers see :meth:`FlowHead.sample`'s behaviour; the
draws are the same (the noise is an input). Inference only: the graph keeps the weights it was recorded
with in place, so it follows in-place weight updates but not new weight tensors (call :meth:`clear`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import torch

from avatarlm.cuda_graphs import record_graph
from avatarlm.head.base import FlowHead


@dataclass
class _Graph:
    graph: torch.cuda.CUDAGraph
    cond: torch.Tensor
    noise: torch.Tensor
    unconditional: torch.Tensor | None
    out: torch.Tensor


class GraphedSampler:
    """``sampler(cond, noise, unconditional, guidance)`` == ``head.sample(cond, noise=noise, ...)`` on CUDA
    tensors, recorded as one CUDA graph per (shapes, dtypes, guidance) on first use."""

    def __init__(self, head: FlowHead, warmup: int = 2) -> None:
        self.head = head
        self.warmup = warmup
        self._graphs: dict[tuple, _Graph] = {}
        self._lock = threading.Lock()  # one replay at a time: the graph's buffers are shared

    def clear(self) -> None:
        with self._lock:
            self._graphs.clear()

    def __len__(self) -> int:
        return len(self._graphs)

    @torch.no_grad()
    def __call__(
        self,
        cond: torch.Tensor,
        noise: torch.Tensor,
        unconditional: torch.Tensor | None = None,
        guidance: float = 1.0,
    ) -> torch.Tensor:
        if not cond.is_cuda:
            raise ValueError("CUDA graphs need CUDA tensors; call head.sample on the CPU")
        free = None if unconditional is None else tuple(unconditional.shape)
        key = (tuple(cond.shape), cond.dtype, tuple(noise.shape), noise.dtype, free, float(guidance))
        with self._lock:
            entry = self._graphs.get(key)
            if entry is None:
                entry = self._graphs[key] = self._record(cond, noise, unconditional, guidance)
            entry.cond.copy_(cond)
            entry.noise.copy_(noise)
            if entry.unconditional is not None:
                assert unconditional is not None
                entry.unconditional.copy_(unconditional)
            entry.graph.replay()
            return entry.out.clone()

    def _record(
        self, cond: torch.Tensor, noise: torch.Tensor, unconditional: torch.Tensor | None, guidance: float
    ) -> _Graph:
        static_cond, static_noise = cond.clone(), noise.clone()
        static_free = None if unconditional is None else unconditional.clone()

        def run() -> torch.Tensor:
            return self.head.sample(
                static_cond, noise=static_noise, unconditional=static_free, guidance=guidance
            )

        # the warm-up also builds the head's cached time table outside the capture
        graph, out = record_graph(run, cond.device, self.warmup)
        return _Graph(graph, static_cond, static_noise, static_free, out)
