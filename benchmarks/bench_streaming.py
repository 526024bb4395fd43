"""Streaming session speed on this machine, side by side in one run: real-time factor, compute and
audio-to-lip latency (p50/p95/p99, DESIGN.md's definitions), per-stage split with achieved FLOP/s against
the measured matmul peak, KV cache vs recomputing the window, and resident memory over a long session.

    python benchmarks/bench_streaming.py                       # random-weight tiny AR + bundled tiny AE
    python benchmarks/bench_streaming.py --model runs/ar_tiny/pipeline --memory-minutes 1,5,10

Speed does not depend on the weights, so the default needs nothing but the repo.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from avatarlm.ar_config import ARConfig
from avatarlm.model import ARModel
from avatarlm.pipeline.folder import Pipeline, load_pipeline, save_pipeline
from avatarlm.pipeline.rolling import KeptFrame, rebuild_state
from avatarlm.pipeline.session import SessionConfig, StreamingSession

REPO = Path(__file__).resolve().parents[1]


def default_pipeline(folder: Path, chunk_size: int = 1) -> Pipeline:
    torch.manual_seed(0)
    model = ARModel(ARConfig.preset("tiny").replace(chunk_size=chunk_size))
    out = folder / f"pipeline-{chunk_size}"
    return load_pipeline(save_pipeline(out, REPO / "models/tiny/ae", model, "tiny"))


def speech_like(seconds: float, seed: int = 0) -> np.ndarray:
    """Voiced bursts with pauses: the session's cost does not depend on what is said."""
    t = np.arange(int(seconds * 16000)) / 16000
    rng = np.random.default_rng(seed)
    envelope = (np.sin(2 * np.pi * 3 * t) > -0.3).astype(np.float32)
    return (0.2 * envelope * np.sin(2 * np.pi * 150 * t) + 0.01 * rng.standard_normal(len(t))).astype(
        np.float32
    )


def percentiles(values: list[float]) -> str:
    p = np.percentile(np.asarray(values) * 1000, [50, 95, 99])
    return f"{p[0]:6.1f} {p[1]:6.1f} {p[2]:6.1f}"


@dataclass
class PacedRun:
    compute: list[float]  # seconds per frame
    audio_to_lip: list[float]  # seconds per frame
    stage_means: dict[str, float]  # seconds per frame, by stage


def paced_run(pipe: Pipeline, seconds: float, config: SessionConfig, chunk_ms: int = 20) -> PacedRun:
    """Audio arrives in ``chunk_ms`` pieces at wall-clock pace; frames are drained after every piece."""
    session = StreamingSession(pipe, identity_seed=1, config=config)
    audio = speech_like(seconds)
    step = 16 * chunk_ms
    start = time.perf_counter()
    for i in range(0, len(audio), step):
        wait = start + i / 16000 - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        session.push_audio(audio[i : i + step])
        for _ in session.frames():
            pass
    session.flush()  # the last chunk (models with chunks of n frames) and the look-ahead
    for _ in session.frames():
        pass
    fps = session.fps
    compute = [t.compute for t in session.timings]
    lip = [t.done - (start + t.index / fps) for t in session.timings]
    stages = {n: float(np.mean([t.seconds[n] for t in session.timings])) for n in session.timings[0].seconds}
    return PacedRun(compute, lip, stages)


def unpaced_rtf(pipe: Pipeline, seconds: float, config: SessionConfig) -> float:
    session = StreamingSession(pipe, identity_seed=1, config=config)
    start = time.perf_counter()
    session.push_audio(speech_like(seconds))
    session.flush()
    frames = sum(1 for _ in session.frames())
    return frames / session.fps / (time.perf_counter() - start)


def matmul_peak() -> float:
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    for _ in range(3):
        a @ b
    start, reps = time.perf_counter(), 20
    for _ in range(reps):
        a @ b
    return 2 * 1024**3 * reps / (time.perf_counter() - start)


def flops_per_frame(pipe: Pipeline, config: SessionConfig) -> float:
    session = StreamingSession(pipe, identity_seed=1, config=config)
    session.push_audio(speech_like(1.0))
    frames = session.frames()
    next(frames)  # the reference
    next(frames)
    with FlopCounterMode(display=False) as counter:
        next(frames)
    return float(counter.get_total_flops())


def cache_vs_recompute(model: ARModel, frames: int, reps: int = 5) -> tuple[float, float]:
    """Seconds for one cached step vs one full forward over a window of ``frames`` frames."""
    cfg = model.config
    t, c, k, d = cfg.tokens_per_frame, cfg.latent_channels, cfg.cond_tokens_per_frame, cfg.hidden_size
    g = torch.Generator().manual_seed(0)
    kept = [
        KeptFrame(i + 1, torch.randn(1, k, d, generator=g), torch.randn(t, c, generator=g))
        for i in range(frames)
    ]
    reference = torch.randn(t, c, generator=g)
    cond = torch.randn(1, k, d, generator=g)
    cached, full = [], []
    with torch.no_grad():
        for _ in range(reps):
            state = rebuild_state(model, reference, kept, 0)
            start = time.perf_counter()
            model.step(state, cond)
            cached.append(time.perf_counter() - start)
            lat = torch.randn(1, frames + 1, t, c, generator=g)
            conds = torch.randn(1, frames + 1, k, d, generator=g)
            start = time.perf_counter()
            model.hidden_states(lat, torch.zeros(1, frames + 1), conds[:, 1:])
            full.append(time.perf_counter() - start)
    return float(np.median(cached)), float(np.median(full))


