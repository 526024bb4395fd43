"""`avatarlm eval lipsync`: generate held-out clips with a pipeline and score their lip-sync.

For each clip: the reference f_0 is the clip's first true frame (encoded by the pipeline's autoencoder);
frames 1..N-1 are generated from the clip's audio, pose and instructions. The mouth probe runs on the
generated frames, on the true frames and on their autoencoder reconstructions (the ceilings), against the
true mouth opening. A clip whose mouth stays shut in the frames read (a listener's turn) has no lip-sync to
score — a correlation with a constant is undefined — so it is passed over, named in ``skipped``, and the
next clip taken. Per-lag correlations are averaged over clips and the best lag is read from the mean.
Writes a side-by-side video (generated | truth, with the clip's sound), a trace plot and a JSON summary.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from avatarlm.data.face import FACE_STATE_FIELDS
from avatarlm.data.shards import iter_samples
from avatarlm.eval.ae_quality import reconstruct_clip
from avatarlm.eval.lipsync import (
    best_lag,
    is_constant,
    lagged_correlations,
    mouth_boxes,
    mouth_dark_level,
    mouth_trace,
)
from avatarlm.media import write_mp4
from avatarlm.pipeline.folder import Pipeline
from avatarlm.pipeline.offline import encode_reference, generate_clip
from avatarlm.trainer.ar_data import clip_from_sample, stack_conditions, window_conditions

MOUTH_OPEN = FACE_STATE_FIELDS.index("mouth_open")
SOURCES = ("generated", "reconstructed", "truth")


@dataclass
class LipSyncReport:
    frames: int
    max_lag: int
    curves: dict[str, dict[int, float]]  # source -> lag -> mean correlation over clips
    # one entry a clip: its key, language, whether its voice is the held-out one and, per source, its
    # correlation at offset 0 (their mean over clips is curves[source][0]): which faces and languages pull
    # the mean down
    per_clip: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # clips whose true opening is constant: nothing to score

    @property
    def clips(self) -> int:
        return len(self.per_clip)

    @property
    def languages(self) -> list[str]:
        return [clip["language"] for clip in self.per_clip]

    def best(self, source: str) -> tuple[int, float]:
        return best_lag(self.curves[source])

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"clips": self.clips, "frames": self.frames, "languages": self.languages}
        for s in SOURCES:
            lag, corr = self.best(s)
            out[s] = {"corr_at_0": self.curves[s][0], "best_lag": lag, "corr_at_best": corr}
        out["per_clip"], out["skipped"] = self.per_clip, self.skipped
        return out


def evaluate_lipsync(
    pipe: Pipeline,
    data: str | os.PathLike[str],
    split: str = "test",
    max_clips: int = 8,
    max_frames: int | None = None,
    max_lag: int = 3,
    seed: int = 0,
    out_dir: str | os.PathLike[str] | None = None,
    videos: int = 1,
    progress: bool = True,
    lip_strength: float = 1.0,
) -> LipSyncReport:
    """Score up to ``max_clips`` clips of ``split``; with ``out_dir``, write videos, a plot and JSON.
    ``lip_strength``: guidance on the audio while generating (1 = none), as in a session."""
    cfg = pipe.model.config.conditions
    sums = {s: dict.fromkeys(range(-max_lag, max_lag + 1), 0.0) for s in SOURCES}
    n_frames = 0
    per_clip: list[dict[str, Any]] = []
    skipped: list[str] = []
    traces: list[tuple[str, np.ndarray, dict[str, np.ndarray]]] = []
    for sample in iter_samples(Path(data), split):
        clip = clip_from_sample(sample)
        n = clip.n_frames if max_frames is None else min(clip.n_frames, max_frames)
        frames = sample.frames[:n]
        spec = sample.meta["spec"]
        truth = clip.truth["face"][1:n, MOUTH_OPEN].astype(np.float64)
        if is_constant(truth):
            skipped.append(sample.key)
            continue
        if frames.shape[1:3] != (pipe.autoencoder.config.image_height, pipe.autoencoder.config.image_width):
            raise ValueError(f"clip {sample.key} has {frames.shape[1:3]} frames; the pipeline makes others")
        parts = window_conditions(
            clip, 1, n - 1, 0, cfg.audio_streams, cfg.samples_per_frame, cfg.lookahead_frames
        )
        cond = stack_conditions([parts], cfg.modalities, 0)
        reference = encode_reference(pipe.autoencoder, frames[0])
        generated = generate_clip(
            pipe.autoencoder,
            pipe.model,
            reference,
            cond,
            seed=seed,
            progress=progress,
            lip_strength=lip_strength,
            reference_image=frames[0],
        )
        recon = reconstruct_clip(pipe.autoencoder, frames, True, frames[0])
        boxes = mouth_boxes(spec["identity_seed"], clip.truth["face"][:n], frames.shape[1], frames.shape[2])
        dark = mouth_dark_level(spec["identity_seed"])
        probes = {
            "generated": mouth_trace(generated[1:], boxes[1:], dark),
            "reconstructed": mouth_trace(recon[1:], boxes[1:], dark),
            "truth": mouth_trace(frames[1:], boxes[1:], dark),
        }
        clip_scores: dict[str, Any] = {
            "key": sample.key,
            "language": spec["language"],
            "held_out_voice": bool(spec.get("held_out_voice", False)),
        }
        for s in SOURCES:
            lagged = lagged_correlations(probes[s], truth, max_lag)
            for lag, c in lagged.items():
                sums[s][lag] += c
            clip_scores[s] = lagged[0]
        per_clip.append(clip_scores)
        traces.append((sample.key, truth, probes))
        if out_dir is not None and len(per_clip) <= videos:
            side = np.concatenate([generated, frames], axis=2)
            audio = clip.audio[0, : n * cfg.samples_per_frame]
            write_mp4(Path(out_dir) / f"{sample.key}_generated_vs_truth.mp4", side, cfg.fps, audio)
        n_frames += n - 1
        if len(per_clip) >= max_clips:
            break
    if not per_clip:
        raise ValueError(f"no clips with a moving mouth in split {split!r} of {data}")
    curves = {s: {k: v / len(per_clip) for k, v in sums[s].items()} for s in SOURCES}
    report = LipSyncReport(n_frames, max_lag, curves, per_clip, skipped)
    if out_dir is not None:
        out = Path(out_dir)
        (out / "lipsync.json").write_text(json.dumps(report.as_dict(), indent=1))
        plot_traces(out / "lipsync.png", traces[: min(3, len(traces))], cfg.fps)
    return report


def plot_traces(path: Path, traces: list[tuple[str, np.ndarray, dict[str, np.ndarray]]], fps: int) -> Path:
    """True mouth opening and the probe on generated / true frames, each scaled to zero mean, unit std."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def z(x: np.ndarray) -> np.ndarray:
        return (x - x.mean()) / (x.std() + 1e-9)

    fig, axes = plt.subplots(len(traces), 1, figsize=(9, 2.4 * len(traces)), dpi=100, squeeze=False)
    for ax, (key, truth, probes) in zip(axes[:, 0], traces, strict=True):
        t = np.arange(1, len(truth) + 1) / fps
        ax.plot(t, z(truth), color="black", lw=1.2, label="true mouth opening")
        ax.plot(t, z(probes["truth"]), color="tab:green", lw=0.8, alpha=0.7, label="probe on true frames")
        ax.plot(t, z(probes["generated"]), color="tab:red", lw=1.0, label="probe on generated frames")
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("seconds")
    axes[0, 0].legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
