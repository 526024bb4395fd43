"""`avatarlm train duplex`: fine-tune a pipeline's AR model to hear two audio streams (self, partner) on
the synthetic dialogues, and write the duplex pipeline (``OUT/pipeline``: the same autoencoder + the EMA
duplex model).

The duplex model starts from the init pipeline's weights (see :mod:`.duplex_init`; a duplex init is simply
fine-tuned further) and trains with :func:`~avatarlm.trainer.ar.train_ar`. A share ``dialogue_fraction`` of
the windows comes from dialogue clips (a partner who speaks: turns, overlaps, listening), the rest from
monologues (a silent partner). A rerun of the same OUT resumes from its last checkpoint, not from the init.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from avatarlm.io import atomic_write_json, read_json
from avatarlm.model import ARModel
from avatarlm.pipeline.folder import check_device, load_pipeline, save_pipeline
from avatarlm.trainer.ar import train_ar, window_sampler
from avatarlm.trainer.ar_config import ARTrainConfig
from avatarlm.trainer.ar_data import ARClip, WindowSampler, load_ar_clips
from avatarlm.trainer.checkpoint import LATEST
from avatarlm.trainer.distributed import init_distributed, shutdown
from avatarlm.trainer.duplex_init import duplex_state

DEFAULT_DIALOGUE_FRACTION = 0.75
# Fine-tuning settings over the ARTrainConfig defaults (a choice, not a measured optimum): a smaller
# learning rate and a short warm-up, since the model starts trained.
FINE_TUNE: dict[str, Any] = {"lr": 1e-4, "warmup_steps": 50, "ema_decay": 0.995, "checkpoint_every": 250}
PLAN_FILE = "duplex.json"


@dataclass(frozen=True)
class DuplexPlan:
    """What a duplex run starts from; a rerun of its folder must ask for the same (``steps`` may change)."""

    init: str  # the init pipeline folder, resolved
    tag: str  # the dataset's latent set
    dialogue_fraction: float
    train: dict[str, Any]  # the ARTrainConfig


def is_dialogue(clip: ARClip) -> bool:
    """A dialogue clip: so says its synthetic spec, or (clips without one) its partner stream is not silent."""
    kind = clip.meta.get("spec", {}).get("kind")
    return kind == "dialogue" if kind is not None else bool(np.any(clip.audio[1] != 0))


def dialogue_weights(clips: Sequence[ARClip], frames: int, fraction: float) -> list[float]:
    """Clip weights (see :class:`WindowSampler`) that draw a share ``fraction`` of the windows from dialogue
    clips, each group uniform over its windows. With no monologue clip every window is a dialogue one."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"--dialogue-fraction must be in [0, 1], got {fraction}")
    starts = [c.n_frames - frames + 2 if c.n_frames >= frames else 0 for c in clips]  # as the sampler
    dialogue = [is_dialogue(c) for c in clips]
    in_dialogue = sum(s for s, d in zip(starts, dialogue, strict=True) if d)
    in_monologue = sum(starts) - in_dialogue
    if fraction > 0 and in_dialogue == 0:
        raise ValueError(
            f"a dialogue share of {fraction} needs dialogue clips of at least {frames} frames and the data "
            "has none (`avatarlm data synth --dialogue-fraction`), or pass --dialogue-fraction 0"
        )
    if in_monologue == 0:
        fraction = 1.0
    return [fraction / in_dialogue if d else (1.0 - fraction) / in_monologue for d in dialogue]


def duplex_sampler(cfg: ARTrainConfig, clips: Sequence[ARClip], fraction: float) -> WindowSampler:
    """The training sampler of a duplex run: ``cfg``'s windows with a dialogue share of ``fraction``."""
    return window_sampler(cfg, clips, dialogue_weights(clips, cfg.window_frames, fraction))


def duplex_train_config(init: ARModel, overrides: dict[str, Any] | None = None) -> ARTrainConfig:
    """The init model's config with two audio streams, fine-tuning settings, then ``overrides``."""
    model = replace(init.config, conditions=replace(init.config.conditions, audio_streams=2))
    cfg = ARTrainConfig(model=model, **FINE_TUNE).with_overrides(overrides or {})
    cond = cfg.model.conditions
    if "audio" not in cond.modalities or cond.audio_streams != 2:
        raise ValueError("a duplex model hears two audio streams: it needs audio and audio_streams = 2")
    return cfg


