"""Per-frame facial features in face units: eyes, brows, nose, mouth, cheeks.

Shapes are (x, y, lift) rows: `HeadModel.lift_to_surface` adds the surface depth, so a whole frame's points
get their depth and projection in one batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avatarlm.data.face import EXPRESSIONS, FaceState
from avatarlm.data.identity import Identity
from avatarlm.data.render_draw import ellipse_points, unit_circle
from avatarlm.data.render_hair import EYE_HALF_WIDTH, EYE_X, EYE_Y
from avatarlm.data.render_head import HeadModel, with_lift

# Offsets each expression adds at strength 1 (see `Controls`).
_EXPRESSION_OFFSETS: dict[str, dict[str, float]] = {
    "neutral": {},
    "smile": {"corner": 0.08, "width": 0.22, "cheek": 1.0, "squint": 0.35, "brow_in": 0.1, "brow_out": 0.1},
    "surprise": {
        "brow_in": 1.0,
        "brow_out": 0.9,
        "eye_open": 0.35,
        "round": 0.3,
        "width": -0.25,
        "arch": 0.6,
    },
    "sad": {"brow_in": 0.8, "brow_out": -0.35, "eye_open": -0.25, "corner": -0.07, "width": -0.1},
    "angry": {
        "brow_in": -1.0,
        "brow_out": 0.25,
        "squeeze": 1.0,
        "squint": 0.3,
        "eye_open": -0.1,
        "corner": -0.035,
        "press": 0.6,
        "width": -0.12,
    },
}

_T_EYE = np.linspace(-1.0, 1.0, 11)
_EYE_PROFILE = (1.0 - _T_EYE**2) ** 0.65 * (1.0 + 0.12 * _T_EYE)
_S_BROW = np.linspace(0.0, 1.0, 7)
_BROW_BUMP = np.sin(np.pi * _S_BROW**0.8)
_T_MOUTH = np.linspace(-1.0, 1.0, 17)
_T_MOUTH_SQ = _T_MOUTH**2
_UPPER_LIP_SHAPE = (1.0 - _T_MOUTH_SQ) ** 0.45 * (1.0 - 0.3 * np.exp(-((_T_MOUTH / 0.22) ** 2)))
_LOWER_LIP_SHAPE = (1.0 - _T_MOUTH_SQ) ** 0.5
_TEETH_SHAPE = (1.0 - _T_MOUTH_SQ) ** 0.3


@dataclass
class Controls:
    """Feature-level controls after combining the raw state with the expression."""

    brow_in: float = 0.0
    brow_out: float = 0.0
    squeeze: float = 0.0
    arch: float = 0.0
    eye_open: float = 0.0
    squint: float = 0.0
    corner: float = 0.0
    width: float = 0.0
    round: float = 0.0
    press: float = 0.0
    cheek: float = 0.0


def _clip(v: float, lo: float, hi: float) -> float:
    return lo if v < lo else hi if v > hi else v


def controls_for(state: FaceState) -> Controls:
    name = EXPRESSIONS[int(_clip(int(state.expression), 0, len(EXPRESSIONS) - 1))]
    k = _clip(float(state.expression_strength), 0.0, 1.0)
    c = Controls(**{key: k * v for key, v in _EXPRESSION_OFFSETS[name].items()})
    r = _clip(float(state.brow_raise), -1.0, 1.0)
    c.brow_in += r
    c.brow_out += 0.8 * r if r > 0 else 0.3 * r
    c.squeeze += max(0.0, -r)
    c.width += _clip(float(state.mouth_width), -1.0, 1.0)
    c.round = _clip(c.round + _clip(float(state.mouth_round), 0.0, 1.0), 0.0, 1.0)
    return c


@dataclass
class EyeShapes:
    opening: np.ndarray
    iris: np.ndarray
    pupil: np.ndarray
    glint: np.ndarray
    upper: np.ndarray
    lower: np.ndarray
    crease: np.ndarray
    corners: np.ndarray  # outer, inner
    openness: float


def eye(ident: Identity, side: float, state: FaceState, c: Controls) -> EyeShapes:
    """One eye; side = -1 for the eye on the image's left, +1 for the right."""
    ex, ew = side * EYE_X * ident.eye_spacing, EYE_HALF_WIDTH * ident.eye_size
    t = _T_EYE
    x = ex + side * ew * t  # t = -1 inner corner, +1 outer corner
    base = EYE_Y + 0.04 * ew * t
    prof = _EYE_PROFILE
    lower_y = base - 0.4 * ew * (1.0 - 0.6 * _clip(c.squint, 0.0, 1.0)) * prof
    wide = _clip(1.0 + 0.6 * c.eye_open, 0.35, 1.6)
    upper_open = base + 0.72 * ew * wide * prof
    openness = 1.0 - _clip(float(state.blink), 0.0, 1.0)
    upper_y = lower_y + openness * (upper_open - lower_y)
    gx, gy = _clip(float(state.gaze_x), -1.0, 1.0), _clip(float(state.gaze_y), -1.0, 1.0)
    ix, iy, ir = ex + 0.42 * ew * gx, EYE_Y + 0.1 * ew + 0.3 * ew * gy, 0.5 * ew
    rows = np.empty((3 * len(t) + 1, 3))  # upper lid (+ flick), lower lid, crease
    n = len(t)
    rows[:n, 0], rows[:n, 1] = x, upper_y
    rows[n] = (x[-1] + side * 0.04 * ew, upper_y[-1] + 0.1 * ew, 0.0)
    rows[n + 1 : 2 * n + 1, 0], rows[n + 1 : 2 * n + 1, 1] = x, lower_y
    rows[2 * n + 1 :, 0], rows[2 * n + 1 :, 1] = x, upper_open + 0.09 * ew * (1.0 - t * t)
    rows[:, 2] = 0.0
    upper, lower = rows[: n + 1], rows[n + 1 : 2 * n + 1]
    circle = unit_circle(14)
    return EyeShapes(
        opening=np.vstack([upper[:n], lower[-2:0:-1]]),
        iris=with_lift(circle * ir + (ix, iy), 0.01),
        pupil=with_lift(circle * (0.45 * ir) + (ix, iy), 0.012),
        glint=with_lift(circle * (0.2 * ir) + (ix - 0.35 * ir, iy + 0.35 * ir), 0.014),
        upper=upper,
        lower=lower[2:],
        crease=rows[2 * n + 3 : 3 * n - 1],
        corners=np.array(
            [[ex + side * ew, EYE_Y + 0.04 * ew, 0.0], [ex - side * ew, EYE_Y - 0.04 * ew, 0.0]]
        ),
        openness=openness,
    )


