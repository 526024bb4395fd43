"""Drift of free-running sessions, models side by side: each model streams the same unseen test faces for
``--seconds`` (the clip's voice on a loop, through the product's own session: rolling window, streaming
decode), and we track how far the static region (background, clothes: pixels the true clip never changes)
moves from the reference, how sharp the frames stay against the truth, and the lip-sync (darkness probe
against the true mouth opening) in the first and last segments; and how much the head still moves: the
spread of the pixel probe's head yaw / pitch / roll over the last segment against the truth's (a session
pulled back to its reference, ``--anchor``, must not freeze).

    python benchmarks/drift_sessions.py --data data/synth128 --model bundled=models/tiny \
        --model own=runs/dx_own/pipeline --seconds 60 --plot docs/drift_sessions.png
"""

from __future__ import annotations

import argparse
import os

import numpy as np
import torch

from avatarlm.data.face import FACE_STATE_FIELDS
from avatarlm.data.shards import iter_samples
from avatarlm.eval.clip_metrics import sharpness, static_distance, static_mask
from avatarlm.eval.eval_generate import looped, stream_clip
from avatarlm.eval.lipsync import lagged_correlations, mouth_boxes, mouth_dark_level, mouth_trace
from avatarlm.eval.pixel_probe import PROBED, PixelProbe, unscale
from avatarlm.pipeline.folder import load_pipeline
from avatarlm.pipeline.session import SessionConfig
from avatarlm.trainer.ar_data import clip_from_sample

MOUTH_OPEN = FACE_STATE_FIELDS.index("mouth_open")
HEAD = ("yaw", "pitch", "roll")


def head_motion(probe: PixelProbe, frames: np.ndarray, faces: np.ndarray) -> float:
    """Spread (std over time, degrees, mean of yaw / pitch / roll) of the head pose the probe reads in
    ``frames``, over the spread of the true pose ``faces`` (N, fields): 1 moves as much as the truth, 0 is
    a still head."""
    controls, _ = probe.read(frames)
    read = [unscale(controls[:, PROBED.index(k)], k).std() for k in HEAD]
    true = [faces[:, FACE_STATE_FIELDS.index(k)].std() for k in HEAD]
    return float(np.mean(read) / max(np.mean(true), 1e-6))


def session_drift(
    pipe, probe: PixelProbe, sample, n: int, segment: int, fps: int, anchor: float | None = None
) -> dict[str, object]:
    """Per-second static distance and sharpness gap, lip-sync r (best of lags -1..1) in the first and
    last ``segment`` frames of an ``n``-frame session on ``sample``'s inputs, and the head's motion in the
    last segment."""
    clip = clip_from_sample(sample)
    frames, _ = stream_clip(pipe, clip, sample.frames[0], n, SessionConfig(anchor=anchor))
    static = static_distance(frames, sample.frames[0], static_mask(sample.frames))
    sharp_gap = sharpness(frames).mean(axis=1) - sharpness(sample.frames).mean()
    faces = looped(clip.truth["face"], n)
    identity = sample.meta["spec"]["identity_seed"]
    boxes = mouth_boxes(identity, faces, frames.shape[1], frames.shape[2])
    mouth = mouth_trace(frames, boxes, mouth_dark_level(identity))
    truth = faces[:, MOUTH_OPEN].astype(np.float64)

    def sync(sl: slice) -> float:
        return max(lagged_correlations(mouth[sl], truth[sl], 1).values())

    seconds = n // fps
    return dict(
        motion=head_motion(probe, frames[n - segment :], faces[n - segment :]),
        static=[float(static[i * fps : (i + 1) * fps].mean()) for i in range(seconds)],
        sharp=[float(sharp_gap[i * fps : (i + 1) * fps].mean()) for i in range(seconds)],
        sync_first=sync(slice(1, segment)),
        sync_last=sync(slice(n - segment, n)),
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True)
    p.add_argument("--model", action="append", required=True, metavar="LABEL=DIR", help="pipeline folders")
    p.add_argument("--split", default="test")
    p.add_argument("--clips", type=int, default=4, help="unseen monologue clips")
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--segment", type=float, default=10.0, help="seconds of the first and last segments")
    p.add_argument(
        "--anchor",
        default="default",
        help="comma-separated SessionConfig.anchor values, a row each ('default': the pipeline's)",
    )
    p.add_argument("--probe", default="models/probe", help="pixel probe folder (head motion)")
    p.add_argument("--plot", default=None, help="PNG: static distance over time per model")
    args = p.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))

    samples = []
    for sample in iter_samples(args.data, args.split):
        if sample.meta["spec"]["kind"] == "monologue":
            samples.append(sample)
        if len(samples) == args.clips:
            break
    curves: dict[str, np.ndarray] = {}
    probe = PixelProbe.from_pretrained(args.probe)
    print(f"{len(samples)} unseen faces x {args.seconds:g} s; first / last {args.segment:g} s")
    print(
        "| model | static distance, first | last | last / first | sharpness vs truth, first | last "
        "| lip-sync r, first | last | head motion, last / truth |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    anchors = [None if a.strip() == "default" else float(a) for a in args.anchor.split(",")]
    for item in args.model:
        label, _, folder = item.partition("=")
        pipe = load_pipeline(folder)
        fps = pipe.model.config.conditions.fps
        n, seg = int(args.seconds * fps), int(args.segment * fps)
        for anchor in anchors:
            name = (
                label
                if len(anchors) == 1
                else f"{label}, anchor {anchor if anchor is not None else 'default'}"
            )
            runs = [session_drift(pipe, probe, s, n, seg, fps, anchor) for s in samples]
            static = np.mean([r["static"] for r in runs], axis=0)
            sharp = np.mean([r["sharp"] for r in runs], axis=0)
            k = int(args.segment)
            first, last = static[:k].mean(), static[-k:].mean()
            sync_first = np.mean([r["sync_first"] for r in runs])
            sync_last = np.mean([r["sync_last"] for r in runs])
            motion = np.mean([r["motion"] for r in runs])
            curves[name] = static
            print(f"| {name} | {first:.2f} | {last:.2f} | {last / first:.2f} | {sharp[:k].mean():+.3f} | "
                  f"{sharp[-k:].mean():+.3f} | {sync_first:+.3f} | {sync_last:+.3f} | {motion:.2f} |", flush=True)  # fmt: skip
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 3.5))
        for label, curve in curves.items():
            ax.plot(np.arange(1, len(curve) + 1), curve, label=label)
        ax.set_xlabel("session time (s)")
        ax.set_ylabel("static distance (grey levels)")
        ax.set_ylim(bottom=0)
        ax.legend()
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(args.plot, dpi=120)
        print(f"wrote {args.plot}")


if __name__ == "__main__":
    main()
