"""Fast 2.5D cartoon portrait renderer of the synthetic talking-avatar world (OpenCV polygons, one core).

`Renderer(identity, height, width).render(state)` draws one RGB frame; `keypoints(state)` and
`mouth_box(state)` give ground truth that comes from the same geometry as the pixels.
"""

from __future__ import annotations

import math
from numbers import Integral

import numpy as np

from avatarlm.data.face import FaceState
from avatarlm.data.identity import Identity
from avatarlm.data.render_base import frame_for, render_base
from avatarlm.data.render_draw import RGB, composite_clipped, fill, fixed, mix, shade, stroke
from avatarlm.data.render_face import brow, cheeks, controls_for, eye, mouth, nose
from avatarlm.data.render_hair import EYE_X, EYE_Y, static_shapes
from avatarlm.data.render_head import HeadModel, at_depth, front_outline

MIN_SIZE = 16
MAX_ANGLE = 45.0
_CONTOUR_DEG = (190.0, 210.0, 230.0, 250.0, 270.0, 290.0, 310.0, 330.0, 350.0)

# "left"/"right" are image sides (viewer's left/right).
KEYPOINT_NAMES: tuple[str, ...] = (
    *(f"contour_{i}" for i in range(len(_CONTOUR_DEG))),
    "brow_left_inner",
    "brow_left_middle",
    "brow_left_outer",
    "brow_right_inner",
    "brow_right_middle",
    "brow_right_outer",
    "nose_bridge",
    "nose_tip",
    "nose_left",
    "nose_right",
    "eye_left_outer",
    "eye_left_inner",
    "eye_right_inner",
    "eye_right_outer",
)

_EYE_WHITE: RGB = (246, 243, 236)
_PUPIL: RGB = (18, 16, 20)
_LASH: RGB = (34, 24, 26)
_MOUTH_DARK: RGB = (44, 11, 16)
_THROAT: RGB = (20, 4, 7)
_TONGUE: RGB = (205, 98, 108)
_TEETH: RGB = (248, 247, 240)


class _Batch:
    """Named pieces of one point array; `index[name]` is the piece's slice in the concatenated array."""

    def __init__(self, start: int = 0) -> None:
        self.parts: list[np.ndarray] = []
        self.index: dict[str, slice] = {}
        self.start = self.end = start

    def add(self, name: str, pts: np.ndarray) -> None:
        self.index[name] = slice(self.end, self.end + len(pts))
        self.parts.append(pts)
        self.end += len(pts)

    def array(self, columns: int) -> np.ndarray:
        return np.concatenate(self.parts) if self.parts else np.zeros((0, columns))


class _Geometry:
    """One frame's projected points: float pixels for ground truth, fixed point for drawing."""

    def __init__(
        self, px: np.ndarray, index: dict[str, slice], extra: dict[str, slice], info: dict[str, float]
    ):
        self.px = px
        self.fx = fixed(px)
        self.index = index
        self.extra = extra
        self.info = info

    def slice(self, name: str) -> slice:
        s = self.index.get(name)
        return self.extra[name] if s is None else s

    def __getitem__(self, name: str) -> np.ndarray:
        return self.fx[self.slice(name)]

    def get(self, name: str) -> np.ndarray | None:
        return self.fx[self.slice(name)] if name in self.index or name in self.extra else None

    def join(self, *names: str) -> np.ndarray:
        return np.concatenate([self.fx[self.slice(n)] for n in names])


