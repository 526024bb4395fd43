"""`avatarlm train ar`: load the cached latents and clips, train (alone or under torchrun), write the
pipeline folder (``OUT/pipeline``: the autoencoder + the EMA AR model)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from avatarlm.autoencoder.model import DCAutoencoder
from avatarlm.model import ARModel
from avatarlm.pipeline.folder import check_compatible, check_device, save_pipeline
from avatarlm.trainer.ar import train_ar, window_sampler
from avatarlm.trainer.ar_config import ARTrainConfig
from avatarlm.trainer.ar_data import load_ar_clips
from avatarlm.trainer.checkpoint import latest_checkpoint
from avatarlm.trainer.distributed import init_distributed, shutdown
from avatarlm.trainer.pretrained_backbone import pretrained_init_state


def run_ar_training(
    preset: str,
    data: str | os.PathLike[str],
    ae_folder: str | os.PathLike[str],
    tag: str,
    out: str | os.PathLike[str],
    steps: int,
    device: str = "cpu",
    overrides: dict[str, Any] | None = None,
    progress: bool = True,
    backbone_weights: str | os.PathLike[str] | None = None,
) -> Path | None:
    """Train and write ``out/pipeline``; returns its path (None on processes other than the first).
    ``backbone_weights``: a local Qwen2 / Qwen2.5 folder that a fresh run's backbone starts from."""
    check_device(device)
    ae = DCAutoencoder.from_pretrained(ae_folder)
    # the autoencoder says which channels hold the mouth (ARConfig.mouth_loss_weight weighs them)
    mouth = {"model.mouth_channels": ae.config.mouth_channels} if ae.config.mouth_channels else {}
    cfg = ARTrainConfig.from_preset_or_file(preset).with_overrides({**mouth, **(overrides or {})})
    with torch.device("meta"):  # shapes only
        check_compatible(ae, ARModel(cfg.model))
    fresh = latest_checkpoint(Path(out) / "checkpoints") is None  # a resumed run has its weights
    init = (
        pretrained_init_state(cfg.model, backbone_weights, cfg.seed) if backbone_weights and fresh else None
    )
    ctx = init_distributed(device)
    try:
        train = window_sampler(cfg, load_ar_clips(data, tag, "train", progress and ctx.is_main))
        try:
            val = window_sampler(cfg, load_ar_clips(data, tag, "val", progress=False))
        except ValueError:
            val = None  # no validation split: train loss only
        if ctx.is_main:
            frames = sum(c.n_frames for c in train.clips)
            fps = cfg.model.conditions.fps
            print(f"training on {len(train.clips)} clips, {frames} frames ({frames / fps / 60:.1f} min)")
        model = train_ar(cfg, train, out, steps, val_sampler=val, ctx=ctx, progress=progress, init_state=init)
        if not ctx.is_main:
            return None
        return save_pipeline(Path(out) / "pipeline", ae_folder, model.to("cpu"), Path(preset).stem)
    finally:
        shutdown(ctx)
