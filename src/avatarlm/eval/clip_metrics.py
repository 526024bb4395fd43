"""Metrics of generated clips against the synthetic world's truth, as pure functions of arrays.

Lip-sync itself (lagged Pearson correlation and the best offset) lives in ``lipsync.py``; here are the rest:
the audio envelope a mouth should follow, head-pose error, accuracy inside instruction spans, the distance of
a static region to the reference (identity and drift), and the Fréchet distance between two sets of
features with the degradations that show it is sensitive (blur, noise).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from avatarlm.data.conversation import frame_energy


def audio_envelope(audio: np.ndarray, n_frames: int, fps: float) -> np.ndarray:
    """Loudness per video frame in [0, 1] of 16 kHz mono audio: what a talking mouth follows, for speech
    no one rendered (no ground-truth mouth needed)."""
    if audio.ndim != 1:
        raise ValueError(f"audio must be 1-D mono samples, got shape {audio.shape}")
    return frame_energy(audio.astype(np.float32), n_frames, fps).astype(np.float64)


def pose_error(probed: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Mean absolute error per axis (yaw, pitch, roll) in degrees of (N, 3) arrays."""
    if probed.shape != truth.shape or probed.ndim != 2 or probed.shape[1] != 3:
        raise ValueError(f"need two (N, 3) arrays of one shape, got {probed.shape} and {truth.shape}")
    return np.abs(probed - truth).mean(axis=0)


def span_accuracy(predicted: np.ndarray, truth: np.ndarray, inside: np.ndarray) -> tuple[int, int]:
    """(correct, frames) of ``predicted`` == ``truth`` over the frames where ``inside`` is true."""
    if not predicted.shape == truth.shape == inside.shape:
        raise ValueError(f"shapes differ: {predicted.shape}, {truth.shape}, {inside.shape}")
    inside = inside.astype(bool)
    return int((predicted[inside] == truth[inside]).sum()), int(inside.sum())


def static_mask(truth: np.ndarray, tolerance: float = 3.0, min_fraction: float = 0.02) -> np.ndarray:
    """(H, W) pixels that the true clip (N, H, W, 3) never changes by more than ``tolerance`` grey levels
    from its first frame — background and clothes, the parts of a frame that carry identity and should not
    drift. Falls back to the whole frame when fewer than ``min_fraction`` of the pixels are static."""
    if truth.ndim != 4 or len(truth) < 2:
        raise ValueError(f"need a clip (N >= 2, H, W, 3), got {truth.shape}")
    change = np.abs(truth.astype(np.int16) - truth[:1].astype(np.int16)).max(axis=(0, 3))
    mask = change <= tolerance
    return mask if mask.mean() >= min_fraction else np.ones_like(mask)


def static_distance(frames: np.ndarray, reference: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(N,) mean absolute difference in grey levels between each frame and ``reference`` inside ``mask``."""
    if frames.shape[1:] != reference.shape or mask.shape != reference.shape[:2]:
        raise ValueError(f"frames {frames.shape}, reference {reference.shape} and mask {mask.shape} differ")
    diff = np.abs(frames.astype(np.float32) - reference.astype(np.float32)).mean(axis=-1)
    return diff[:, mask].mean(axis=1).astype(np.float64)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to features (N, D) and (M, D) (FID's formula)."""
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
        raise ValueError(f"need two (N >= 2, D) feature arrays, got {a.shape} and {b.shape}")
    mu = a.mean(axis=0) - b.mean(axis=0)
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    # tr sqrt(ca cb) = tr sqrt(sa cb sa) with sa = ca^(1/2): symmetric, so eigh is exact and stable even
    # when the covariances are singular (fewer frames than feature dimensions)
    w, v = np.linalg.eigh(ca)
    sa = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(sa @ cb @ sa), 0.0, None)).sum()
    return float(max(mu @ mu + np.trace(ca) + np.trace(cb) - 2.0 * cross, 0.0))


def sharpness(frames: np.ndarray, cells: int = 4) -> np.ndarray:
    """(N, cells * cells) log mean |Laplacian| of the grey image in a grid of cells: falls with blur, rises
    with noise."""
    if frames.ndim != 4 or frames.shape[1] % cells or frames.shape[2] % cells:
        raise ValueError(f"need frames (N, H, W, 3) with H and W divisible by {cells}, got {frames.shape}")
    grey = frames.astype(np.float32).mean(axis=-1)
    lap = np.abs(np.stack([ndimage.laplace(g, mode="nearest") for g in grey]))
    n, h, w = lap.shape
    grid = lap.reshape(n, cells, h // cells, cells, w // cells).mean(axis=(2, 4))
    return np.log1p(grid.reshape(n, -1)).astype(np.float64)


def degrade(frames: np.ndarray, kind: str, strength: float, seed: int = 0) -> np.ndarray:
    """uint8 frames blurred (Gaussian, sigma ``strength`` px) or with Gaussian noise (std ``strength``)."""
    x = frames.astype(np.float32)
    if kind == "blur":
        x = ndimage.gaussian_filter(x, sigma=(0, strength, strength, 0))
    elif kind == "noise":
        x = x + np.random.default_rng(seed).normal(0.0, strength, x.shape).astype(np.float32)
    else:
        raise ValueError(f"unknown degradation {kind!r}; use 'blur' or 'noise'")
    return np.clip(np.round(x), 0, 255).astype(np.uint8)