def rss_mib() -> float:
    """Current resident memory (Linux /proc; the peak, from getrusage, elsewhere)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory_over_time(
    pipe: Pipeline, minutes: list[float], config: SessionConfig
) -> list[tuple[float, float]]:
    session = StreamingSession(pipe, identity_seed=1, config=config)
    out, pushed = [], 0.0
    for m in sorted(minutes):
        session.push_audio(speech_like(m * 60 - pushed, seed=int(m * 100)))
        pushed = m * 60
        for _ in session.frames():
            pass
        out.append((m, rss_mib()))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="pipeline folder (default: random tiny AR + bundled AE)")
    p.add_argument("--seconds", type=float, default=12.0, help="length of the paced (real-time) run")
    p.add_argument("--memory-minutes", default="0.5,1", help="session lengths to read resident memory at")
    p.add_argument("--window", type=int, default=30, help="rolling window (frames besides f_0)")
    p.add_argument("--evict", type=int, default=10)
    args = p.parse_args()
    torch.set_num_threads(2)
    config = SessionConfig(window_frames=args.window, evict_frames=args.evict)
    with tempfile.TemporaryDirectory() as tmp:
        pipe = load_pipeline(args.model) if args.model else default_pipeline(Path(tmp))
        print(f"model: {args.model or 'random-weight tiny AR + models/tiny/ae'}; window {args.window}, "
              f"evict {args.evict}; {torch.get_num_threads()} threads")  # fmt: skip
        rolls = {r: replace(config, roll=r) for r in ("reencode", "rotate")}
        rtf = {r: unpaced_rtf(pipe, args.seconds, c) for r, c in rolls.items()}
        runs = {r: paced_run(pipe, args.seconds, c) for r, c in rolls.items()}
        paced = runs[config.roll]
        print("\nwindow roll: re-encode the kept frames (the training layout) | rotate cached keys (no pass, "
              f"the default); below per stage: {config.roll}")  # fmt: skip
        print(f"real-time factor (video s per wall s, unpaced): {rtf['reencode']:.2f} | {rtf['rotate']:.2f}"
              "   (target >= 1.0)")  # fmt: skip
        print("\nlatency, ms (paced 20 ms audio chunks)       p50    p95    p99   target p95")
        for r, run in runs.items():
            print(f"  compute per frame, {r:<8}               {percentiles(run.compute)}   <= 40")
            print(f"  audio-to-lip, {r:<8}                    {percentiles(run.audio_to_lip)}   <= 200")
        roll_ms = {r: 1000 * run.stage_means["window roll"] for r, run in runs.items()}
        print(f"  window roll, mean per frame: {roll_ms['reencode']:.1f} | {roll_ms['rotate']:.1f} ms")
        if not args.model:  # the paper's layout: chunks of 6 frames (random weights as well)
            six = default_pipeline(Path(tmp), chunk_size=6)
            chunked = replace(config, roll="rotate", window_frames=30, evict_frames=12)
            run6 = paced_run(six, args.seconds, chunked)
            print(f"  n = 6 (paper layout), real-time factor {unpaced_rtf(six, args.seconds, chunked):.2f}")
            print(f"  compute per frame, n = 6                 {percentiles(run6.compute)}")
            print(f"  audio-to-lip, n = 6                      {percentiles(run6.audio_to_lip)}")
        per_stage = paced.stage_means
        flops, peak = flops_per_frame(pipe, config), matmul_peak()
        frame_s = sum(per_stage.values())
        print("\nper-stage mean, ms: " + ", ".join(f"{n} {v * 1000:.1f}" for n, v in per_stage.items()))
        print(f"FLOP per frame {flops / 1e9:.2f} G -> {flops / frame_s / 1e9:.1f} GFLOP/s achieved vs "
              f"{peak / 1e9:.0f} GFLOP/s fp32 matmul peak ({flops / frame_s / peak:.0%})")  # fmt: skip
        print("\nKV cache vs recomputing the window (one step, ms)")
        for seconds in (5, 30):
            cached, full = cache_vs_recompute(pipe.model, seconds * pipe.fps)
            print(f"  {seconds:>2} s of context: cached {cached * 1000:7.1f}  recompute {full * 1000:8.1f}  "
                  f"ratio {full / cached:5.1f}x")  # fmt: skip
        minutes = [float(m) for m in args.memory_minutes.split(",") if m]
        print("\nresident memory (RSS, MiB) after minutes of session:")
        for m, rss in memory_over_time(pipe, minutes, config):
            print(f"  {m:5.1f} min: {rss:7.0f}")


if __name__ == "__main__":
    main()
