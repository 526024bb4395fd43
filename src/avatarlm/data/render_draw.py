"""Anti-aliased drawing primitives on uint8 RGB images (OpenCV polygons at 1/16 pixel precision)."""

from __future__ import annotations

import math

import cv2
import numpy as np

RGB = tuple[int, int, int]

SHIFT = 4
ONE = 1 << SHIFT


def fixed(pts: np.ndarray) -> np.ndarray:
    """Pixel coordinates (float, N x 2) to the 1/16-pixel int32 points the drawing functions take."""
    return np.rint(pts * ONE).astype(np.int32)


def fill(img: np.ndarray, pts: np.ndarray, colour: RGB | int) -> None:
    """Fill one polygon (N x 2 fixed-point coordinates from `fixed`) with anti-aliased edges."""
    cv2.fillPoly(img, [pts], colour, cv2.LINE_AA, SHIFT)


def stroke(img: np.ndarray, pts: np.ndarray, colour: RGB, thickness: int, closed: bool = False) -> None:
    """Draw an anti-aliased polyline through fixed-point coordinates."""
    cv2.polylines(img, [pts], closed, colour, max(1, thickness), cv2.LINE_AA, SHIFT)


def mix(c0: RGB, c1: RGB, t: float) -> RGB:
    """Linear blend of two colours; t = 0 gives c0."""
    return (
        int(round(c0[0] + (c1[0] - c0[0]) * t)),
        int(round(c0[1] + (c1[1] - c0[1]) * t)),
        int(round(c0[2] + (c1[2] - c0[2]) * t)),
    )


def shade(c: RGB, factor: float) -> RGB:
    """Scale a colour's brightness (clipped to 0-255)."""
    return (min(255, int(c[0] * factor)), min(255, int(c[1] * factor)), min(255, int(c[2] * factor)))


def composite_clipped(
    img: np.ndarray, clip: np.ndarray, base: RGB, layers: list[tuple[np.ndarray, RGB]]
) -> None:
    """Paint `base` then each (polygon, colour) layer, all clipped to polygon `clip` with soft edges.

    All polygons are fixed-point (see `fixed`)."""
    h, w = img.shape[:2]
    lo, hi = clip.min(axis=0), clip.max(axis=0)
    x0, y0 = max(int(lo[0]) // ONE - 1, 0), max(int(lo[1]) // ONE - 1, 0)
    x1, y1 = min(int(hi[0]) // ONE + 3, w), min(int(hi[1]) // ONE + 3, h)
    if x1 <= x0 or y1 <= y0:
        return
    offset = np.array([x0 * ONE, y0 * ONE], dtype=np.int32)
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    fill(mask, clip - offset, 255)
    if not mask.any():
        return
    patch = np.empty((y1 - y0, x1 - x0, 3), np.uint8)
    patch[:] = base
    for pts, colour in layers:
        fill(patch, pts - offset, colour)
    region = img[y0:y1, x0:x1]
    m = mask[:, :, None].astype(np.uint16)
    region[:] = ((patch * m + region * (255 - m) + 127) // 255).astype(np.uint8)


_CIRCLES: dict[int, np.ndarray] = {}


def unit_circle(n: int) -> np.ndarray:
    """N x 2 points on the unit circle (cached)."""
    if n not in _CIRCLES:
        t = np.linspace(0.0, 2.0 * math.pi, n, endpoint=False)
        _CIRCLES[n] = np.column_stack([np.cos(t), np.sin(t)])
    return _CIRCLES[n]


def ellipse_points(cx: float, cy: float, rx: float, ry: float, n: int = 14) -> np.ndarray:
    """N x 2 points on an axis-aligned ellipse (in whatever units the caller uses)."""
    return unit_circle(n) * (rx, ry) + (cx, cy)
