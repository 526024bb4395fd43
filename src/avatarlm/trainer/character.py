"""`avatarlm train character`: adapt a pipeline to one person's footage, the paper's answer to identity
drift, in a bounded time.

1. The videos are ingested (`data ingest`) at the pipeline's frame size and rate: ``OUT/footage`` (train)
   and, when there is one, the held-out video in ``OUT/held_out``. Held out: ``--eval-video``, else the last
   of two or more ``--video``; with one video and no ``--eval-video`` the figures are on seen footage, and
   say so.
2. The autoencoder's decoder learns the face (``ae_steps``, stage "decoder": the encoder and the latent
   normalisation stay, so the AR model's latent space is unchanged).
3. The AR model is fine-tuned on the footage's latents (``ar_steps``, the fine-tuning settings of `train
   duplex`: learning rate 1e-4, short warm-up).
4. ``OUT/pipeline`` is written, and the same figures (:mod:`avatarlm.eval.character`) are measured for the
   pipeline before and after: ``OUT/character.json`` and ``OUT/character.md``, and ``OUT/before_after.mp4``
   shows the first clip: the footage | a session of the pipeline before | after (with the clip's sound).

Each stage resumes (ingestion by content hash, trainings from their checkpoints), so a rerun after a kill
goes on where it stopped.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from avatarlm.autoencoder.latent_cache import encode_dataset
from avatarlm.data.face_tracker import FaceTracker
from avatarlm.data.ingest import IngestConfig, ingest
from avatarlm.data.ingest_quality import QualityConfig
from avatarlm.data.shards import iter_samples
from avatarlm.eval.character import character_figures
from avatarlm.io import atomic_write_bytes, atomic_write_json
from avatarlm.media import write_mp4
from avatarlm.pipeline.folder import load_pipeline, save_pipeline
from avatarlm.trainer.ae_config import AETrainConfig
from avatarlm.trainer.ae_run import run_ae_training
from avatarlm.trainer.ar import train_ar, window_sampler
from avatarlm.trainer.ar_config import ARTrainConfig
from avatarlm.trainer.ar_data import load_ar_clips
from avatarlm.trainer.duplex_run import FINE_TUNE

TAG = "character"
AE_FINE_TUNE: dict[str, Any] = {"lr": 1e-4, "warmup_steps": 20, "checkpoint_every": 100}


def _ingest(
    videos: Sequence[str],
    out: Path,
    size: int,
    fps: float,
    split: str,
    quality: QualityConfig,
    progress: bool,
) -> Path:
    cfg = IngestConfig(out=str(out), size=size, fps=fps, split=split, quality=quality)
    report = ingest(list(videos), cfg, progress=progress)
    if not any(e["status"] == "ingested" for e in report["videos"].values()):
        reasons = "; ".join(f"{e['file']}: {e.get('reason')}" for e in report["videos"].values())
        raise ValueError(f"no clip of {', '.join(videos)} could be used ({reasons})")
    return out


def figures_table(before: dict[str, Any], after: dict[str, Any], seen: bool) -> str:
    rows = [("autoencoder reconstruction PSNR, dB", "reconstruction_psnr"),
            ("session vs true frames PSNR, dB", "session_psnr"),
            ("the same, last second", "session_psnr_last_second"),
            ("lip-audio agreement of the session", "lip_sync")]  # fmt: skip
    where = "seen footage (no held-out video)" if seen else "a held-out video"
    lines = [f"Character fine-tune, measured on {where}; footage's own lip-audio agreement "
             f"{after['mean']['lip_sync_footage']:.3f}", "", "| measure | before | after |", "|---|---|---|"]  # fmt: skip
    lines += [f"| {label} | {before['mean'][k]:.3f} | {after['mean'][k]:.3f} |" for label, k in rows]
    return "\n".join(lines)


def run_character_training(
    init: str | os.PathLike[str],
    videos: Sequence[str],
    out: str | os.PathLike[str],
    ae_steps: int = 300,
    ar_steps: int = 300,
    eval_video: str | None = None,
    overrides: dict[str, Any] | None = None,
    eval_seconds: float = 10.0,
    progress: bool = True,
    quality: QualityConfig | None = None,
) -> Path:
    """Fine-tune pipeline ``init`` on ``videos``; returns ``out/pipeline`` (figures in ``out/character.*``)."""
    if not videos:
        raise ValueError("give at least one --video of the person")
    if ae_steps < 0 or ar_steps < 1:
        raise ValueError(f"--ae-steps must be >= 0 and --ar-steps >= 1, got {ae_steps} and {ar_steps}")
    init, out = Path(init), Path(out)
    before = load_pipeline(init)
    ae_cfg = before.autoencoder.config
    if ae_cfg.image_height != ae_cfg.image_width:
        raise ValueError("ingestion crops square frames; this pipeline's frames are not square")
    held = [eval_video] if eval_video else list(videos[-1:]) if len(videos) > 1 else []
    train_videos = list(videos) if eval_video or len(videos) == 1 else list(videos[:-1])
    size, fps = ae_cfg.image_height, float(before.fps)
    quality = quality or QualityConfig()
    footage = _ingest(train_videos, out / "footage", size, fps, "train", quality, progress)
    held_out = _ingest(held, out / "held_out", size, fps, "test", quality, progress) if held else None
    for data in filter(None, (footage, held_out)):
        encode_dataset(before.autoencoder, data, TAG, show_progress=progress)

    ae_folder = init / "ae"
    if ae_steps:
        cfg = AETrainConfig(autoencoder=ae_cfg.replace(mouth_channels=0), stage="decoder", init_from=str(init / "ae"),
                            **AE_FINE_TUNE)  # fmt: skip
        ae_folder = run_ae_training(cfg, footage, out / "ae", ae_steps, batch=8, progress=progress)
    ar_cfg = ARTrainConfig(model=before.model.config, **FINE_TUNE).with_overrides(overrides or {})
    clips = load_ar_clips(footage, TAG, "train", progress)
    model = train_ar(ar_cfg, window_sampler(ar_cfg, clips), out / "ar", ar_steps, progress=progress,
                     init_state=before.model.state_dict())  # fmt: skip
    preset = f"{before.info.get('preset', '')}-character"
    pipeline = save_pipeline(out / "pipeline", ae_folder, model.to("cpu"), preset)

    samples = list(iter_samples(held_out or footage))
    with FaceTracker() as tracker:
        figures_before, frames_before = character_figures(before, samples, tracker, eval_seconds)
        figures_after, frames_after = character_figures(
            load_pipeline(pipeline), samples, tracker, eval_seconds
        )
    figures: dict[str, Any] = {"before": figures_before, "after": figures_after}
    truth = samples[0].frames[: len(frames_after)]
    side_by_side = np.concatenate([truth, frames_before, frames_after], axis=2)  # footage | before | after
    sound = samples[0].audio["self"][: int(round(len(truth) / fps * 16_000))]
    write_mp4(out / "before_after.mp4", side_by_side, fps, audio=sound)
    figures.update(init=str(init), videos=list(videos), held_out=held, ae_steps=ae_steps, ar_steps=ar_steps)
    atomic_write_json(out / "character.json", figures)
    table = figures_table(figures["before"], figures["after"], seen=not held)
    atomic_write_bytes(out / "character.md", (table + "\n").encode())
    if progress:
        print(table)
    return pipeline
