"""Speed of the `tiny`, `small` and `paper`-shaped systems on one device, side by side in one run: the
streaming session (real-time factor, compute and audio-to-lip latency, per-stage split, memory) in fp32 and
under bf16 autocast, and training steps of the real AR trainer (tokens per second, memory).

    python benchmarks/bench_gpu.py --device cuda --out runs/bench_gpu            # all three systems
    python benchmarks/bench_gpu.py --device cpu --systems tiny --seconds 2 --train-steps 2   # a quick check

Weights are random (speed does not depend on them); the systems are ``scaling_systems.systems()``: the
bundled model's shape, `small` (8x512 backbone, f64 autoencoder at 256x256) and `paper` (Qwen2.5-3B-sized
36x2048 backbone, 16x1024 transformer head, 128-channel f64 autoencoder at 384x640, chunks of 6 frames).
Models are built on the device itself. Modes: fp32 and bf16 (autocast) run eagerly; `+graphs` replays the
backbone's steps and the head's sampling as CUDA graphs (the session's default on a GPU), `tf32` lets fp32
matrix products use the tensor cores. The autoencoder's decode runs eagerly in every mode.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from avatarlm.autoencoder.model import DCAutoencoder
from avatarlm.model import ARModel
from avatarlm.pipeline.folder import Pipeline, check_device, pipeline_info
from avatarlm.pipeline.session import SessionConfig, StreamingSession
from avatarlm.sequence import build_layout
from avatarlm.trainer.ar import train_ar, window_sampler
from avatarlm.trainer.ar_config import ARTrainConfig
from avatarlm.trainer.ar_data import ARClip
from avatarlm.trainer.distributed import DistributedContext
from avatarlm.trainer.loss_log import LossLog
from bench_streaming import paced_run, speech_like, unpaced_rtf
from scaling_systems import System, systems

# eager fp32; eager under bf16 autocast; backbone steps and head sampling as CUDA graphs, in fp32, with fp32
# matrix products on the tensor cores (TF32), and with the backbone's and head's weights in bf16
MODES = ("fp32", "bf16", "fp32+graphs", "tf32+graphs", "bf16w+graphs")


@contextmanager
def mode_context(device: torch.device, mode: str) -> Iterator[None]:
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; known: {MODES}")
    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = mode.startswith("tf32")
    try:
        with torch.autocast(device.type, dtype=torch.bfloat16) if mode == "bf16" else nullcontext():
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32


@contextmanager
def weights_for(pipe: Pipeline, mode: str) -> Iterator[None]:
    """The backbone's and head's weights in bf16 for the `bf16w` modes (rounded back to fp32 after: the
    weights are random, speed is what is measured)."""
    pipe.model.set_inference_dtype(torch.bfloat16 if mode.startswith("bf16w") else torch.float32)
    try:
        yield
    finally:
        pipe.model.set_inference_dtype(torch.float32)


def session_config(system: System, mode: str) -> SessionConfig:
    """The system's rolling window; CUDA graphs in the `+graphs` modes only."""
    return SessionConfig(window_frames=system.window_frames, evict_frames=system.evict_frames,
                         cuda_graphs=mode.endswith("+graphs"))  # fmt: skip


def build_pipeline(system: System, device: torch.device) -> Pipeline:
    """Random-weight autoencoder and AR model of ``system``, created on ``device``."""
    torch.manual_seed(0)
    with device:
        ae, ar = DCAutoencoder(system.ae), ARModel(system.ar)
    ae, ar = ae.to(device).eval(), ar.to(device).eval()
    return Pipeline(ae, ar, pipeline_info(ae, ar, system.name))


def reset_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def ms(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values) * 1000, q))


def streaming(pipe: Pipeline, system: System, seconds: float, mode: str) -> dict:
    device = pipe.device
    config = session_config(system, mode)
    with mode_context(device, mode), weights_for(pipe, mode), torch.no_grad():
        unpaced_rtf(pipe, min(seconds, 1.0), config)  # warm-up: kernels, allocator, autotuning
        reset_memory(device)
        rtf = unpaced_rtf(pipe, seconds, config)
        run = paced_run(pipe, seconds, config)
    return {
        "real_time_factor": rtf,
        "compute_ms": {"p50": ms(run.compute, 50), "p95": ms(run.compute, 95)},
        "audio_to_lip_ms": {"p50": ms(run.audio_to_lip, 50), "p95": ms(run.audio_to_lip, 95)},
        "stages_ms": {k: 1000 * v for k, v in run.stage_means.items()},
        "peak_gib": peak_gib(device),
    }


