"""The static layer of a portrait: background, shoulders with clothes, and neck, drawn once per identity."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from avatarlm.data.identity import Identity
from avatarlm.data.render_draw import RGB, fill, fixed, mix, shade, stroke


@dataclass
class Frame:
    """Where the head sits in the image: head scale and centre in pixels, plus the torso unit."""

    unit: float
    scale: float
    cx: float
    cy: float
    chin_y: float
    neckline_y: float


@dataclass
class BaseLayer:
    """Pre-rendered static image plus the neck pixels that stay in front of hair drawn behind the head."""

    image: np.ndarray
    neck_rows: slice
    neck_cols: slice
    neck_mask: np.ndarray  # bool, (rows, cols, 1)


def _fill(img: np.ndarray, pts: np.ndarray, colour: RGB | int) -> None:
    fill(img, fixed(pts), colour)


def _stroke(img: np.ndarray, pts: np.ndarray, colour: RGB, thickness: int, closed: bool = False) -> None:
    stroke(img, fixed(pts), colour, thickness, closed)


def frame_for(identity: Identity, height: int, width: int) -> Frame:
    """Head-and-shoulders framing: head size follows the short side; tall images show more torso."""
    short = min(width, height)
    unit = 0.22 * short
    scale = unit * identity.face_width
    cx = (width - 1) / 2.0
    cy = 0.43 * short + 0.12 * max(0, height - width)
    chin_y = cy + identity.face_height * scale
    return Frame(unit, scale, cx, cy, chin_y, chin_y + 0.42 * unit)


def _smooth(pts: np.ndarray, iterations: int = 3) -> np.ndarray:
    """Chaikin corner cutting on an open polyline (end points kept)."""
    for _ in range(iterations):
        q = 0.75 * pts[:-1] + 0.25 * pts[1:]
        r = 0.25 * pts[:-1] + 0.75 * pts[1:]
        mid = np.empty((2 * len(q), 2))
        mid[0::2], mid[1::2] = q, r
        pts = np.vstack([pts[:1], mid, pts[-1:]])
    return pts


def _background(identity: Identity, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    t = np.linspace(0.0, 1.0, height)[:, None, None]
    top = np.array(identity.background_top, np.float64)
    bottom = np.array(identity.background_bottom, np.float64)
    img = np.broadcast_to(top * (1 - t) + bottom * t, (height, width, 3)).astype(np.uint8).copy()
    style, accent, short = identity.background_style, identity.background_accent, min(width, height)
    overlay = img.copy()
    if style == "circles":
        for _ in range(int(rng.integers(3, 7))):
            centre = (int(rng.uniform(0, width)), int(rng.uniform(0, height)))
            radius = int(rng.uniform(0.08, 0.3) * short)
            r, g, b_ = (int(v) for v in img[centre[1], centre[0]])
            cv2.circle(overlay, centre, radius, mix((r, g, b_), accent, 0.5), -1)
    elif style == "stripes":
        step = rng.uniform(0.08, 0.2) * short
        for k in range(-height, width + height, max(2, int(2 * step))):
            quad = np.array([[k, 0], [k + step, 0], [k + step - height, height], [k - height, height]])
            _fill(overlay, quad, mix(identity.background_bottom, accent, 0.6))
    elif style == "window":
        x0 = rng.uniform(0.0, 0.6) * width
        x1, y0, y1 = x0 + rng.uniform(0.3, 0.5) * width, 0.08 * height, rng.uniform(0.45, 0.7) * height
        _fill(overlay, np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]]), mix(accent, (255, 255, 255), 0.5))
        bar = max(1, int(0.015 * short))
        _stroke(overlay, np.array([[(x0 + x1) / 2, y0], [(x0 + x1) / 2, y1]]), accent, bar)
        _stroke(overlay, np.array([[x0, (y0 + y1) / 2], [x1, (y0 + y1) / 2]]), accent, bar)
    img = np.asarray(cv2.addWeighted(img, 0.55, overlay, 0.45, 0.0), np.uint8)
    if style == "vignette":
        yy, xx = np.mgrid[0:height, 0:width]
        r2 = ((xx - width / 2) / width) ** 2 + ((yy - height / 2) / height) ** 2
        img = (img * (1.0 - 0.8 * r2)[:, :, None]).clip(0, 255).astype(np.uint8)
    k = max(1, int(0.02 * short)) * 2 + 1
    return cv2.GaussianBlur(img, (k, k), 0)


def _torso_outline(f: Frame, height: int, neckline: np.ndarray) -> np.ndarray:
    """Shoulder outline (from the left image edge over the shoulders) with the given neckline between."""
    right = np.array([[0.52, -0.18], [1.0, 0.04], [1.6, 0.2], [2.05, 0.4], [2.32, 0.72], [2.45, 1.15]])
    right = _smooth(right)
    bottom = (height + 2 - f.neckline_y) / f.unit
    right = np.vstack([right, [[2.55, max(bottom, 1.3)]]])
    left = right[::-1] * [-1.0, 1.0]
    units = np.vstack([left, neckline, right])
    return np.column_stack([f.cx + f.unit * units[:, 0], f.neckline_y + f.unit * units[:, 1]])


def _neckline(style: str) -> np.ndarray:
    s = np.linspace(-1.0, 1.0, 13)
    if style in ("vneck", "collar"):
        depth = 0.75 if style == "vneck" else 0.85
        return np.column_stack([0.52 * s, -0.18 + (depth + 0.18) * (1 - np.abs(s))])
    if style == "jacket":
        return np.column_stack([0.6 * s, -0.18 + 1.35 * (1 - np.abs(s) ** 0.9)])
    if style == "turtleneck":
        return np.column_stack([0.52 * s, -0.18 + 0.08 * (1 - s * s)])
    return np.column_stack([0.52 * s, -0.18 + 0.36 * np.sqrt(np.maximum(1 - s * s, 0.0))])


def _to_px(f: Frame, units: np.ndarray) -> np.ndarray:
    return np.column_stack([f.cx + f.unit * units[:, 0], f.neckline_y + f.unit * units[:, 1]])


def _clothes(img: np.ndarray, identity: Identity, f: Frame, height: int) -> np.ndarray:
    """Draw the torso and collar; returns the torso coverage mask (uint8)."""
    style, main, second = identity.clothing_style, identity.clothing_colour, identity.clothing_colour2
    outline = _torso_outline(f, height, _neckline(style))
    mask = np.zeros(img.shape[:2], np.uint8)
    _fill(mask, outline, 255)
    layer = np.empty_like(img)
    layer[:] = main
    if identity.clothing_stripes:
        period = max(4, int(0.28 * f.unit))
        rows = (np.arange(img.shape[0]) // period) % 2 == 1
        layer[rows] = mix(main, second, 0.45)
    xs = (np.arange(img.shape[1]) - f.cx) / (2.6 * f.unit)
    light = 1.0 - 0.22 * np.clip(xs, -1, 1) ** 2 - 0.06 * xs
    layer = (layer * light[None, :, None]).clip(0, 255).astype(np.uint8)
    m = mask[:, :, None].astype(np.uint16)
    img[:] = ((layer * m + img * (255 - m) + 127) // 255).astype(np.uint8)
    thick = max(1, int(round(0.05 * f.unit)))
    dark = shade(main, 0.7)
    if style == "crew":
        _stroke(img, _to_px(f, _neckline(style)), dark, 2 * thick)
    elif style == "hoodie":
        ring = np.vstack([_neckline("crew")[::-1] * [1.25, 1.0] + [0.0, -0.02], _neckline("crew")])
        _fill(img, _to_px(f, ring), shade(second, 0.85))
        for side in (-1, 1):
            _stroke(img, _to_px(f, np.array([[0.22 * side, 0.2], [0.25 * side, 1.1]])), second, thick)
    elif style == "collar":
        for side in (-1, 1):
            flap = np.array([[0.5 * side, -0.3], [0.1 * side, 0.55], [0.68 * side, 0.3], [0.62 * side, -0.2]])
            _fill(img, _to_px(f, flap), second)
            _stroke(img, _to_px(f, flap), shade(second, 0.75), thick, closed=True)
        _stroke(img, _to_px(f, np.array([[0.0, 0.85], [0.0, 4.0]])), dark, thick)
    elif style == "jacket":
        shirt = np.array([[-0.5, -0.15], [0.5, -0.15], [0.0, 1.25]])
        _fill(img, _to_px(f, shirt), second)
        _stroke(img, _to_px(f, _neckline("crew") * [0.95, 1.0]), shade(second, 0.7), thick)
        for side in (-1, 1):
            lapel = np.array([[0.55 * side, -0.2], [0.05 * side, 1.3], [0.75 * side, 0.5]])
            _stroke(img, _to_px(f, lapel), dark, thick)
    elif style == "vneck":
        _stroke(img, _to_px(f, _neckline(style)), dark, 2 * thick)
    return mask


def render_base(identity: Identity, height: int, width: int) -> BaseLayer:
    """Background, neck and clothes for one identity at one image size."""
    rng = np.random.default_rng([identity.seed, 0xBA5E])
    f = frame_for(identity, height, width)
    img = _background(identity, height, width, rng)
    neck_half = 0.42 * f.scale
    turtle = identity.clothing_style == "turtleneck"
    neck_colour: RGB = identity.clothing_colour if turtle else shade(identity.skin, 0.9)
    neck = np.array(
        [
            [f.cx - neck_half, f.cy],
            [f.cx + neck_half, f.cy],
            [f.cx + neck_half * 1.05, f.neckline_y],
            [f.cx + neck_half * 1.6, f.neckline_y + 0.5 * f.unit],
            [f.cx + neck_half * 1.6, f.neckline_y + 1.5 * f.unit],
            [f.cx - neck_half * 1.6, f.neckline_y + 1.5 * f.unit],
            [f.cx - neck_half * 1.6, f.neckline_y + 0.5 * f.unit],
            [f.cx - neck_half * 1.05, f.neckline_y],
        ]
    )
    neck_mask = np.zeros((height, width), np.uint8)
    _fill(neck_mask, neck, 255)
    _fill(img, neck, neck_colour)
    shadow_y = f.chin_y + (0.06 if turtle else 0.14) * f.unit
    shadow = np.array([[f.cx - neck_half * 1.1, f.cy], [f.cx + neck_half * 1.1, f.cy]])
    shadow = np.vstack([shadow, [[f.cx + neck_half * 1.1, shadow_y], [f.cx - neck_half * 1.1, shadow_y]]])
    _fill(img, shadow, shade(neck_colour, 0.8))
    if turtle:
        for k in range(1, 4):
            y = f.chin_y + k * 0.12 * f.unit
            line = np.array([[f.cx - neck_half * 0.8, y], [f.cx + neck_half * 0.8, y]])
            _stroke(img, line, shade(neck_colour, 0.8), max(1, int(0.03 * f.unit)))
    torso = _clothes(img, identity, f, height)
    keep = (neck_mask >= 128) & (torso < 128)
    rows, cols = np.nonzero(keep)
    if len(rows) == 0:
        return BaseLayer(img, slice(0, 0), slice(0, 0), np.zeros((0, 0, 1), bool))
    rs, cs = slice(int(rows.min()), int(rows.max()) + 1), slice(int(cols.min()), int(cols.max()) + 1)
    return BaseLayer(img, rs, cs, keep[rs, cs][:, :, None])
