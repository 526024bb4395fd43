"""Lip-sync of generated clips against the synthetic world's ground truth.

The mouth probe reads, from pixels alone, how open the mouth is: the mean darkness inside a box that
follows the head (the renderer's mouth box for the true pose with the mouth fully open, so the box never
depends on the opening it measures). "Dark" is relative to the face: a pixel counts as mouth interior below
grey 110, or below 0.8 of the darkest colour around the mouth (skin, beard) where that is darker — on dark
skin or under a beard the box is dark with the mouth shut, and an opening shows lighter teeth and lips.
Its correlation with the true ``mouth_open`` control, at the best time offset within a few frames, is the
lip-sync score; the same probe on the true frames and on their autoencoder reconstructions gives the
ceilings the generated score should be read against.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from avatarlm.data.face import FaceState
from avatarlm.data.identity import Identity
from avatarlm.data.render import Renderer

FLAT = 1e-5  # relative spread under which a trace is constant
DARK_LEVEL = 110.0  # grey level below which a pixel counts as (partly) mouth interior
SURROUND_SHARE = 0.8  # ... or below this share of the darkest colour around the mouth, where that is lower


def mouth_boxes(
    identity_seed: int, faces: np.ndarray, height: int, width: int
) -> list[tuple[int, int, int, int]]:
    """Per-frame (x0, y0, x1, y1) boxes around the fully opened mouth at each frame's true head pose."""
    renderer = Renderer(Identity.from_seed(identity_seed), height, width)
    boxes = []
    for vec in faces:
        state = FaceState.from_vector(vec)
        state.mouth_open = 1.0
        boxes.append(renderer.mouth_box(state))
    return boxes


def mouth_dark_level(identity_seed: int, level: float = DARK_LEVEL) -> float:
    """The grey level below which a pixel of this face's mouth box counts as mouth interior: ``level``, or
    ``SURROUND_SHARE`` of the skin's or the beard's grey where that is lower (the renderer's colours)."""
    identity = Identity.from_seed(identity_seed)
    around = [float(np.mean(identity.skin))]
    if identity.beard != "none":
        around.append(float(np.mean(Renderer(identity, 64, 64).c_beard)))
    return min(level, SURROUND_SHARE * min(around))


def mouth_trace(
    frames: np.ndarray, boxes: list[tuple[int, int, int, int]], dark_level: float = DARK_LEVEL
) -> np.ndarray:
    """(N,) mean darkness in [0, 1] inside each frame's box: 0 = no pixel below ``dark_level`` (the face's
    :func:`mouth_dark_level`), 1 = all black."""
    if len(frames) != len(boxes):
        raise ValueError(f"{len(frames)} frames but {len(boxes)} mouth boxes")
    if dark_level <= 0:
        raise ValueError(f"dark_level must be positive, got {dark_level}")
    out = np.zeros(len(frames))
    for i, (x0, y0, x1, y1) in enumerate(boxes):
        grey = frames[i, y0:y1, x0:x1].astype(np.float64).mean(axis=-1)
        out[i] = np.clip((dark_level - grey) / dark_level, 0.0, 1.0).mean() if grey.size else 0.0
    return out


def lagged_correlations(probe: np.ndarray, truth: np.ndarray, max_lag: int = 3) -> dict[int, float]:
    """Pearson correlation of ``probe[t + lag]`` with ``truth[t]`` for lag in -max_lag..max_lag
    (positive lag: the probe trails the truth). A trace that varies by less than ``FLAT`` (float noise, e.g. a
    probe reading identical frames in different batches) counts as constant and scores 0."""
    if probe.shape != truth.shape or probe.ndim != 1:
        raise ValueError(f"probe and truth must be equal 1-D arrays, got {probe.shape} and {truth.shape}")
    if len(probe) <= 2 * max_lag + 2:
        raise ValueError(
            f"need more than {2 * max_lag + 2} frames for lags up to {max_lag}, got {len(probe)}"
        )
    out = {}
    n = len(probe)
    for lag in range(-max_lag, max_lag + 1):
        a = probe[max(lag, 0) : n + min(lag, 0)]
        b = truth[max(-lag, 0) : n - max(lag, 0)]
        out[lag] = pearson(a, b)
    return out


def is_constant(trace: np.ndarray) -> bool:
    """Whether ``trace`` varies by less than ``FLAT`` relative to its size (float noise counts as constant)."""
    return bool(trace.std() <= FLAT * (1 + np.abs(trace).mean()))


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two 1-D traces; a trace that varies by less than ``FLAT`` counts as constant
    and scores 0."""
    if is_constant(a) or is_constant(b):
        return 0.0
    return float(((a - a.mean()) * (b - b.mean())).mean() / (a.std() * b.std()))


@dataclass
class LipSync:
    """Correlation of the mouth probe with the true opening: at offset 0 and at the best offset."""

    corr_at_0: float
    best_lag: int
    corr_at_best: float
    frames: int

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def best_lag(curve: dict[int, float]) -> tuple[int, float]:
    """(lag, correlation) of the highest correlation of a lag curve; ties go to the smaller offset."""
    lag = max(curve, key=lambda k: (curve[k], -abs(k)))
    return lag, curve[lag]


def lip_sync(probe: np.ndarray, truth: np.ndarray, max_lag: int = 3) -> LipSync:
    corr = lagged_correlations(probe, truth, max_lag)
    lag, best = best_lag(corr)
    return LipSync(corr[0], lag, best, len(probe))