def profile(pipe: Pipeline, system: System, mode: str, frames: int, rows: int = 20) -> str:
    """torch.profiler tables (by self CPU time, then by self device time) of ``frames`` frames of a session
    already past its first frames (graphs recorded)."""
    device = pipe.device
    config = session_config(system, mode)
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with mode_context(device, mode), weights_for(pipe, mode), torch.no_grad():
        session = StreamingSession(pipe, identity_seed=1, config=config)
        session.push_audio(speech_like((3 * frames + 10) / system.fps))
        session.flush()
        stream = session.frames()
        for _ in range(2 * frames):
            next(stream)
        with torch.profiler.profile(activities=activities) as prof:
            for _ in range(frames):
                next(stream)
            reset_memory(device)  # waits for the device
    table = prof.key_averages()
    by_device = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    return "\n".join([
        f"profile of {frames} frames, `{system.name}`, {mode}: by self CPU time",
        table.table(sort_by="self_cpu_time_total", row_limit=rows),
        "by self device time",
        table.table(sort_by=by_device, row_limit=rows),
    ])  # fmt: skip


def random_clips(system: System, count: int, frames: int, seed: int = 0) -> list[ARClip]:
    """Clips of random latents and speech-like sound: a training step costs the same on any data."""
    rng = np.random.default_rng(seed)
    ar, out = system.ar, []
    samples = frames * ar.conditions.samples_per_frame
    for i in range(count):
        latents = rng.standard_normal((frames, ar.tokens_per_frame, ar.latent_channels)).astype(np.float32)
        audio = np.stack([speech_like(samples / 16000, seed=i)[:samples], np.zeros(samples, np.float32)])
        keypoints = np.full((frames, 23, 2), 0.5, np.float32)
        pose = np.zeros((frames, 3), np.float32)
        out.append(ARClip(f"random-{i}", latents, audio, pose, keypoints, [None] * frames))
    return out


