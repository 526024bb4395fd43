"""Duplex metrics of a dialogue clip, as pure functions of per-frame arrays.

A duplex avatar hears both voices: while only the partner speaks it should keep its mouth closed and listen
(turn towards the partner, nod), and while it speaks its mouth should follow its own voice. The bounds of the
duplex issue, on held-out dialogues: the mouth closed in at least ``CLOSED_BOUND`` of the partner-only frames,
and the mouth trace correlating at least ``SELF_SPEECH_R_BOUND`` with the true opening in self-speech frames.

A mouth counts as closed when its (probed) opening is below ``MOUTH_CLOSED_BELOW``: the renderer draws
closed lips at 0 and opens a visible gap from about 0.001 up, and the synthetic world's listener holds its
mouth at exactly 0. The threshold sits above the probe's error on closed true mouths (up to ~0.17 on unseen
faces at 64 and 128 px) and below most speech: the visemes' targets reach 0.2 (alveolars, /u/) to 0.85 (/a/).
"""

from __future__ import annotations

import numpy as np

from avatarlm.eval.lipsync import pearson

MOUTH_CLOSED_BELOW = 0.2  # mouth_open (0 = lips closed, 1 = wide open) under which a mouth reads as closed
CLOSED_BOUND = 0.9  # least fraction of partner-only frames with the mouth closed
SELF_SPEECH_R_BOUND = 0.6  # least mouth-trace correlation in self-speech frames (offset 0)


def _frames_mask(mask: np.ndarray, n: int) -> np.ndarray:
    mask = np.asarray(mask).astype(bool)
    if mask.shape != (n,):
        raise ValueError(f"the frame mask must have shape ({n},), got {mask.shape}")
    return mask


def closed_mouth_frames(
    mouth: np.ndarray, partner_only: np.ndarray, closed_below: float = MOUTH_CLOSED_BELOW
) -> tuple[int, int]:
    """(frames with the mouth closed, frames) over the partner-only frames: ``mouth`` (N,) is the opening in
    mouth_open units, ``partner_only`` (N,) flags the frames where the partner speaks and the avatar does not.
    Counts, so clips pool by summing."""
    mouth = np.asarray(mouth, dtype=np.float64)
    if mouth.ndim != 1:
        raise ValueError(f"the mouth trace must be 1-D, got shape {mouth.shape}")
    inside = _frames_mask(partner_only, len(mouth))
    return int((mouth[inside] < closed_below).sum()), int(inside.sum())


def masked_lagged_correlations(
    probe: np.ndarray, truth: np.ndarray, mask: np.ndarray, max_lag: int = 3
) -> dict[int, float]:
    """Pearson correlation of ``probe[t + lag]`` with ``truth[t]`` over the frames t where ``mask`` is set
    (and t + lag is in the clip), for lag in -max_lag..max_lag (positive: the probe trails the truth)."""
    probe, truth = np.asarray(probe, np.float64), np.asarray(truth, np.float64)
    if probe.shape != truth.shape or probe.ndim != 1:
        raise ValueError(f"probe and truth must be equal 1-D arrays, got {probe.shape} and {truth.shape}")
    t = np.flatnonzero(_frames_mask(mask, len(probe)))
    out = {}
    for lag in range(-max_lag, max_lag + 1):
        keep = t[(t + lag >= 0) & (t + lag < len(probe))]
        if len(keep) < 3:
            raise ValueError(f"need at least 3 masked frames at offset {lag:+d}, got {len(keep)}")
        out[lag] = pearson(probe[keep + lag], truth[keep])
    return out


def partner_side(true_gaze_x: np.ndarray, listening: np.ndarray) -> float:
    """Where the partner sits, -1 (the avatar's left in gaze_x) or +1: the side the true gaze turns to
    while listening (the synthetic listener looks at the partner)."""
    gaze = np.asarray(true_gaze_x, np.float64)
    inside = _frames_mask(listening, len(gaze))
    if not inside.any():
        raise ValueError("no listening frames: the partner's side is unknown")
    return 1.0 if gaze[inside].mean() >= 0 else -1.0


def yaw_toward_partner(yaw: np.ndarray, listening: np.ndarray, side: float) -> float:
    """How far the head turns towards the partner while listening, in degrees: the mean yaw over the
    listening frames minus the mean over the rest, signed so that turning to ``side`` is positive (a still
    head scores 0)."""
    yaw = np.asarray(yaw, np.float64)
    inside = _frames_mask(listening, len(yaw))
    if inside.all() or not inside.any():
        raise ValueError("need both listening frames and other frames")
    return float((yaw[inside].mean() - yaw[~inside].mean()) * np.sign(side))
