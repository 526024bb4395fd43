"""Hardware for ``benchmarks/scaling.py``: the assumed H100, this CPU as measured on one thread, and the
projection of a system's counted work onto either (per-kernel roofline, eager per-op cost, sessions that
fit, the audio-to-lip floor)."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from scaling_systems import System, SystemCosts


@dataclass(frozen=True)
class Hardware:
    """What a roofline needs: achievable FLOP/s and bytes/s, bytes per number, eager cost per op."""

    name: str
    peak_flops: float
    flop_utilisation: float
    peak_bandwidth: float
    bandwidth_utilisation: float
    bytes_per_number: int
    seconds_per_op: float
    memory_bytes: float

    @property
    def flops(self) -> float:
        return self.peak_flops * self.flop_utilisation

    @property
    def bandwidth(self) -> float:
        return self.peak_bandwidth * self.bandwidth_utilisation


# Published H100 SXM5 figures: 989.4 TFLOP/s dense bf16 (1,979 with 2:4 sparsity), 3.35 TB/s HBM3, 80 GB.
# Utilisations and the per-op cost are assumptions, written out in the document.
H100 = Hardware(
    name="NVIDIA H100 SXM5 80 GB, bf16",
    peak_flops=989.4e12,
    flop_utilisation=0.5,
    peak_bandwidth=3.35e12,
    bandwidth_utilisation=0.8,
    bytes_per_number=2,
    seconds_per_op=5e-6,
    memory_bytes=80e9,
)
TRAIN_MFU = 0.40  # model FLOP utilisation assumed for a tuned bf16 training run of a 3 B model on H100s
GPU_HOUR_PRICE = 2.5  # assumed rental price, USD per H100-hour


# ---------------------------------------------------------------------------------------------------------
# This CPU
# ---------------------------------------------------------------------------------------------------------


def _timed(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def measure_matmul(size: int = 1024, reps: int = 8) -> float:
    """fp32 matmul FLOP/s on the current thread count: best of ``reps`` (size x size) @ (size x size)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(reps))
    return 2.0 * size**3 / best


def measure_bandwidth(megabytes: int = 64, reps: int = 5) -> float:
    """Copy bandwidth in bytes/s (a copy reads and writes every byte): best of ``reps`` copies."""
    src = torch.ones(megabytes * 2**20 // 4)
    dst = torch.empty_like(src)
    dst.copy_(src)
    best = min(_timed(lambda: dst.copy_(src)) for _ in range(reps))
    return 2.0 * src.numel() * 4 / best


def measure_op_overhead(reps: int = 1000, bursts: int = 3) -> float:
    """Seconds per tiny eager op (``F.linear`` on a 1x16 input): the dispatch cost every kernel pays; the
    quietest of ``bursts`` bursts."""
    x, w, b = torch.randn(1, 16), torch.randn(16, 16), torch.randn(16)
    linear = nn.functional.linear

    def burst() -> None:
        for _ in range(reps):
            linear(x, w, b)

    burst()
    return min(_timed(burst) for _ in range(bursts)) / reps


def measure_cpu() -> Hardware:
    """This machine's CPU on one thread, fp32; every figure measured in about a second."""
    return Hardware(
        name=f"this CPU ({platform.processor() or platform.machine()}), 1 thread, fp32",
        peak_flops=measure_matmul(),
        flop_utilisation=1.0,
        peak_bandwidth=measure_bandwidth(),
        bandwidth_utilisation=1.0,
        bytes_per_number=4,
        seconds_per_op=measure_op_overhead(),
        memory_bytes=float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")),
    )


# ---------------------------------------------------------------------------------------------------------
# Projections
# ---------------------------------------------------------------------------------------------------------


@dataclass
class Projection:
    frame_s: float  # roofline, one session, no launch overhead (CUDA graphs / compiled)
    eager_s: float  # with the per-op cost of eager PyTorch
    first_frame_s: float  # roofline of a chunk's first frame
    lip_s: float  # audio-to-lip lower bound: input chunk + frame + look-ahead + chunk wait + compute
    rtf: float
    rtf_eager: float
    sessions: int  # batched sessions in real time (roofline), capped by memory
    bound: str


def waited_frames(chunk_size: int, lookahead_frames: int) -> int:
    """Frames of audio a chunk's first frame waits for: its own, the look-ahead and the rest of the chunk."""
    return 1 + lookahead_frames + chunk_size - 1


def lip_latency_floor(
    chunk_size: int, lookahead_frames: int, fps: float, compute_s: float, input_chunk_s: float = 0.020
) -> float:
    """The earliest a chunk's first frame can leave, after the arrival of its audio: its own frame of
    audio, the look-ahead and the rest of the chunk must have arrived (in ``input_chunk_s`` pieces), then
    it is computed."""
    return input_chunk_s + waited_frames(chunk_size, lookahead_frames) / fps + compute_s


def system_lip_floor(system: System, compute_s: float) -> float:
    c = system.ar.conditions
    return lip_latency_floor(system.ar.chunk_size, c.lookahead_frames, system.fps, compute_s)


def project(costs: SystemCosts, hw: Hardware, additive_ops: bool) -> Projection:
    """``additive_ops``: eager CPU dispatch runs on the same thread as the kernels, so the per-op cost adds;
    a GPU's launches overlap its kernels, so there the per-op cost is a floor."""
    frame, period = costs.frame, 1.0 / costs.system.fps
    t = frame.seconds(hw)
    overhead = costs.ops * hw.seconds_per_op
    eager = t + overhead if additive_ops else max(t, overhead)
    first = costs.first_frame.seconds(hw)
    state = costs.session_numbers() * hw.bytes_per_number
    weights = costs.weight_numbers() * hw.bytes_per_number

    def fits(s: int) -> bool:
        return frame.seconds(hw, s) <= period and weights + s * state <= 0.9 * hw.memory_bytes

    sessions, high = 0, 1
    while fits(high) and high < 1 << 20:
        sessions, high = high, 2 * high
    while high - sessions > 1:  # fits(sessions) and not fits(high), or sessions == 0
        mid = (sessions + high) // 2
        sessions, high = (mid, high) if fits(mid) else (sessions, mid)
    return Projection(
        frame_s=t,
        eager_s=eager,
        first_frame_s=first,
        lip_s=system_lip_floor(costs.system, first + (overhead if additive_ops else 0.0)),
        rtf=period / t,
        rtf_eager=period / eager,
        sessions=sessions,
        bound=frame.bound(hw),
    )