def training(system: System, device: torch.device, steps: int, batch: int, micro: int, window: int,
             checkpointing: bool) -> dict:  # fmt: skip
    """``steps`` optimizer steps of ``train_ar`` (bf16 autocast on GPUs, AdamW, EMA), timed from its log."""
    model = replace(system.ar, backbone=replace(system.ar.backbone, gradient_checkpointing=checkpointing))
    cfg = ARTrainConfig(model=model, window_frames=window, batch_size=batch, micro_batch=micro, log_every=1,
                        checkpoint_every=10**9, warmup_steps=1, val_windows=0)  # fmt: skip
    sampler = window_sampler(cfg, random_clips(system, 4, 2 * window))
    reset_memory(device)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        train_ar(cfg, sampler, tmp, steps=10**6, ctx=DistributedContext(0, 1, device), progress=False,
                 stop_after=steps)  # fmt: skip
        total = time.perf_counter() - start
        _, seconds = LossLog(Path(tmp) / "loss.csv", resume_step=10**9).series("seconds")
    step_s = float(np.median(np.diff(seconds))) if len(seconds) > 1 else seconds[0]  # step 1 warms up
    layout = build_layout(window, model.chunk_size, model.tokens_per_frame, model.cond_tokens_per_frame)
    tokens = batch * layout.length
    with torch.device("meta"):
        params = sum(p.numel() for p in ARModel(model).parameters())
    return {
        "window_tokens": layout.length,
        "batch_windows": batch,
        "micro_batch": micro,
        "checkpointing": checkpointing,
        "step_s": step_s,
        "first_step_s": seconds[0],
        "call_s": total,
        "tokens_per_s": tokens / step_s,
        "parameters": params,
        "model_tflops": 6 * params * tokens / step_s / 1e12,
        "peak_gib": peak_gib(device),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda")
    p.add_argument(
        "--systems", default="tiny,small,paper", help="comma-separated: tiny, small, small/f32, paper"
    )
    p.add_argument("--modes", default=",".join(MODES), help="streaming modes: " + ", ".join(MODES))
    p.add_argument("--seconds", type=float, default=8.0, help="audio per streaming run")
    p.add_argument("--train-system", default="paper", help="system of the training steps ('' for none)")
    p.add_argument("--train-steps", type=int, default=4)
    p.add_argument("--train-batch", type=int, default=8, help="windows per optimizer step")
    p.add_argument("--train-micro", type=int, default=4, help="windows per forward/backward pass")
    p.add_argument("--train-window", type=int, default=32, help="frames per training window (f_0 included)")
    p.add_argument("--no-checkpointing", action="store_true", help="keep activations (no recomputation)")
    p.add_argument("--profile", type=int, default=0, help="also profile this many frames of each row")
    p.add_argument("--out", default=None, help="folder for results.json")
    args = p.parse_args()
    device = check_device(args.device)
    by_name = {s.name: s for s in systems()}
    names = [n for n in args.systems.split(",") if n]
    unknown = [n for n in [*names, args.train_system] if n and n not in by_name]
    if unknown:
        raise SystemExit(f"unknown systems {unknown}; known: {sorted(by_name)}")
    card = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU, {torch.get_num_threads()} threads"
    )
    result: dict = {"device": card, "torch": torch.__version__, "streaming": {}, "training": None}
    print(f"device: {card}; torch {torch.__version__}")
    print(f"\nstreaming, {args.seconds:g} s of speech-like audio, random weights")
    print(f"{'system':<10} {'mode':<11} {'RTF':>6} {'compute p50/p95 ms':>19} {'audio-to-lip p50/p95':>21} "
          f"{'backbone+head':>13} {'decode':>7} {'GiB':>6}")  # fmt: skip
    for name in names:
        pipe = build_pipeline(by_name[name], device)
        for mode in args.modes.split(","):
            try:
                r = streaming(pipe, by_name[name], args.seconds, mode)
            except Exception as err:  # one failing row must not lose the others
                print(f"{name:<10} {mode:<11} failed: {type(err).__name__}: {err}")
                result["streaming"][f"{name}/{mode}"] = {"error": repr(err)}
                continue
            result["streaming"][f"{name}/{mode}"] = r
            c, lip, st = r["compute_ms"], r["audio_to_lip_ms"], r["stages_ms"]
            mem = f"{r['peak_gib']:6.2f}" if r["peak_gib"] is not None else "     -"
            print(f"{name:<10} {mode:<11} {r['real_time_factor']:6.2f} {c['p50']:9.1f} {c['p95']:9.1f} "
                  f"{lip['p50']:10.1f} {lip['p95']:10.1f} {st['backbone+head']:13.1f} {st['decode']:7.1f} {mem}")  # fmt: skip
            if args.profile:
                print(profile(pipe, by_name[name], mode, args.profile))
        del pipe
        if device.type == "cuda":
            torch.cuda.empty_cache()
    if args.train_system:
        system = by_name[args.train_system]
        try:
            t = training(system, device, args.train_steps, args.train_batch, args.train_micro,
                         args.train_window, not args.no_checkpointing)  # fmt: skip
            result["training"] = {"system": system.name, **t}
            print(f"\ntraining `{system.name}`: {t['batch_windows']} windows of {t['window_tokens']} tokens per "
                  f"step, micro batch {t['micro_batch']}, checkpointing {t['checkpointing']}: "
                  f"{t['step_s']:.2f} s per step (first {t['first_step_s']:.1f} s), "
                  f"{t['tokens_per_s']:,.0f} tokens/s, {t['model_tflops']:.1f} TFLOP/s (6·N·tokens), "
                  f"peak {t['peak_gib'] or 0:.1f} GiB")  # fmt: skip
        except Exception as err:
            print(f"\ntraining `{system.name}` failed: {type(err).__name__}: {err}")
            result["training"] = {"system": system.name, "error": repr(err)}
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
