"""Recording a CUDA graph the way PyTorch asks for it: a few warm-up runs on a side stream (allocator,
autotuning and any cached tables settle outside the capture), then one run captured."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import torch

T = TypeVar("T")


def record_graph(run: Callable[[], T], device: torch.device, warmup: int) -> tuple[torch.cuda.CUDAGraph, T]:
    """The graph of one ``run()`` on ``device`` and what that run returned (tensors in the graph's memory,
    rewritten by every replay)."""
    side = torch.cuda.Stream(device=device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        for _ in range(warmup):
            run()
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = run()
    return graph, out
