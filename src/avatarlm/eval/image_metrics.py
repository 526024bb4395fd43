"""Pixel metrics on uint8 RGB frames (..., H, W, 3): PSNR, flicker, and the dark-mouth probe."""

from __future__ import annotations

import numpy as np


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB over all pixels of two uint8 arrays of the same shape."""
    if a.shape != b.shape:
        raise ValueError(f"psnr needs equal shapes, got {a.shape} and {b.shape}")
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0**2 / mse)


MOUTH_PAD = 4  # pixels added around the renderer's mouth box for the mouth-region PSNR


def box_psnr(a: np.ndarray, b: np.ndarray, box: tuple[int, int, int, int], pad: int = MOUTH_PAD) -> float:
    """PSNR of two uint8 images inside ``box`` = (x0, y0, x1, y1) (e.g. ``Renderer.mouth_box``), widened by
    ``pad`` pixels on every side (clipped to the image)."""
    x0, y0, x1, y1 = box
    y0, x0 = max(0, y0 - pad), max(0, x0 - pad)
    region = (slice(y0, y1 + pad), slice(x0, x1 + pad))
    return psnr(a[region], b[region])


def flicker(decoded: np.ndarray, truth: np.ndarray) -> float:
    """Mean |(decoded_t - decoded_{t-1}) - (truth_t - truth_{t-1})| over a clip (T, H, W, 3), in 0-255 units:
    temporal change the decoder adds or removes beyond what the true video does."""
    if decoded.shape != truth.shape or len(truth) < 2:
        raise ValueError(
            f"flicker needs two equal clips of >= 2 frames, got {decoded.shape} and {truth.shape}"
        )
    d = np.diff(decoded.astype(np.float64), axis=0) - np.diff(truth.astype(np.float64), axis=0)
    return float(np.mean(np.abs(d)))


DARK_AREA_LEVEL = 60.0  # grey level under which dark_area counts a pixel (on a light face)


def dark_area(frame: np.ndarray, box: tuple[int, int, int, int], threshold: float = DARK_AREA_LEVEL) -> int:
    """Pixels darker than `threshold` (mean of RGB) inside box = (x0, y0, x1, y1): the open mouth's interior."""
    x0, y0, x1, y1 = box
    return int((frame[y0:y1, x0:x1].mean(axis=-1) < threshold).sum())


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Rank correlation (no tie correction beyond average ranks)."""

    def ranks(x: np.ndarray) -> np.ndarray:
        order = np.argsort(x, kind="stable")
        r = np.empty(len(x))
        r[order] = np.arange(len(x))
        for v in np.unique(x):  # average ranks of ties
            tie = x == v
            r[tie] = r[tie].mean()
        return r

    ra, rb = ranks(np.asarray(a, float)), ranks(np.asarray(b, float))
    if ra.std() == 0 or rb.std() == 0:
        return 0.0
    return float(np.corrcoef(ra, rb)[0, 1])