def brow(ident: Identity, side: float, c: Controls) -> tuple[np.ndarray, np.ndarray]:
    """Brow polygon and its three keypoints (inner, middle, outer)."""
    s = _S_BROW
    x = side * (0.12 + 0.52 * s) * ident.eye_spacing - side * 0.05 * c.squeeze * (1.0 - s)
    arch = 0.045 * (ident.brow_arch + c.arch) * _BROW_BUMP
    y = EYE_Y + 0.27 + arch + 0.075 * c.brow_in * (1.0 - s) + (0.06 * c.brow_out - 0.02) * s
    th = (0.05 * ident.brow_thickness + 0.012) * (1.0 - 0.5 * s)
    n = len(s)
    poly = np.empty((2 * n, 3))
    poly[:n, 0], poly[:n, 1] = x, y + 0.6 * th
    poly[n:, 0], poly[n:, 1] = x[::-1], (y - 0.4 * th)[::-1]
    poly[:, 2] = 0.01
    keys = np.empty((3, 3))
    keys[:, 0], keys[:, 1], keys[:, 2] = x[[0, 3, 6]], y[[0, 3, 6]], 0.01
    return poly, keys


@dataclass
class NoseShapes:
    shadow: np.ndarray
    bottom: np.ndarray
    nostrils: list[np.ndarray]
    tip_light: np.ndarray
    keys: np.ndarray  # bridge, tip, wing left, wing right


def nose(model: HeadModel, ident: Identity) -> NoseShapes:
    """The nose is fixed per identity: full 3-D points (depth included)."""
    b, nw = model.b, ident.nose_width
    ty = -b * (0.2 + 0.07 * ident.nose_length)
    prot = 0.12 + 0.1 * ident.nose_length
    bridge_y, wing = EYE_Y + 0.02, 0.12 * nw

    def pts(xy: list[tuple[float, float]], lifts: list[float]) -> np.ndarray:
        return model.on_surface(np.array(xy), np.array(lifts))

    shadow = pts(
        [
            (0.03, bridge_y),
            (0.05, 0.5 * (bridge_y + ty)),
            (0.06, ty + 0.02),
            (wing, ty + 0.03),
            (wing + 0.01, ty + 0.12),
        ],
        [0.02, 0.55 * prot, 0.75 * prot, 0.3 * prot, 0.1 * prot],
    )
    bottom = pts(
        [
            (-wing, ty + 0.04),
            (-0.08 * nw, ty - 0.03),
            (0.0, ty - 0.035),
            (0.08 * nw, ty - 0.03),
            (wing, ty + 0.04),
        ],
        [0.3 * prot, 0.6 * prot, 0.9 * prot, 0.6 * prot, 0.3 * prot],
    )
    nostrils = [
        model.on_surface(ellipse_points(s * 0.055 * nw, ty - 0.012, 0.032 * nw, 0.014, 8), 0.55 * prot)
        for s in (-1.0, 1.0)
    ]
    tip_light = model.on_surface(ellipse_points(-0.02, ty + 0.035, 0.035, 0.03, 8), prot)
    keys = pts(
        [(0.0, bridge_y), (0.0, ty), (-wing, ty + 0.03), (wing, ty + 0.03)],
        [0.02, prot, 0.3 * prot, 0.3 * prot],
    )
    return NoseShapes(shadow, bottom, nostrils, tip_light, keys)


