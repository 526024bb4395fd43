"""The text of ``docs/scaling.md``'s measured section: what ``benchmarks/bench_gpu.py`` measured on a GPU
(its ``results.json`` files kept under ``docs/``), set against the projections of the sections before it."""

from __future__ import annotations

import json
from pathlib import Path

from scaling_hardware import H100, TRAIN_MFU
from scaling_render import Report, ms, table

RESULTS = sorted((Path(__file__).resolve().parents[1] / "docs").glob("bench_gpu_*.json"))


def _load(paths: list[Path]) -> list[dict]:
    return [json.loads(p.read_text()) | {"file": p.name} for p in paths]


def measured_on_gpu(rep: Report, paths: list[Path] = RESULTS) -> list[str]:
    runs = _load(paths)
    if not runs:
        return []
    rows, training, mfus = [], [], []
    for run in runs:
        for key, r in run["streaming"].items():
            if "error" in r:
                continue
            name, mode = key.split("/", 1)
            proj = rep.gpu[name]
            c, lip = r["compute_ms"], r["audio_to_lip_ms"]
            rows.append(
                f"{run['device']} | `{name}` | {mode} | {r['real_time_factor']:.2f} | {c['p50']:.1f} / {c['p95']:.1f} | "
                f"{lip['p50']:,.0f} / {lip['p95']:,.0f} | {ms(proj.eager_s)} / {ms(proj.frame_s)} | `{run['file']}`"
            )
        t = run.get("training")
        if t and "error" not in t:
            tw = rep.windows[t["system"]]
            mfu = t["batch_windows"] * tw.total / t["step_s"] / H100.peak_flops
            mfus.append(mfu)
            training.append(
                f"{run['device']} | `{t['system']}` | {t['batch_windows']} x {t['window_tokens']:,} | "
                f"{'yes' if t['checkpointing'] else 'no'} | {t['step_s']:.2f} s | {t['tokens_per_s']:,.0f} | "
                f"{t['model_tflops']:.0f} | {mfu:.0%} | {t['peak_gib']:.0f} GiB | `{run['file']}`"
            )
    return [
        "## Measured on a GPU\n",
        "`python benchmarks/bench_gpu.py --device cuda --out DIR` (random weights; the results files are kept in "
        "`docs/`). Streaming: one session, 6–8 s of speech-like audio, the real `StreamingSession`; compute is "
        "per frame (backbone step + head + decode + conditions), audio-to-lip from the paced run at wall-clock "
        "pace. `+graphs`: the backbone's steps (`backbone_graphs.StaticKVCache`) and the head's sampling "
        "(`head/graphed.py`) replayed as CUDA graphs, the session's default on a GPU; `tf32`: fp32 matrix "
        "products on the tensor cores. The projection column is this document's H100 eager / roofline "
        "time per frame.\n",
        *table(
            "card | system | mode | real-time factor | compute p50 / p95, ms | audio-to-lip p50 / p95, ms | "
            "projected eager / roofline, ms (H100) | file",
            rows,
        ),
        *table(
            "card | system | windows x tokens per step | activation checkpointing | step | tokens/s | "
            "TFLOP/s (6 N tokens) | MFU | peak memory | file",
            training,
        ),
        f"Training: one process, the real `train_ar` (bf16 autocast, AdamW, EMA) on random latents, without "
        f"FSDP (the 64 GB of state fit an H200). The cost tables above assume {TRAIN_MFU:.0%} MFU; at the "
        f"measured {max(mfus, default=TRAIN_MFU):.0%} a run costs {TRAIN_MFU / max(mfus, default=TRAIN_MFU):.1f}x "
        "their GPU-hours. Levers not taken yet: attention through SDPA with an additive mask computes every "
        "score of the frame-causal mask (a block-sparse kernel would skip about half), fp32 master weights "
        "are cast at every use, and nothing is compiled. The MFU counts every FLOP of the window (section "
        "above) against 989 TFLOP/s, the dense bf16 peak of the H100 and the H200 alike. Streaming: "
        "at batch 1 eager PyTorch is launch-bound, as projected; graphs and TF32 bring `paper` to real time "
        "on one card, still far above its roofline. With graphs it is no longer launch-bound: `bench_gpu.py "
        "--systems paper --modes tf32+graphs --seconds 2 --profile 12` (`docs/bench_gpu_h200_profile.txt`; "
        "that short session ran at 1.28x real time, 24.3 ms a frame) finds the CPU waiting on the GPU, which "
        "is busy 20.7 ms a frame: matrix products 8.4 ms (TF32 kernels with 64-row tiles reading 11 GB of "
        "fp32 weights a step, ~1.5 TB/s of the card's 4.8), element-wise kernels and norms 4.8 ms, the "
        "decoder's convolutions 3.0 ms plus 1.1 ms converting NCHW to NHWC for cuDNN, attention 1.2 ms. "
        "Since then (`bench_gpu_h200_bf16w.json`, both modes in one run): bf16 weights (`bf16w`, half the "
        "bytes) take `paper` from 32.4 to 26.0 ms a frame; and `benchmarks/bench_gpu_decoder.py` "
        "(`decoder_h200.json`) times the `paper` decoder alone at 12.9 ms in fp32, 6.1 with TF32 convolutions "
        "and 5.8 channels-last: the layout gains 5% there and loses at the small decoders. Next levers: fused "
        "norms, and the decoder as a CUDA graph.\n",
    ]
