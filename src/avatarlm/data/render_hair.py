"""Identity-fixed shapes in face units: hair (behind and in front of the head), beard, ears and glasses.

Rim shapes are front-view outlines that get lifted onto the silhouette of a slightly larger ellipsoid for each
pose; the inner edges (hairline, beard line) lie on the face surface, so both move consistently with the head.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from avatarlm.data.identity import Identity
from avatarlm.data.render_draw import ellipse_points
from avatarlm.data.render_head import front_outline

EYE_Y = 0.05
EYE_X = 0.37
EYE_HALF_WIDTH = 0.215


@dataclass
class RimShape:
    """A polygon made of a silhouette rim (front-view points, ellipsoid `size`) then a surface edge."""

    rim: np.ndarray
    size: float
    inner: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    lift: float = 0.03


@dataclass
class StaticShapes:
    hair_back: list[RimShape]
    bun: np.ndarray | None  # planar behind the head
    hair_front: RimShape | None
    highlights: list[np.ndarray]  # surface polylines
    beard: RimShape | None
    ears: list[np.ndarray]  # planar ellipses, left then right
    ear_inner: list[np.ndarray]
    glasses: list[np.ndarray]  # lens outlines, left then right (planar)
    bridge: np.ndarray | None
    temples: list[np.ndarray]
    glasses_z: float


def _deg(a: float, b: float, n: int) -> np.ndarray:
    return np.radians(np.linspace(a, b, n))


def _hairline(pts: list[tuple[float, float]], b: float, n: int = 4) -> np.ndarray:
    """Interpolate a hairline through control points given as (x, y / b)."""
    ctrl = np.array(pts, dtype=np.float64) * [1.0, b]
    seg = [
        ctrl[i] + (ctrl[i + 1] - ctrl[i]) * s for i in range(len(ctrl) - 1) for s in np.linspace(0, 1, n)[:-1]
    ]
    out = np.vstack([*seg, ctrl[-1]])
    for _ in range(2):  # light smoothing, ends fixed
        out[1:-1] = 0.25 * out[:-2] + 0.5 * out[1:-1] + 0.25 * out[2:]
    return out


def _smooth_closed(pts: np.ndarray, keep: int = 0) -> np.ndarray:
    """Two rounds of Chaikin corner cutting on the points after the first `keep` (a closed polygon)."""
    head, tail = pts[:keep], np.vstack([pts[keep - 1 : keep], pts[keep:], pts[:1]]) if keep else pts
    for _ in range(2):
        q = 0.75 * tail[:-1] + 0.25 * tail[1:]
        r = 0.25 * tail[:-1] + 0.75 * tail[1:]
        mid = np.empty((2 * len(q), 2))
        mid[0::2], mid[1::2] = q, r
        tail = np.vstack([tail[:1], mid, tail[-1:]])
    return np.vstack([head, tail[1:-1]])


def _hair(
    ident: Identity, b: float
) -> tuple[list[RimShape], np.ndarray | None, RimShape | None, list[np.ndarray]]:
    style, jaw, taper = ident.hair_style, ident.jaw_square, ident.chin_taper

    def outline(a0: float, a1: float, n: int = 24) -> np.ndarray:
        return front_outline(_deg(a0, a1, n), b, jaw, taper)

    back: list[RimShape] = []
    bun = None
    front = None
    lights: list[np.ndarray] = []
    if style == "bald":
        return back, bun, front, [ellipse_points(-0.3, 0.82 * b, 0.22, 0.08, 10)]
    if style in ("short", "buzz", "spiky", "bun"):
        size = {"short": 1.08, "buzz": 1.035, "spiky": 1.07, "bun": 1.06}[style]
        rim = outline(-12, 192, 30)
        if style == "spiky":
            th = _deg(-12, 192, 30)
            rim = rim * (1.0 + 0.14 * np.maximum(np.sin(th), 0) * (np.arange(30) % 2))[:, None]
        back.append(RimShape(rim, size))
        top = {"short": 0.64, "buzz": 0.6, "spiky": 0.62, "bun": 0.72}[style]
        part = -0.25 if style == "short" else 0.0
        pts = [(-0.93, 0.16), (-0.75, 0.42), (part, top + 0.05), (0.55, top - 0.04), (0.93, 0.16)]
        if style == "short":
            pts = [(-0.93, 0.16), (-0.7, 0.5), (-0.3, 0.6), (0.2, 0.52), (0.7, 0.48), (0.93, 0.16)]
        front = RimShape(outline(8, 172), size, _hairline(pts, b))
        if style == "bun":
            bun = ellipse_points(0.0, 1.12 * b, 0.38, 0.3, 16)
        lights.append(_hairline([(-0.45, 0.74), (0.0, 0.8), (0.4, 0.74)], b))
    elif style == "curly":
        th = _deg(-25, 205, 46)
        rim = outline(-25, 205, 46) * (1.0 + 0.05 * np.abs(np.sin(7 * th)))[:, None]
        back.append(RimShape(rim, 1.22))
        xs = np.linspace(-0.93, 0.93, 15)
        ys = 0.52 - 0.3 * xs**2 + 0.05 * np.abs(np.sin(9 * xs))
        front = RimShape(front_outline(_deg(5, 175, 30), b, jaw, taper), 1.22, np.column_stack([xs, ys * b]))
    elif style in ("long", "bob"):
        size = 1.1 if style == "long" else 1.12
        if style == "long":
            upper = outline(-25, 205, 34)
            lock = np.array([[-1.12, -0.9], [-1.22, -1.45], [-1.08, -1.8], [-0.8, -1.72], [-0.6, -1.25]]) * [
                1,
                b,
            ]
            rim = _smooth_closed(np.vstack([upper, lock, lock[::-1] * [-1, 1]]), keep=len(upper))
            hl = [
                (-0.88, -0.6),
                (-0.82, 0.05),
                (-0.55, 0.45),
                (-0.04, 0.66),
                (0.55, 0.45),
                (0.82, 0.05),
                (0.88, -0.6),
            ]
            front = RimShape(outline(-48, 228, 34), size, _hairline(hl, b))
        else:
            upper = outline(-15, 195, 30)
            down = np.array([[-1.06, -0.55], [-1.0, -0.9], [-0.6, -0.98]]) * [1, b]
            rim = _smooth_closed(np.vstack([upper, down, down[::-1] * [-1, 1]]), keep=len(upper))
            hl = [
                (-0.9, -0.55),
                (-0.84, 0.25),
                (-0.6, 0.36),
                (0.0, 0.34),
                (0.6, 0.36),
                (0.84, 0.25),
                (0.9, -0.55),
            ]
            front = RimShape(outline(-35, 215, 34), size, _hairline(hl, b, 3))
        back.append(RimShape(rim, size))
        lights.append(_hairline([(-0.5, 0.7), (-0.2, 0.82), (0.2, 0.84)], b))
    return back, bun, front, lights


def _beard(ident: Identity, b: float) -> RimShape | None:
    style = ident.beard
    if style in ("full", "stubble"):
        rim = front_outline(_deg(-4, -176, 30), b, ident.jaw_square, ident.chin_taper)
        inner = _hairline(
            [
                (-0.9, -0.02),
                (-0.62, -0.28),
                (-0.3, -0.35),
                (0.0, -0.34),
                (0.3, -0.35),
                (0.62, -0.28),
                (0.9, -0.02),
            ],
            b,
        )
        return RimShape(rim, 1.015, inner, lift=0.025)
    if style == "goatee":
        pts = ellipse_points(0.0, -0.68 * b, 0.36, 0.3 * b, 20)
        pts[:, 1] = np.maximum(pts[:, 1], -0.96 * b)
        return RimShape(np.zeros((0, 2)), 1.0, pts, lift=0.025)
    if style == "moustache":
        xs = np.linspace(-0.36, 0.36, 11)
        top = -0.355 * b + 0.02 * xs**2
        bottom = -0.43 * b - 0.25 * xs**2 * b
        return RimShape(
            np.zeros((0, 2)),
            1.0,
            np.vstack([np.column_stack([xs, top]), np.column_stack([xs, bottom])[::-1]]),
            lift=0.03,
        )
    return None


def static_shapes(ident: Identity, b: float, depth_at_eye: float) -> StaticShapes:
    """All per-identity shapes, computed once."""
    back, bun, front, lights = _hair(ident, b)
    ears, inner = [], []
    es = ident.ear_size
    for side in (-1.0, 1.0):
        ears.append(ellipse_points(side * 1.0, EYE_Y - 0.1, 0.13 * es, 0.22 * es, 14))
        th = np.linspace(-0.5 * math.pi, 0.6 * math.pi, 7)
        inner.append(
            np.column_stack([side * (1.02 + 0.06 * es * np.cos(th)), EYE_Y - 0.1 + 0.13 * es * np.sin(th)])
        )
    glasses: list[np.ndarray] = []
    temples: list[np.ndarray] = []
    bridge = None
    gz = depth_at_eye + 0.16
    if ident.glasses != "none":
        ex = EYE_X * ident.eye_spacing
        for side in (-1.0, 1.0):
            if ident.glasses == "round":
                lens = ellipse_points(side * ex, EYE_Y, 0.25, 0.23, 18)
            else:
                t = np.linspace(0, 2 * math.pi, 20, endpoint=False)
                c, s = np.cos(t), np.sin(t)
                lens = np.column_stack(
                    [
                        side * ex + 0.29 * np.sign(c) * np.abs(c) ** 0.4,
                        EYE_Y - 0.01 + 0.19 * np.sign(s) * np.abs(s) ** 0.4,
                    ]
                )
            glasses.append(lens)
            temples.append(np.array([[side * (ex + 0.27), EYE_Y + 0.06], [side * 1.0, EYE_Y + 0.02]]))
        bridge = np.array([[-(ex - 0.24), EYE_Y + 0.06], [0.0, EYE_Y + 0.1], [ex - 0.24, EYE_Y + 0.06]])
    return StaticShapes(back, bun, front, lights, _beard(ident, b), ears, inner, glasses, bridge, temples, gz)
