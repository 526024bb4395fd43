"""Before/after figures of a character fine-tune (`avatarlm train character`), on one person's clips.

For every clip (from ingested footage, ideally held out of the fine-tune):
- **identity**: the autoencoder's reconstruction PSNR of the true frames (can the decoder draw this face?)
  and the PSNR of a whole session against the true frames (the session starts from the clip's first frame
  and hears its sound and pose), over the clip and over its last second (has the face drifted?);
- **lip-sync**: the lip-audio agreement of the generated video, measured as ingestion measures real footage
  (the face mesh's lip gap against loudness, best within ±2 frames), beside the true footage's own.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from avatarlm.data.face_landmarks import POINTS, lip_gap, to_pixels
from avatarlm.data.ingest_quality import LAGS, lip_audio_agreement
from avatarlm.data.shards import Sample
from avatarlm.eval.ae_quality import reconstruct_clip
from avatarlm.eval.eval_generate import stream_clip
from avatarlm.eval.image_metrics import psnr
from avatarlm.pipeline.folder import Pipeline
from avatarlm.trainer.ar_data import clip_from_sample

TRACK_SIZE = 256  # generated frames are enlarged to this before the face mesh reads them


def generated_lip_sync(frames: np.ndarray, audio: np.ndarray, fps: float, tracker, lags: int = LAGS) -> float:
    """Lip-audio agreement of a (generated) clip, best within ``lags`` frames; NaN when the face mesh finds no
    face in half its frames."""
    import cv2

    meshes = []
    for i, f in enumerate(frames):
        big = cv2.resize(f, (TRACK_SIZE, TRACK_SIZE), interpolation=cv2.INTER_CUBIC)
        mesh = tracker.track(big, reset=i == 0)
        meshes.append(np.full((POINTS, 3), np.nan, np.float32) if mesh is None else mesh)
    points = to_pixels(np.stack(meshes), TRACK_SIZE, TRACK_SIZE)
    found = ~np.isnan(points[:, 0, 0])
    if found.mean() < 0.5:
        return float("nan")
    gap = lip_gap(points)
    gap[~found] = np.nanmean(gap)  # frames without a face carry no lip motion
    return lip_audio_agreement(gap, audio, fps, lags)


def clip_figures(
    pipe: Pipeline, sample: Sample, tracker, max_frames: int
) -> tuple[dict[str, Any], np.ndarray]:
    """The figures of one clip, and the session's frames."""
    frames = sample.frames[:max_frames]
    n = len(frames)
    fps = float(pipe.fps)
    clip = clip_from_sample(sample)
    recon = reconstruct_clip(pipe.autoencoder, frames, True, frames[0])  # as the session decodes
    generated, _ = stream_clip(pipe, clip, frames[0], n)
    last = max(1, n - int(fps))
    audio = sample.audio["self"][: int(round(n * 16_000 / fps))]
    figures = {
        "key": sample.key,
        "frames": n,
        "reconstruction_psnr": psnr(recon, frames),
        "session_psnr": psnr(generated[1:], frames[1:]),
        "session_psnr_last_second": psnr(generated[last:], frames[last:]),
        "lip_sync": generated_lip_sync(generated, audio, fps, tracker),
        "lip_sync_footage": float(sample.meta.get("quality", {}).get("lip_sync", float("nan"))),
    }
    return figures, generated


def character_figures(
    pipe: Pipeline, samples: list[Sample], tracker, max_seconds: float = 10.0
) -> tuple[dict[str, Any], np.ndarray]:
    """Per-clip figures and their means (NaN-aware) over ``samples``, and the first clip's session."""
    max_frames = max(2, int(round(max_seconds * pipe.fps)))
    results = [clip_figures(pipe, s, tracker, max_frames) for s in samples]
    clips = [figures for figures, _ in results]
    keys = [k for k in clips[0] if k not in ("key", "frames")]
    mean = {k: float(np.nanmean([c[k] for c in clips])) if any(np.isfinite(c[k]) for c in clips) else float("nan")
            for k in keys}  # fmt: skip
    return {"clips": clips, "mean": mean}, results[0][1]
