"""Autoencoder speed per preset (streaming encode/decode, batch 1) and AR-backbone FLOPs vs tokens/frame.

    python benchmarks/bench_autoencoder.py --threads 2 --presets tiny small_f32 small_f64

Times are per streamed frame after a warm-up, torch.inference_mode, fp32: the median over all frames and
the median of the quietest burst of 10 frames (the estimate for an unloaded machine).
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time

import torch

from avatarlm.autoencoder import DCAutoencoder
from avatarlm.config import AutoencoderConfig


def time_streaming(cfg: AutoencoderConfig, bursts: int, burst: int = 10, warmup: int = 5) -> dict[str, float]:
    """ms per frame of encode_step and decode_step, streaming one frame at a time.

    Frames are timed in ``bursts`` bursts of ``burst`` frames with short pauses between them; the median
    of the quietest burst estimates an unloaded machine, the median of all frames a shared one.
    """
    torch.manual_seed(0)
    model = DCAutoencoder(cfg).eval()
    x = torch.rand(1, 3, cfg.image_height, cfg.image_width) * 2 - 1
    enc: list[list[float]] = []
    dec: list[list[float]] = []
    with torch.inference_mode():
        cache = model.new_cache(x)  # a reference-conditioned decoder reads x as its reference
        for _ in range(warmup):
            model.decode_step(model.encode_step(x, cache), cache)
        for _ in range(bursts):
            enc.append([])
            dec.append([])
            for _ in range(burst):
                t0 = time.perf_counter()
                z = model.encode_step(x, cache)
                t1 = time.perf_counter()
                model.decode_step(z, cache)
                t2 = time.perf_counter()
                enc[-1].append(1e3 * (t1 - t0))
                dec[-1].append(1e3 * (t2 - t1))
            time.sleep(0.1)
    quiet = min(range(bursts), key=lambda i: statistics.median(dec[i]))
    return {
        "enc_ms": statistics.median(sum(enc, [])),
        "dec_ms": statistics.median(sum(dec, [])),
        "enc_quiet_ms": statistics.median(enc[quiet]),
        "dec_quiet_ms": statistics.median(dec[quiet]),
        "enc_params_m": sum(p.numel() for p in model.encoder.parameters()) / 1e6,
        "dec_params_m": sum(p.numel() for p in model.decoder.parameters()) / 1e6,
    }


def backbone_flops(
    tokens_per_frame: int, frames: int, width: int, layers: int, mlp_ratio: float
) -> dict[str, float]:
    """Attention + MLP FLOPs of a decoder-only transformer over a window of ``frames`` frames.

    Returns the full (frame-causal) forward over the window, and one streaming step: the newest frame's
    tokens attending to the whole window through a KV cache.
    """
    d, n = width, tokens_per_frame * frames
    linear_per_token = 2 * (4 * d * d + 2 * d * int(mlp_ratio * d))  # qkvo + 2-matrix MLP
    attn_full = 4 * d * n * (n + tokens_per_frame) / 2  # QK^T and AV, frame-causal ~ half the square
    step = tokens_per_frame * linear_per_token + 4 * d * tokens_per_frame * n
    return {"window": layers * (n * linear_per_token + attn_full), "step": layers * step}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--presets",
        nargs="+",
        default=["tiny", "small_f32", "small_f64"],
        choices=AutoencoderConfig.preset_names(),
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--reference-levels", type=int, nargs="+", default=[0, 4],
        help="decoder levels reading the reference frame, each timed (default: 0 and 4, the bundled AE's)",
    )  # fmt: skip
    parser.add_argument("--bursts", type=int, default=10, help="bursts of 10 streamed frames per model")
    parser.add_argument("--width", type=int, default=256, help="backbone width for the FLOP table")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--fps", type=int, default=25)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    print(
        f"# streaming encode/decode, batch 1, {args.threads} thread(s), fp32, "
        f"{args.bursts} bursts of 10 frames"
    )
    print("# ms: median over all frames (shared machine) | median of the quietest burst (unloaded estimate)")
    cols = [
        "preset",
        "temporal",
        "ref",
        "WxH",
        "latent",
        "tok/f",
        "enc M",
        "dec M",
        "enc ms",
        "dec ms",
        "enc q",
        "dec q",
    ]
    widths = [10, 8, 3, 8, 8, 5, 6, 6, 7, 7, 7, 7]
    print(" ".join(f"{c:>{w}}" for c, w in zip(cols, widths, strict=True)))
    for name in args.presets:
        for temporal, levels in itertools.product((False, True), args.reference_levels):
            cfg = AutoencoderConfig.preset(name, temporal=temporal, reference_levels=levels)
            r = time_streaming(cfg, args.bursts)
            row = [
                name,
                str(temporal),
                str(levels),
                f"{cfg.image_width}x{cfg.image_height}",
                f"{cfg.latent_channels}x{cfg.latent_height}x{cfg.latent_width}",
                str(cfg.tokens_per_frame),
            ]
            row += [f"{r[k]:.2f}" for k in ("enc_params_m", "dec_params_m", "enc_ms", "dec_ms")]
            row += [f"{r[k]:.2f}" for k in ("enc_quiet_ms", "dec_quiet_ms")]
            print(" ".join(f"{c:>{w}}" for c, w in zip(row, widths, strict=True)))

    print(
        f"\n# AR backbone FLOPs, {args.layers} layers x {args.width}, MLP 4x, 128x128 frames: "
        "16 tokens/frame (4x4, f32) vs 256 (16x16, f8); step = one frame through a KV cache"
    )
    print(
        f"{'window':>8} {'GFLOP/step 16':>14} {'GFLOP/step 256':>15} {'ratio':>6} {'GFLOP/window 16':>16} "
        f"{'GFLOP/window 256':>17} {'ratio':>6}"
    )
    for seconds in (1, 2, 4, 10):
        frames = seconds * args.fps
        a = backbone_flops(16, frames, args.width, args.layers, 4.0)
        b = backbone_flops(256, frames, args.width, args.layers, 4.0)
        step = f"{a['step'] / 1e9:14.3f} {b['step'] / 1e9:15.3f} {b['step'] / a['step']:6.1f}"
        window = f"{a['window'] / 1e9:16.2f} {b['window'] / 1e9:17.2f} {b['window'] / a['window']:6.1f}"
        print(f"{seconds:>6} s {step} {window}")


if __name__ == "__main__":
    main()
