"""Flow-head speed: ms per frame for both architectures at the given presets, batch 1.

    python benchmarks/bench_head.py --threads 2 --presets tiny small --compile

One frame = encode the condition once + ``--steps`` Euler steps over all tokens, under
torch.inference_mode, fp32. Frames are timed in bursts with short pauses; the table shows the median over
all frames and the median of the quietest burst (the estimate for an unloaded machine). The real-time
budget at 25 fps is 40 ms per frame for backbone + head + decode; the head should take <= ~10 ms at tiny.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from avatarlm.head import HEAD_ARCHITECTURES, FlowHead, HeadConfig, build_head


def time_head(head: FlowHead, steps: int, bursts: int, burst: int = 20, warmup: int = 5) -> dict[str, float]:
    """ms per frame of ``head.sample`` on one frame (batch 1)."""
    cfg = head.config
    cond = torch.randn(1, cfg.tokens_per_frame, cfg.cond_dim)
    gen = torch.Generator().manual_seed(0)
    times: list[list[float]] = []
    with torch.inference_mode():
        for _ in range(warmup):
            head.sample(cond, steps=steps, generator=gen)
        for _ in range(bursts):
            times.append([])
            for _ in range(burst):
                t0 = time.perf_counter()
                head.sample(cond, steps=steps, generator=gen)
                times[-1].append(1e3 * (time.perf_counter() - t0))
            time.sleep(0.05)
    quiet = min(times, key=statistics.median)
    return {"ms": statistics.median(sum(times, [])), "quiet_ms": statistics.median(quiet)}


class _OpCounter(TorchDispatchMode):
    """Counts aten calls: on small inputs each costs a few microseconds of overhead."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.calls += 1
        return func(*args, **(kwargs or {}))


def count_work(head: FlowHead, steps: int) -> tuple[float, int]:
    """(MFLOP, aten calls) of one frame: a load-independent measure of the head's cost."""
    cfg = head.config
    cond = torch.randn(1, cfg.tokens_per_frame, cfg.cond_dim)
    with torch.inference_mode():
        head.sample(cond, steps=steps)  # fill the time-modulation cache, as in streaming
        with FlopCounterMode(display=False) as flops:
            head.sample(cond, steps=steps)
        with _OpCounter() as ops:
            head.sample(cond, steps=steps)
    return flops.get_total_flops() / 1e6, ops.calls


def matmul_probe_ms(n: int = 1024, repeats: int = 10) -> float:
    """Fastest n x n fp32 matmul in ms: compare with 16.2 ms (2 threads, idle) to judge the machine's load."""
    a = torch.randn(n, n)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ a
        best = min(best, 1e3 * (time.perf_counter() - t0))
    return best


def compiled(head: FlowHead) -> FlowHead:
    """The same head with ``denoise`` and ``encode_cond`` compiled by torch.compile."""
    head.denoise = torch.compile(head.denoise, dynamic=False)  # type: ignore[method-assign]
    head.encode_cond = torch.compile(head.encode_cond, dynamic=False)  # type: ignore[method-assign]
    return head


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--presets", nargs="+", default=["tiny", "small"])
    parser.add_argument("--architectures", nargs="+", default=list(HEAD_ARCHITECTURES))
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--bursts", type=int, default=5)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile'd heads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    modes = ["eager", "compile"] if args.compile else ["eager"]

    header = f"{'preset':<8}{'head':<13}{'width':>6}{'depth':>6}{'params M':>10}{'MFLOP':>8}{'ops':>6}"
    header += "".join(f"{m + ' ms':>14}{m + ' quiet':>14}" for m in modes)
    print(f"{args.steps} Euler steps per frame, batch 1, {args.threads} threads, fp32, inference_mode")
    print(f"load probe: 1024^2 matmul {matmul_probe_ms():.1f} ms (idle machine, 2 threads: 16.2 ms)")
    print(header)
    for preset in args.presets:
        for arch in args.architectures:
            cfg = HeadConfig.preset(preset, architecture=arch)
            row = f"{preset:<8}{arch:<13}{cfg.width:>6}{cfg.depth:>6}"
            torch.manual_seed(0)
            head = build_head(cfg).eval()
            mflop, ops = count_work(head, args.steps)
            row += f"{head.num_parameters() / 1e6:>10.2f}{mflop:>8.0f}{ops:>6}"
            for mode in modes:
                timed = compiled(head) if mode == "compile" else head
                r = time_head(timed, args.steps, args.bursts)
                row += f"{r['ms']:>14.2f}{r['quiet_ms']:>14.2f}"
            print(row, flush=True)
    print(f"load probe: 1024^2 matmul {matmul_probe_ms():.1f} ms")


if __name__ == "__main__":
    main()
