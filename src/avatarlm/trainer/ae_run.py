"""`avatarlm train ae`: sample clips of a dataset's train split and train one autoencoder stage."""

from __future__ import annotations

import os
from pathlib import Path

from avatarlm.config import AETrainConfig
from avatarlm.data.frame_sampler import FrameSampler
from avatarlm.trainer.ae import train_autoencoder


def run_ae_training(
    cfg: AETrainConfig,
    data: str | os.PathLike[str],
    out: str | os.PathLike[str],
    steps: int,
    batch: int = 16,
    window: int = 1,
    max_clips: int | None = None,
    progress: bool = True,
) -> Path:
    """Train (resuming ``out``) on ``batch`` windows of ``window`` frames per step; returns ``out/model``."""
    if batch < 1 or steps < 1 or window < 1:
        raise ValueError(f"batch, steps and window must be at least 1, got {batch}, {steps} and {window}")
    sampler = FrameSampler(Path(data), "train", window=window, max_clips=max_clips, show_progress=progress)
    want = (cfg.autoencoder.image_height, cfg.autoencoder.image_width, 3)
    if sampler.frame_shape != want:
        raise ValueError(f"dataset frames are {sampler.frame_shape}, the autoencoder needs {want}")
    if progress:
        print(f"training on {len(sampler.clips)} clips, {sampler.n_frames} frames")
    train_autoencoder(cfg, lambda rng: sampler(rng, batch), out, steps, progress=progress)
    return Path(out) / "model"