@dataclass
class MouthShapes:
    lips: np.ndarray
    upper_lip: np.ndarray
    opening: np.ndarray
    teeth: np.ndarray
    tongue: np.ndarray
    throat: np.ndarray
    line: np.ndarray
    lip_light: np.ndarray
    open_height: float
    half_width: float


def mouth(ident: Identity, b: float, state: FaceState, c: Controls) -> MouthShapes:
    my = -0.5 * b
    rnd = c.round
    mw = 0.31 * ident.mouth_size * _clip(1.0 + 0.2 * c.width - 0.32 * rnd, 0.55, 1.4)
    h = 0.34 * _clip(float(state.mouth_open), 0.0, 1.0) ** 0.65 * (1.0 + 0.3 * rnd)
    t, t2 = _T_MOUTH, _T_MOUTH_SQ
    x = mw * t
    yc = my + c.corner * t2
    prof = (1.0 - t2) ** (0.75 - 0.35 * rnd)
    up_in, lo_in = yc, yc - h * prof
    squash = 1.0 - 0.45 * _clip(c.press, 0.0, 1.0) + 0.3 * rnd
    lu, ll = 0.07 * ident.lip_upper * squash, 0.085 * ident.lip_lower * squash
    up_out = up_in + lu * _UPPER_LIP_SHAPE
    lo_out = lo_in - ll * _LOWER_LIP_SHAPE
    teeth_h = min(0.055, 0.22 * h) * _TEETH_SHAPE
    n = len(t)
    # rows: upper outer, upper inner, lower inner, lower outer, teeth bottom
    rows = np.empty((5 * n, 3))
    for k, ys in enumerate((up_out, up_in, lo_in, lo_out, up_in - teeth_h)):
        rows[k * n : (k + 1) * n, 0], rows[k * n : (k + 1) * n, 1] = x, ys
    rows[:, 2] = np.tile(0.02 + 0.03 * prof, 5)
    uo, ui, li, lo, tb = (rows[k * n : (k + 1) * n] for k in range(5))
    circle = unit_circle(14)
    return MouthShapes(
        lips=np.vstack([uo, lo[-2:0:-1]]),
        upper_lip=np.vstack([uo, ui[-2:0:-1]]),
        opening=np.vstack([ui, li[-2:0:-1]]),
        teeth=np.vstack([ui + (0.0, 0.01, 0.0), tb[::-1]]),
        tongue=with_lift(circle * (0.5 * mw, 0.32 * h) + (0.0, my - 1.1 * h - 0.015), 0.02),
        throat=with_lift(circle * (0.45 * mw, 0.3 * h + 0.003) + (0.0, my - 0.5 * h), 0.02),
        line=ui,
        lip_light=with_lift(circle * (0.28 * mw, 0.22 * ll) + (0.05 * mw, my - h - 0.55 * ll), 0.05),
        open_height=h,
        half_width=mw,
    )


def cheeks(b: float, c: Controls, half_width: float) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Blush ellipses and, when smiling, smile lines (left then right)."""
    circle = unit_circle(12)
    ry, cy = 0.09 + 0.03 * c.cheek, -0.2 * b + 0.05 * c.cheek
    blush = [with_lift(circle * (0.16, ry) + (s * 0.52, cy), 0.0) for s in (-1.0, 1.0)]
    lines = []
    if c.cheek > 0.15:
        my = -0.5 * b
        for s in (-1.0, 1.0):
            p = [
                [s * (half_width - 0.02), my + 0.16],
                [s * (half_width + 0.05), my + 0.02],
                [s * (half_width + 0.03), my - 0.06],
            ]
            lines.append(with_lift(np.array(p), 0.01))
    return blush, lines