def _check_size(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise ValueError(f"{name} must be an int, got {value!r}")
    if int(value) < MIN_SIZE:
        raise ValueError(f"{name} must be at least {MIN_SIZE} pixels, got {value!r}")
    return int(value)


class Renderer:
    """Draws one identity at a fixed image size; everything identity-dependent is prepared here."""

    def __init__(self, identity: Identity, height: int, width: int) -> None:
        if not isinstance(identity, Identity):
            raise ValueError(f"identity must be an Identity, got {type(identity).__name__}")
        self.height = _check_size("height", height)
        self.width = _check_size("width", width)
        self.identity = ident = identity
        f = frame_for(ident, self.height, self.width)
        self.model = m = HeadModel(ident.face_height, f.scale, (f.cx, f.cy))
        self.base = render_base(ident, self.height, self.width)
        b, jaw, taper = ident.face_height, ident.jaw_square, ident.chin_taper
        sh = static_shapes(ident, b, float(m.depth(np.array([[EYE_X, EYE_Y]]))[0]))
        self.hair_style, self.n_hair_back = ident.hair_style, len(sh.hair_back)
        # Points fixed in head coordinates.
        static = _Batch()
        n = nose(m, ident)
        static.add("nose_shadow", n.shadow)
        static.add("nose_bottom", n.bottom)
        static.add("nose_light", n.tip_light)
        static.add("nostril_0", n.nostrils[0])
        static.add("nostril_1", n.nostrils[1])
        static.add("nose_keys", n.keys)
        for i, (ear, inner) in enumerate(zip(sh.ears, sh.ear_inner, strict=True)):
            static.add(f"ear_{i}", at_depth(ear, -0.15))
            static.add(f"ear_inner_{i}", at_depth(inner, -0.12))
        if sh.bun is not None:
            static.add("bun", at_depth(sh.bun, -0.2))
        shade_rim = front_outline(np.radians(np.linspace(-70.0, 70.0, 12)), b, jaw, taper)
        static.add("shade_inner", m.on_surface((shade_rim * [0.8, 0.97])[::-1]))
        for i, light in enumerate(sh.highlights):
            static.add(f"highlight_{i}", m.on_surface(light, 0.0 if ident.hair_style == "bald" else 0.04))
        for i, lens in enumerate(sh.glasses):
            static.add(f"lens_{i}", at_depth(lens, sh.glasses_z))
            static.add(f"temple_{i}", np.column_stack([sh.temples[i], [sh.glasses_z, -0.1]]))
        if sh.bridge is not None:
            static.add("bridge", at_depth(sh.bridge, sh.glasses_z + 0.02))
        # Front-view outlines that follow the silhouette, with their ellipsoid sizes.
        rims = _Batch(static.end)
        sizes: list[np.ndarray] = []

        def rim(name: str, xy: np.ndarray, size: float) -> None:
            rims.add(name, xy)
            sizes.append(np.full(len(xy), size))

        rim("outline", front_outline(np.radians(np.arange(0.0, 360.0, 7.5)), b, jaw, taper), 1.0)
        rim("contour", front_outline(np.radians(_CONTOUR_DEG), b, jaw, taper), 1.0)
        rim("shade_rim", shade_rim, 1.0)
        for i, back in enumerate(sh.hair_back):
            rim(f"hair_back_{i}", back.rim, back.size)
        if sh.hair_front is not None:
            rim("hair_front_rim", sh.hair_front.rim, sh.hair_front.size)
            static.add("hair_front_inner", m.on_surface(sh.hair_front.inner, sh.hair_front.lift))
        if sh.beard is not None:
            if len(sh.beard.rim):
                rim("beard_rim", sh.beard.rim, sh.beard.size)
            static.add("beard_inner", m.on_surface(sh.beard.inner, sh.beard.lift))
        # hair_front_inner / beard_inner were added after the rims started: move the rims behind them.
        shift = static.end - rims.start
        self.static3 = static.array(3)
        self.rim_xy, self.rim_size = rims.array(2), np.concatenate(sizes)
        self.index = {
            **static.index,
            **{k: slice(v.start + shift, v.stop + shift) for k, v in rims.index.items()},
        }
        self.n_fixed = static.end + len(self.rim_xy)
        self.has = {
            "bun": sh.bun is not None,
            "front": sh.hair_front is not None,
            "beard": sh.beard is not None,
            "beard_rim": sh.beard is not None and len(sh.beard.rim) > 0,
            "glasses": bool(sh.glasses),
            "bridge": sh.bridge is not None,
        }
        self.n_highlights = len(sh.highlights)
        self.thin = max(1, round(0.03 * f.scale))
        self.thick = max(1, round(0.05 * f.scale))
        skin, hair, lip = ident.skin, ident.hair_colour, ident.lip_colour
        self.c_skin_shade = shade(skin, 0.93)
        self.c_skin_line = mix(shade(skin, 0.7), (120, 40, 40), 0.15)
        self.c_smile = mix(skin, self.c_skin_line, 0.5)
        self.c_nostril = mix(shade(skin, 0.42), (90, 20, 20), 0.2)
        self.c_skin_light = mix(skin, (255, 255, 255), 0.25)
        self.c_nose_light = mix(skin, self.c_skin_light, 0.6)
        self.c_blush = mix(skin, (235, 105, 115), 0.08 + 0.14 * ident.blush)
        self.c_hair_back = shade(hair, 0.78)
        self.c_bun_line = shade(self.c_hair_back, 0.8)
        self.c_hair_light = mix(hair, (255, 255, 255), 0.25)
        self.c_beard = mix(skin, hair, 0.4) if ident.beard == "stubble" else shade(hair, 0.92)
        self.c_lip_upper = shade(lip, 0.84)
        self.c_lip_line, self.c_lip_light = mix(lip, (90, 35, 40), 0.5), mix(lip, (255, 255, 255), 0.3)

    # ----------------------------------------------------------------- geometry
    def _geometry(self, state: FaceState) -> _Geometry:
        if not isinstance(state, FaceState):
            raise ValueError(f"state must be a FaceState, got {type(state).__name__}")
        if not np.isfinite(state.to_vector()).all():
            raise ValueError(f"state has non-finite values: {state}")
        m, ident = self.model, self.identity
        clip = lambda v: max(-MAX_ANGLE, min(MAX_ANGLE, float(v)))  # noqa: E731
        m.set_pose(clip(state.yaw), clip(state.pitch), clip(state.roll))
        c = controls_for(state)
        dyn = _Batch(self.n_fixed)
        info: dict[str, float] = {}
        for i, side in enumerate((-1.0, 1.0)):
            e = eye(ident, side, state, c)
            info[f"eye_open_{i}"] = e.openness
            for name in ("opening", "iris", "pupil", "glint", "upper", "lower", "crease", "corners"):
                dyn.add(f"eye_{name}_{i}", getattr(e, name))
            poly, keys = brow(ident, side, c)
            dyn.add(f"brow_{i}", poly)
            dyn.add(f"brow_keys_{i}", keys)
        ms = mouth(ident, m.b, state, c)
        info["mouth_open"] = ms.open_height
        for name in ("lips", "upper_lip", "opening", "teeth", "tongue", "throat", "line", "lip_light"):
            dyn.add(f"mouth_{name}", getattr(ms, name))
        blush, lines = cheeks(m.b, c, ms.half_width)
        for i, patch in enumerate(blush):
            dyn.add(f"blush_{i}", patch)
        for i, line in enumerate(lines):
            dyn.add(f"smile_{i}", line)
        pts = np.concatenate(
            [self.static3, m.silhouette(self.rim_xy, self.rim_size), m.lift_to_surface(dyn.array(3))]
        )
        return _Geometry(m.project(pts), self.index, dyn.index, info)

    def keypoints(self, state: FaceState) -> np.ndarray:
        """K x 2 float32 positions (x / width, y / height, pixel centres at +0.5) in KEYPOINT_NAMES order."""
        g = self._geometry(state)
        px = g.px
        left, right = px[g.slice("eye_corners_0")], px[g.slice("eye_corners_1")]
        pts = [px[g.slice("contour")], px[g.slice("brow_keys_0")], px[g.slice("brow_keys_1")]]
        pts += [px[g.slice("nose_keys")], left, right[::-1]]
        return ((np.concatenate(pts) + 0.5) / [self.width, self.height]).astype(np.float32)

    def mouth_box(self, state: FaceState) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1) pixel box around the lips plus one pixel (x1, y1 exclusive), inside the image."""
        g = self._geometry(state)
        lips = g.px[g.slice("mouth_lips")]
        lo, hi = lips.min(axis=0), lips.max(axis=0)
        x0, y0 = max(0, math.floor(lo[0]) - 1), max(0, math.floor(lo[1]) - 1)
        x1, y1 = min(self.width, math.ceil(hi[0]) + 2), min(self.height, math.ceil(hi[1]) + 2)
        return x0, y0, max(x0, x1), max(y0, y1)

    # ----------------------------------------------------------------- drawing
    def render(self, state: FaceState) -> np.ndarray:
        """One H x W x 3 uint8 RGB frame."""
        g = self._geometry(state)
        ident, has = self.identity, self.has
        img = self.base.image.copy()
        for i in range(self.n_hair_back):
            fill(img, g[f"hair_back_{i}"], self.c_hair_back)
        if has["bun"]:
            fill(img, g["bun"], self.c_hair_back)
            stroke(img, g["bun"], self.c_bun_line, self.thin, closed=True)
        if self.base.neck_mask.size:
            rs, cs = self.base.neck_rows, self.base.neck_cols
            np.copyto(img[rs, cs], self.base.image[rs, cs], where=self.base.neck_mask)
        for i in range(2):
            fill(img, g[f"ear_{i}"], self.c_skin_shade)
            stroke(img, g[f"ear_inner_{i}"], self.c_skin_line, self.thin)
        fill(img, g["outline"], ident.skin)
        fill(img, g.join("shade_rim", "shade_inner"), self.c_skin_shade)
        fill(img, g["blush_0"], self.c_blush)
        fill(img, g["blush_1"], self.c_blush)
        if has["beard"]:
            fill(
                img,
                g.join("beard_rim", "beard_inner") if has["beard_rim"] else g["beard_inner"],
                self.c_beard,
            )
        self._draw_nose(img, g)
        for i in range(2):
            line = g.get(f"smile_{i}")
            if line is not None:
                stroke(img, line, self.c_smile, self.thin)
            self._draw_eye(img, g, i)
            fill(img, g[f"brow_{i}"], ident.brow_colour)
        self._draw_mouth(img, g)
        if has["front"]:
            fill(img, g.join("hair_front_rim", "hair_front_inner"), ident.hair_colour)
        for i in range(self.n_highlights):
            if self.hair_style == "bald":
                fill(img, g[f"highlight_{i}"], self.c_skin_light)
            else:
                stroke(img, g[f"highlight_{i}"], self.c_hair_light, self.thin)
        if has["glasses"]:
            self._draw_glasses(img, g)
        return img

    def _draw_nose(self, img: np.ndarray, g: _Geometry) -> None:
        fill(img, g["nose_shadow"], self.c_skin_shade)
        fill(img, g["nose_light"], self.c_nose_light)
        stroke(img, g["nose_bottom"], self.c_skin_line, self.thin)
        fill(img, g["nostril_0"], self.c_nostril)
        fill(img, g["nostril_1"], self.c_nostril)

    def _draw_eye(self, img: np.ndarray, g: _Geometry, i: int) -> None:
        openness = g.info[f"eye_open_{i}"]
        if openness > 0.3:
            stroke(img, g[f"eye_crease_{i}"], self.c_skin_line, self.thin)
        if openness > 0.02:
            layers = [
                (g[f"eye_iris_{i}"], self.identity.iris_colour),
                (g[f"eye_pupil_{i}"], _PUPIL),
                (g[f"eye_glint_{i}"], (255, 255, 255)),
            ]
            composite_clipped(img, g[f"eye_opening_{i}"], _EYE_WHITE, layers)
        stroke(img, g[f"eye_lower_{i}"], self.c_skin_line, self.thin)
        stroke(img, g[f"eye_upper_{i}"], _LASH, self.thick)

    def _draw_mouth(self, img: np.ndarray, g: _Geometry) -> None:
        fill(img, g["mouth_lips"], self.identity.lip_colour)
        fill(img, g["mouth_upper_lip"], self.c_lip_upper)
        fill(img, g["mouth_lip_light"], self.c_lip_light)
        if g.info["mouth_open"] > 0.004:
            layers = [(g["mouth_throat"], _THROAT), (g["mouth_tongue"], _TONGUE), (g["mouth_teeth"], _TEETH)]
            composite_clipped(img, g["mouth_opening"], _MOUTH_DARK, layers)
        stroke(img, g["mouth_line"], self.c_lip_line, self.thin)

    def _draw_glasses(self, img: np.ndarray, g: _Geometry) -> None:
        colour = self.identity.glasses_colour
        for i in range(2):
            stroke(img, g[f"temple_{i}"], colour, self.thick)
            stroke(img, g[f"lens_{i}"], colour, self.thick, closed=True)
        if self.has["bridge"]:
            stroke(img, g["bridge"], colour, self.thick)
