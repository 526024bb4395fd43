"""Streaming decode, one frame at a time, on one device: the memory layouts and number formats side by side.

    python benchmarks/bench_gpu_decoder.py --device cuda --out runs/bench_gpu_decoder
    python benchmarks/bench_gpu_decoder.py --device cpu --aes bundled --frames 8     # a quick check

Each autoencoder decodes the same random latents through its streaming cache (``decode_step``, temporal
layers and, for a reference-reading model, the reference's features included), as a session does. Modes:
``fp32``; ``tf32`` (fp32 convs and matrix products on the tensor cores); ``cl`` (channels-last weights and
inputs: cuDNN's NHWC kernels); ``bf16`` (autocast). Times are per frame from CUDA events (wall clock on a
CPU), the median over ``--frames`` after a warm-up; ``max diff`` is the largest pixel difference from fp32
on the [0, 255] scale, so a faster mode that draws another picture shows.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import numpy as np
import torch

from avatarlm.autoencoder.model import DCAutoencoder
from avatarlm.config import AutoencoderConfig

MODES = ("fp32", "tf32", "tf32+cl", "bf16", "bf16+cl")
BUNDLED = Path(__file__).resolve().parents[1] / "models" / "tiny" / "ae"


def build(name: str, device: torch.device) -> DCAutoencoder:
    """``bundled`` (the shipped weights) or an autoencoder preset with its temporal layers (random weights)."""
    if name == "bundled":
        return DCAutoencoder.from_pretrained(BUNDLED).to(device).eval()
    torch.manual_seed(0)
    with torch.device(device):
        return DCAutoencoder(AutoencoderConfig.preset(name, temporal=True)).eval()


@contextmanager
def mode_context(device: torch.device, mode: str) -> Iterator[None]:
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; known: {MODES}")
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    tf32 = mode.startswith("tf32")
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
    try:
        with torch.autocast(device.type, dtype=torch.bfloat16) if mode.startswith("bf16") else nullcontext():
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def layout(ae: DCAutoencoder, mode: str) -> torch.memory_format:
    fmt = torch.channels_last if mode.endswith("+cl") else torch.contiguous_format
    ae.to(memory_format=fmt)
    return fmt


@torch.no_grad()
def stream(ae: DCAutoencoder, latents: torch.Tensor, reference: torch.Tensor | None, mode: str) -> tuple:
    """Decode ``latents`` (N, C, h, w) frame by frame; returns (ms per frame, each; frames in [0, 255])."""
    device = latents.device
    fmt = layout(ae, mode)
    times, frames = [], []
    with mode_context(device, mode):
        cache = ae.new_cache(None if reference is None else reference.contiguous(memory_format=fmt))
        for z in latents:
            z = z[None].contiguous(memory_format=fmt)
            if device.type == "cuda":
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                x = ae.decode_step(z, cache)
                end.record()
                torch.cuda.synchronize()
                times.append(start.elapsed_time(end))
            else:
                t0 = time.perf_counter()
                x = ae.decode_step(z, cache)
                times.append((time.perf_counter() - t0) * 1e3)
            frames.append(x.float().add(1).mul(127.5).clamp(0, 255))
    layout(ae, "fp32")
    return times, torch.cat(frames)


def run(name: str, modes: list[str], frames: int, warmup: int, device: torch.device) -> dict:
    ae = build(name, device)
    c = ae.config
    g = torch.Generator(device="cpu").manual_seed(1)
    latents = torch.randn(warmup + frames, *ae.latent_shape, generator=g).to(device)
    reference = None
    if c.reference_levels:
        reference = (torch.rand(1, 3, c.image_height, c.image_width, generator=g) * 2 - 1).to(device)
    row: dict = {"ae": name, "size": f"{c.image_height}x{c.image_width}", "tokens": ae.tokens_per_frame}
    base = None
    for mode in modes:
        times, out = stream(ae, latents, reference, mode)
        base = out if base is None else base
        row[mode] = {
            "ms": float(np.median(times[warmup:])),
            "p90_ms": float(np.percentile(times[warmup:], 90)),
            "max_diff": float((out - base).abs().max()),
        }
        print(
            f"{name:10s} {mode:8s} {row[mode]['ms']:7.2f} ms  max diff {row[mode]['max_diff']:.2f}",
            flush=True,
        )
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda")
    p.add_argument("--aes", default="bundled,small_f64,paper", help="comma-separated: bundled or AE presets")
    p.add_argument("--modes", default=",".join(MODES))
    p.add_argument("--frames", type=int, default=60)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--out", default=None, help="folder for results.json")
    args = p.parse_args()
    device = torch.device(args.device)
    modes = args.modes.split(",")
    for mode in modes:
        if mode not in MODES:
            p.error(f"unknown mode {mode!r}; known: {', '.join(MODES)}")
    rows = [run(name, modes, args.frames, args.warmup, device) for name in args.aes.split(",")]
    print(f"\n| autoencoder | {' | '.join(modes)} |\n|---|{'---|' * len(modes)}")
    for r in rows:
        cells = [f"{r[m]['ms']:.2f} ms ({r['fp32']['ms'] / r[m]['ms']:.2f}x, diff {r[m]['max_diff']:.1f})"
                 if "fp32" in r else f"{r[m]['ms']:.2f} ms" for m in modes]  # fmt: skip
        print(f"| {r['ae']} ({r['size']}, {r['tokens']} tokens) | {' | '.join(cells)} |")
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        info = {"device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu", "rows": rows}
        (Path(args.out) / "results.json").write_text(json.dumps(info, indent=2))


if __name__ == "__main__":
    main()
