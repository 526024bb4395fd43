"""Anchoring a free-running run to its reference frame, against drift.

A model with the delta target adds each drawn change to the frame before, so every frame's small error stays
in all later ones: a random walk (colours shift, then the face bends and smears; README, "Drift"). After each
step the anchor moves the new frame's latent a share of the way back to the reference's, in every channel
but the autoencoder's mouth channels (an autoencoder trained with ``--mouth-channels K`` keeps the mouth, the
same way on every face, in its first K channels). An error then decays by that share per frame instead of
persisting, and the walk becomes a bounded wander; the mouth stays free to follow the sound. The price: slow
changes in the other channels (a head turn or an expression held for seconds) relax toward the reference
within about ``1 / share`` frames.

Streaming sessions and the offline run apply it alike, so they still agree.
"""

from __future__ import annotations

import torch

from avatarlm.autoencoder.model import DCAutoencoder
from avatarlm.generation import GenerationState
from avatarlm.model import ARModel

DEFAULT_ANCHOR = 0.05  # per frame: 60 s sessions keep their first 10 s's static distance (README, "Drift")


def default_anchor(ae: DCAutoencoder, model: ARModel) -> float:
    """The anchor a run gets unless told: ``DEFAULT_ANCHOR`` for a talking head (a model that hears audio)
    whose autoencoder keeps the mouth in channels of its own; 0 for the rest, where pulling every channel
    would hold the mouth (or a world model's view) in place."""
    talks = "audio" in model.config.conditions.modalities
    return DEFAULT_ANCHOR if talks and ae.config.mouth_channels > 0 else 0.0


def check_anchor(anchor: float) -> float:
    """``anchor`` if it lies in [0, 1) (1 would replace every frame by the reference), else one clear error."""
    if not 0.0 <= anchor < 1.0:
        raise ValueError(f"anchor must be in [0, 1), got {anchor}")
    return float(anchor)


def resolve_anchor(anchor: float | None, ae: DCAutoencoder, model: ARModel) -> float:
    """``anchor``, or the default for this pipeline where it is None; checked to lie in [0, 1)."""
    return check_anchor(default_anchor(ae, model) if anchor is None else anchor)


def anchor_step(state: GenerationState, reference: torch.Tensor, free_channels: int, share: float) -> None:
    """Move ``state``'s newest latent (B, T, C) — the frame the next step appends — ``share`` of the way to
    ``reference`` (T, C) in every channel from ``free_channels`` on."""
    if share == 0.0:
        return
    mouth, rest = state.latent[..., :free_channels], state.latent[..., free_channels:]
    pulled = rest.lerp(reference[..., free_channels:].to(rest), share)
    state.latent = torch.cat([mouth, pulled], dim=-1)