def latent_tag(data: Path, tag: str | None) -> str:
    """``tag``, checked to have latents in ``data``; None: the dataset's only latent set."""
    root = data / "latents"
    tags = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    if tag is None and len(tags) == 1:
        return tags[0]
    if tag is None or tag not in tags:
        have = f"it has {', '.join(tags)}" if tags else "it has none"
        wanted = f"no latents under tag {tag!r}" if tag else "several latent sets; pass --tag"
        raise ValueError(f"{data}: {wanted} ({have}); cache them with `avatarlm ae encode --model INIT/ae`")
    return tag


def _check_plan(out: Path, plan: DuplexPlan) -> None:
    """Record the plan of a new run; refuse a rerun of ``out`` that asks for another one."""
    path = out / PLAN_FILE
    wanted = json.loads(json.dumps(asdict(plan)))
    if path.is_file():
        before = read_json(path)
        changed = sorted(k for k in wanted if before.get(k) != wanted[k])
        if changed:
            raise ValueError(
                f"{out} holds a duplex run with other {', '.join(changed)}; rerun it as it was or use "
                "another --out"
            )
    atomic_write_json(path, wanted)


def _finished(out: Path, steps: int) -> bool:
    latest = out / "checkpoints" / LATEST
    return latest.is_file() and int(read_json(latest)["step"]) >= steps


def run_duplex_training(
    init: str | os.PathLike[str],
    data: str | os.PathLike[str],
    out: str | os.PathLike[str],
    steps: int,
    tag: str | None = None,
    device: str = "cpu",
    overrides: dict[str, Any] | None = None,
    dialogue_fraction: float = DEFAULT_DIALOGUE_FRACTION,
    progress: bool = True,
    stop_after: int | None = None,
) -> Path | None:
    """Fine-tune ``init``'s AR model on two streams and write ``out/pipeline``; returns its path (None on
    processes other than the first, or when ``stop_after`` steps (tests of resume) ended it early)."""
    if steps < 1:
        raise ValueError(f"--steps must be at least 1, got {steps}")
    check_device(device)
    init, data, out = Path(init), Path(data), Path(out)
    if not init.is_dir():
        raise ValueError(f"--init {init}: no such pipeline folder")
    pipe = load_pipeline(init)
    cfg = duplex_train_config(pipe.model, overrides)
    start = duplex_state(pipe.model, ARModel(cfg.model))
    tag = latent_tag(data, tag)
    ctx = init_distributed(device)
    try:
        clips = load_ar_clips(data, tag, "train", progress and ctx.is_main)
        found = clips[0].latents.shape[1:]
        if found != (cfg.model.tokens_per_frame, cfg.model.latent_channels):
            raise ValueError(
                f"latents {tag!r} are {found[0]} tokens x {found[1]} channels per frame; the model "
                f"predicts {cfg.model.tokens_per_frame} x {cfg.model.latent_channels} (another autoencoder?)"
            )
        train = duplex_sampler(cfg, clips, dialogue_fraction)
        if ctx.is_main:
            out.mkdir(parents=True, exist_ok=True)
            _check_plan(out, DuplexPlan(str(init.resolve()), tag, dialogue_fraction, cfg.to_dict()))
            dialogues = sum(is_dialogue(c) for c in train.clips)
            print(f"fine-tuning on {len(train.clips)} clips ({dialogues} dialogues), a dialogue share of "
                  f"{dialogue_fraction:.2f}")  # fmt: skip
        try:
            val = window_sampler(cfg, load_ar_clips(data, tag, "val", progress=False))  # the natural mix
        except ValueError:
            val = None  # no validation split: train loss only
        model = train_ar(cfg, train, out, steps, val, ctx, progress, stop_after, init_state=start)
        if not ctx.is_main or not _finished(out, steps):
            return None
        preset = str(pipe.info.get("preset", ""))
        preset = preset if preset.endswith("-duplex") else f"{preset}-duplex"
        return save_pipeline(out / "pipeline", init / "ae", model.to("cpu"), preset)
    finally:
        shutdown(ctx)
