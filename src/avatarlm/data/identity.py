"""Who the synthetic avatar is: every appearance choice that stays fixed across frames, drawn from a seed."""

from __future__ import annotations

import colorsys
from dataclasses import dataclass
from numbers import Integral

import numpy as np

RGB = tuple[int, int, int]

HAIR_STYLES: tuple[str, ...] = ("short", "long", "bun", "bald", "curly", "bob", "buzz", "spiky")
CLOTHING_STYLES: tuple[str, ...] = ("crew", "vneck", "collar", "turtleneck", "hoodie", "jacket")
BACKGROUND_STYLES: tuple[str, ...] = ("plain", "circles", "stripes", "window", "vignette")
GLASSES_STYLES: tuple[str, ...] = ("none", "round", "square")
BEARD_STYLES: tuple[str, ...] = ("none", "stubble", "full", "goatee", "moustache")

_SKIN_TONES: tuple[RGB, ...] = (
    (255, 224, 196),
    (241, 194, 160),
    (224, 172, 130),
    (198, 140, 98),
    (160, 105, 70),
    (120, 78, 52),
    (88, 58, 40),
)
_HAIR_COLOURS: tuple[RGB, ...] = (
    (25, 20, 20),
    (60, 40, 28),
    (100, 64, 38),
    (150, 96, 50),
    (205, 165, 95),
    (170, 70, 35),
    (150, 150, 150),
    (225, 222, 215),
    (60, 80, 170),
    (190, 70, 130),
)
_HAIR_WEIGHTS = np.array([16, 16, 14, 8, 10, 7, 5, 3, 1.5, 1.5])
_IRIS_COLOURS: tuple[RGB, ...] = (
    (60, 110, 190),
    (70, 140, 90),
    (110, 70, 35),
    (60, 38, 22),
    (130, 120, 60),
    (110, 125, 140),
)
_LIP_COLOURS: tuple[RGB, ...] = (
    (200, 110, 110),
    (180, 90, 95),
    (215, 120, 125),
    (160, 85, 80),
    (190, 60, 75),
    (150, 95, 95),
)


def _hsv(h: float, s: float, v: float) -> RGB:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0.0), 1.0), min(max(v, 0.0), 1.0))
    return (int(round(r * 255)), int(round(g * 255)), int(round(b * 255)))


def _mix(c0: RGB, c1: RGB, t: float) -> RGB:
    return tuple(int(round(a + (b - a) * t)) for a, b in zip(c0, c1, strict=True))  # type: ignore[return-value]


