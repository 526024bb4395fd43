"""Reconstruction quality of trained autoencoders, side by side: held-out synthetic identities (whole frame,
mouth region, SSIM, mouth-open probe, flicker per-frame vs streaming) and real photographs.

A reference-conditioned autoencoder (``reference_levels``) is measured twice: reading a reference frame
(each clip's last frame; for the real pan, its first) and without one (what the latent alone holds). The
real portraits are always decoded without a reference: with itself as the reference a photo is copied.

    python benchmarks/bench_ae_quality.py --data data/synth128 --model stage1=runs/ae_tiny_s1/model \
        --model stage2=runs/ae_tiny_s2/model --grid docs/ae_tiny_reconstructions.png
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from avatarlm.autoencoder.model import DCAutoencoder
from avatarlm.data.render_sheet import contact_sheet
from avatarlm.data.shards import iter_samples
from avatarlm.eval.ae_quality import evaluate_autoencoder, reconstruct_clip
from avatarlm.eval.image_metrics import flicker, psnr
from avatarlm.eval.real_frames import real_pan_clip, real_portraits
from avatarlm.media import write_png


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True)
    p.add_argument("--model", action="append", required=True, metavar="LABEL=DIR")
    p.add_argument("--split", default="test")
    p.add_argument("--clips", type=int, default=8)
    p.add_argument("--window", type=int, default=125, help="frames per clip (from the start)")
    p.add_argument("--grid", default=None, help="write a PNG: truth rows above reconstruction rows")
    args = p.parse_args()
    torch.set_num_threads(2)

    rows = []
    grid_models = []
    for item in args.model:
        label, _, folder = item.partition("=")
        model = DCAutoencoder.from_pretrained(folder).eval()
        h, w = model.config.image_height, model.config.image_width
        modes = [("per-frame", False, True), ("streaming", True, True)][: 2 if model.config.temporal else 1]
        if model.config.reference_levels:
            modes.append(("no reference", modes[-1][1], False))
        for mode, streaming, use_reference in modes:
            q = evaluate_autoencoder(
                model, args.data, args.split, args.clips, args.window, streaming, use_reference
            )
            real = {
                name: psnr(reconstruct_clip(model, img[None], streaming)[0], img)
                for name, img in real_portraits(h, w).items()
            }
            pan = real_pan_clip(h, w)
            pan_recon = reconstruct_clip(model, pan, streaming, pan[0] if use_reference else None)
            rows.append(
                (f"{label} ({mode})", q, real, flicker(pan_recon[1:], pan[1:]), psnr(pan_recon[1:], pan[1:]))
            )
        grid_models.append((label, model))

    print(f"split={args.split}, {rows[0][1].clips} clips x {rows[0][1].frames // rows[0][1].clips} frames")
    head = (
        "model",
        "PSNR",
        "mouth PSNR",
        "SSIM",
        "flicker",
        "mouth probe t/r",
        "astronaut",
        "chelsea",
        "real flicker",
        "real pan PSNR",
    )
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for name, q, real, real_flicker, pan_psnr in rows:
        print(
            f"| {name} | {q.psnr:.2f} | {q.mouth_psnr:.2f} | {q.ssim:.4f} | {q.flicker:.3f} "
            f"(truth motion {q.flicker_truth:.2f}) | {q.mouth_probe_truth:.3f}/{q.mouth_probe_recon:.3f} | "
            f"{real['astronaut']:.2f} | {real['chelsea']:.2f} | {real_flicker:.3f} | {pan_psnr:.2f} |"
        )

    if args.grid:
        label, model = grid_models[-1]
        h, w = model.config.image_height, model.config.image_width
        picks = []
        references = []
        for i, sample in enumerate(iter_samples(args.data, args.split)):
            if i >= 6:
                break
            picks.append(
                sample.frames[int(np.argmax(sample.truth["face"][:, 7]))]
            )  # a frame with the mouth open
            references.append(sample.frames[-1])
        picks += list(real_portraits(h, w).values())
        truth = np.stack(picks)
        recon = reconstruct_clip(model, truth, streaming=False)  # the real portraits: no reference
        for i, reference in enumerate(references):
            recon[i] = reconstruct_clip(model, truth[i : i + 1], False, reference)[0]
        write_png(args.grid, contact_sheet(list(truth) + list(recon), columns=len(truth)))
        print(f"wrote {args.grid} (top: input, bottom: {label} reconstruction)")


if __name__ == "__main__":
    main()
