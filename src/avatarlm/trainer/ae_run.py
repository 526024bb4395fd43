"""`avatarlm train ae`: sample clips of a dataset's train split and train one autoencoder stage."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from avatarlm.data.frame_sampler import FrameSampler
from avatarlm.data.mouth_swap import MouthSwapSampler
from avatarlm.data.splits import split_identities
from avatarlm.trainer.ae import (
    ClipSampler,
    train_autoencoder,
    trained_setting,
    uses_mouth_swap,
)
from avatarlm.trainer.ae_config import AETrainConfig

# Identities the mouth-swap triples are drawn from (train split), the first this many seeds of it.
MOUTH_SWAP_IDENTITIES = 20_000


def run_ae_training(
    cfg: AETrainConfig,
    data: str | os.PathLike[str] | None,
    out: str | os.PathLike[str],
    steps: int,
    batch: int = 16,
    window: int = 1,
    max_clips: int | None = None,
    progress: bool = True,
    final_lr_fraction: float | None = None,
    compile_model: bool = False,
) -> Path:
    """Train (resuming ``out``) on ``batch`` windows of ``window`` frames per step; returns ``out/model``.
    ``final_lr_fraction``: decay the learning rate along a cosine to that fraction of ``cfg.lr`` (constant
    after the warm-up when None). ``compile_model``: compile the encoder and decoder (``train_autoencoder``).

    A spatial stage of a model with mouth channels (``cfg.autoencoder.mouth_channels`` > 0, or an
    ``init_from`` model that has them; see ``uses_mouth_swap``) renders ``batch`` mouth-swap triples of
    train-split identities per step instead (``data`` is then not read and may be None), with their
    reference frames when the model's decoder reads one.
    """
    if batch < 1 or steps < 1 or window < 1:
        raise ValueError(f"batch, steps and window must be at least 1, got {batch}, {steps} and {window}")
    if final_lr_fraction is not None and not 0.0 <= final_lr_fraction <= 1.0:
        raise ValueError(f"--final-lr-fraction must be in [0, 1], got {final_lr_fraction}")
    if uses_mouth_swap(cfg):
        if data is not None:
            raise ValueError(
                "--mouth-channels renders its own training frames (a spatial stage of a model with mouth "
                "channels trains on rendered triples): leave out --data"
            )
        if window != 1:
            raise ValueError("the mouth swap trains on single frames: leave --window at 1")
        triples = mouth_swap_sampler(cfg, references=trained_setting(cfg, "reference_levels") > 0)
        if progress:
            print(f"training on rendered mouth-swap triples of {MOUTH_SWAP_IDENTITIES} train identities")
        train_autoencoder(
            cfg, lambda rng: triples(rng, batch), out, steps, progress, final_lr_fraction=final_lr_fraction,
            compile_model=compile_model,
        )  # fmt: skip
        return Path(out) / "model"
    if data is None:
        raise ValueError(
            "--data is needed (a dataset from `avatarlm data synth`) unless --mouth-channels is set"
        )
    sampler = FrameSampler(
        Path(data),
        "train",
        window,
        max_clips,
        show_progress=progress,
        reference=trained_setting(cfg, "reference_levels") > 0,
    )
    want = (cfg.autoencoder.image_height, cfg.autoencoder.image_width, 3)
    if sampler.frame_shape != want:
        raise ValueError(f"dataset frames are {sampler.frame_shape}, the autoencoder needs {want}")
    if progress:
        print(f"training on {len(sampler.clips)} clips, {sampler.n_frames} frames")
    clips: ClipSampler = lambda rng: sampler(rng, batch)  # noqa: E731
    rendered = round(batch * cfg.reference_mouth_share)
    if sampler.reference and window == 1 and trained_setting(cfg, "mouth_channels") and rendered:
        clips = mixed_reference_pairs(sampler, mouth_swap_sampler(cfg), batch, rendered)
        if progress:
            print(f"{rendered} of {batch} pairs a step: one rendered face with two mouths")
    train_autoencoder(
        cfg, clips, out, steps, progress, final_lr_fraction=final_lr_fraction, compile_model=compile_model
    )
    return Path(out) / "model"


def mouth_swap_sampler(cfg: AETrainConfig, references: bool = False) -> MouthSwapSampler:
    """Rendered (face, face wearing a donor's mouth, donor) triples of train-split identities; with
    ``references``, each with both identities' reference frames."""
    size = cfg.autoencoder.image_height
    if cfg.autoencoder.image_width != size:
        raise ValueError("mouth-swap triples are rendered square: the autoencoder's frame must be square")
    return MouthSwapSampler(
        split_identities("train", MOUTH_SWAP_IDENTITIES), size=size, references=references
    )


def mixed_reference_pairs(
    clips: FrameSampler, triples: MouthSwapSampler, batch: int, rendered: int
) -> ClipSampler:
    """(reference, frame) pairs for a reference-conditioned decoder: ``batch - rendered`` from the dataset's
    clips (the head moves between them), ``rendered`` from the renderer: one face in one pose with two
    mouths, in either order, so the only thing the reference gets wrong is the mouth, which must come from
    the latent."""

    def sample(rng: np.random.Generator) -> np.ndarray:
        pairs = triples(rng, rendered)[:, :2].copy()
        flip = rng.random(rendered) < 0.5
        pairs[flip] = pairs[flip, ::-1]
        return np.concatenate([clips(rng, batch - rendered), pairs])

    return sample