@dataclass(frozen=True)
class Identity:
    """Fixed appearance of one avatar. Colours are RGB 0-255; shape values are relative to a mean face."""

    seed: int
    skin: RGB
    face_width: float  # head half-width scale, ~0.9-1.08
    face_height: float  # head half-height over half-width, ~1.22-1.45
    jaw_square: float  # superellipse exponent of the lower face, 2 = round, 3 = square
    chin_taper: float  # 0 = wide chin, 0.35 = pointed
    ear_size: float
    hair_style: str
    hair_colour: RGB
    iris_colour: RGB
    eye_size: float
    eye_spacing: float
    brow_thickness: float
    brow_arch: float
    brow_colour: RGB
    nose_length: float
    nose_width: float
    lip_colour: RGB
    lip_upper: float  # upper lip thickness
    lip_lower: float  # lower lip thickness
    mouth_size: float
    blush: float  # 0..1 cheek blush strength
    clothing_style: str
    clothing_colour: RGB
    clothing_colour2: RGB
    clothing_stripes: bool
    background_style: str
    background_top: RGB
    background_bottom: RGB
    background_accent: RGB
    glasses: str
    glasses_colour: RGB
    beard: str

    @classmethod
    def from_seed(cls, seed: int) -> Identity:
        """A deterministic random identity; different seeds give clearly different faces."""
        if isinstance(seed, bool) or not isinstance(seed, Integral) or seed < 0:
            raise ValueError(f"identity seed must be a non-negative int, got {seed!r}")
        rng = np.random.default_rng([int(seed), 0x1D3A7])
        u = rng.uniform

        tone = u(0, len(_SKIN_TONES) - 1)
        lo = int(tone)
        skin = _mix(_SKIN_TONES[lo], _SKIN_TONES[min(lo + 1, len(_SKIN_TONES) - 1)], tone - lo)
        skin = _mix(skin, (255, 190, 170) if u() < 0.5 else (230, 200, 140), u(0, 0.12))

        hair_style = HAIR_STYLES[int(rng.integers(len(HAIR_STYLES)))]
        hair_colour = _HAIR_COLOURS[
            int(rng.choice(len(_HAIR_COLOURS), p=_HAIR_WEIGHTS / _HAIR_WEIGHTS.sum()))
        ]
        hair_colour = _mix(hair_colour, (0, 0, 0) if u() < 0.5 else (255, 255, 255), u(0, 0.12))
        brow_colour = hair_colour if hair_colour[0] < 140 else _mix(hair_colour, (70, 50, 35), 0.55)
        if hair_style == "bald":
            brow_colour = _mix(brow_colour, (50, 35, 25), 0.5)

        iris = _mix(_IRIS_COLOURS[int(rng.integers(len(_IRIS_COLOURS)))], (0, 0, 0), u(0, 0.2))
        lip = _mix(_LIP_COLOURS[int(rng.integers(len(_LIP_COLOURS)))], skin, u(0.1, 0.4))

        clothing_style = CLOTHING_STYLES[int(rng.integers(len(CLOTHING_STYLES)))]
        hue = u()
        clothing = _hsv(hue, u(0.15, 0.85), u(0.25, 0.9))
        if clothing_style == "collar":
            clothing2 = _hsv(u(), u(0.0, 0.15), u(0.85, 1.0))
        else:
            clothing2 = _hsv(hue + u(0.3, 0.7), u(0.1, 0.6), u(0.35, 0.95))

        bg_hue = u()
        bg_top = _hsv(bg_hue, u(0.05, 0.6), u(0.55, 0.98))
        bg_bottom = _hsv(bg_hue + u(-0.12, 0.12), u(0.05, 0.7), u(0.3, 0.85))
        bg_accent = _hsv(bg_hue + u(0.2, 0.8), u(0.1, 0.5), u(0.5, 1.0))

        glasses = "none" if u() < 0.72 else GLASSES_STYLES[1 + int(rng.integers(2))]
        glasses_colour = _hsv(u(), u(0, 0.7), u(0.05, 0.6))
        beard = "none" if u() < 0.65 else BEARD_STYLES[1 + int(rng.integers(len(BEARD_STYLES) - 1))]
        if hair_style in ("long", "bun", "bob") and u() < 0.8:
            beard = "none"

        return cls(
            seed=int(seed),
            skin=skin,
            face_width=float(u(0.9, 1.08)),
            face_height=float(u(1.22, 1.45)),
            jaw_square=float(u(2.0, 3.0)),
            chin_taper=float(u(0.0, 0.35)),
            ear_size=float(u(0.85, 1.2)),
            hair_style=hair_style,
            hair_colour=hair_colour,
            iris_colour=iris,
            eye_size=float(u(0.85, 1.15)),
            eye_spacing=float(u(0.92, 1.08)),
            brow_thickness=float(u(0.6, 1.5)),
            brow_arch=float(u(-0.3, 1.0)),
            brow_colour=brow_colour,
            nose_length=float(u(0.75, 1.3)),
            nose_width=float(u(0.8, 1.25)),
            lip_colour=lip,
            lip_upper=float(u(0.6, 1.3)),
            lip_lower=float(u(0.7, 1.4)),
            mouth_size=float(u(0.85, 1.15)),
            blush=float(u(0.0, 1.0)),
            clothing_style=clothing_style,
            clothing_colour=clothing,
            clothing_colour2=clothing2,
            clothing_stripes=bool(u() < 0.2),
            background_style=BACKGROUND_STYLES[int(rng.integers(len(BACKGROUND_STYLES)))],
            background_top=bg_top,
            background_bottom=bg_bottom,
            background_accent=bg_accent,
            glasses=glasses,
            glasses_colour=glasses_colour,
            beard=beard,
        )
