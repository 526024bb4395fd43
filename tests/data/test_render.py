"""Portrait renderer: determinism, image/ground-truth agreement, identity diversity, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from avatarlm.data.face import FaceState
from avatarlm.data.identity import Identity
from avatarlm.data.render import KEYPOINT_NAMES, Renderer
from avatarlm.data.render_sheet import contact_sheet

OPENINGS = (0.0, 0.25, 0.5, 0.75, 1.0)


def _luma(img: np.ndarray) -> np.ndarray:
    return img.astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def _dark_in_mouth_box(r: Renderer, state: FaceState, threshold: float = 60.0) -> int:
    x0, y0, x1, y1 = r.mouth_box(state)
    return int((_luma(r.render(state)[y0:y1, x0:x1]) < threshold).sum())


def test_render_is_deterministic_and_shaped() -> None:
    state = FaceState(
        yaw=12.0, pitch=-5.0, roll=4.0, mouth_open=0.6, blink=0.3, expression=1, expression_strength=0.7
    )
    a = Renderer(Identity.from_seed(3), 128, 128).render(state)
    b = Renderer(Identity.from_seed(3), 128, 128).render(state)
    assert a.shape == (128, 128, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    c = Renderer(Identity.from_seed(4), 128, 128).render(state)
    assert np.abs(a.astype(int) - c.astype(int)).mean() > 10


@pytest.mark.parametrize(("height", "width"), [(128, 128), (256, 256), (640, 384)])
def test_sizes(height: int, width: int) -> None:
    r = Renderer(Identity.from_seed(11), height, width)
    img = r.render(FaceState(yaw=-20.0, mouth_open=0.5))
    assert img.shape == (height, width, 3)
    kp = r.keypoints(FaceState(yaw=-20.0))
    assert kp.shape == (len(KEYPOINT_NAMES), 2) and kp.dtype == np.float32
    assert (kp > 0).all() and (kp < 1).all()
    x0, y0, x1, y1 = r.mouth_box(FaceState())
    assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height


def test_portrait_shows_more_torso() -> None:
    ident = Identity.from_seed(2)
    square = Renderer(ident, 384, 384).keypoints(FaceState())
    portrait = Renderer(ident, 640, 384).keypoints(FaceState())
    chin = KEYPOINT_NAMES.index("contour_4")
    assert portrait[chin, 1] < square[chin, 1] - 0.1  # the head sits higher: the lower frame is torso


@pytest.mark.parametrize("bad", [0, -5, 12.5, "128", None, True, 8])
def test_bad_sizes_raise(bad: object) -> None:
    with pytest.raises(ValueError):
        Renderer(Identity.from_seed(0), bad, 128)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Renderer(Identity.from_seed(0), 128, bad)  # type: ignore[arg-type]


def test_bad_state_raises() -> None:
    r = Renderer(Identity.from_seed(0), 64, 64)
    with pytest.raises(ValueError, match="non-finite"):
        r.render(FaceState(yaw=float("nan")))
    with pytest.raises(ValueError, match="FaceState"):
        r.render({"yaw": 0.0})  # type: ignore[arg-type]


def test_keypoint_names_fixed_and_not_lips_or_lids() -> None:
    assert len(KEYPOINT_NAMES) == len(set(KEYPOINT_NAMES)) == 23
    for name in KEYPOINT_NAMES:
        assert not any(word in name for word in ("lip", "mouth", "lid", "iris", "pupil"))
    assert {"nose_tip", "eye_left_outer", "eye_right_outer", "brow_left_inner", "contour_4"} <= set(
        KEYPOINT_NAMES
    )


def test_keypoints_ignore_mouth_and_blink() -> None:
    r = Renderer(Identity.from_seed(5), 128, 128)
    base = r.keypoints(FaceState(yaw=10.0))
    moved = r.keypoints(FaceState(yaw=10.0, mouth_open=1.0, blink=1.0, mouth_width=1.0, mouth_round=1.0))
    assert np.array_equal(base, moved)


def test_keypoints_follow_yaw_with_parallax() -> None:
    r = Renderer(Identity.from_seed(6), 256, 256)
    tip, left, right = (KEYPOINT_NAMES.index(n) for n in ("nose_tip", "contour_0", "contour_8"))
    xs = [r.keypoints(FaceState(yaw=y))[:, 0] for y in (-30.0, -15.0, 0.0, 15.0, 30.0)]
    tips = [x[tip] for x in xs]
    assert all(a < b for a, b in zip(tips, tips[1:], strict=False))
    nose_shift = xs[-1][tip] - xs[0][tip]
    face_centre_shift = (xs[-1][left] + xs[-1][right] - xs[0][left] - xs[0][right]) / 2
    assert nose_shift > 2 * abs(face_centre_shift)
    width0, width30 = xs[2][right] - xs[2][left], xs[-1][right] - xs[-1][left]
    assert width30 < width0  # the face outline narrows a little when turned


def test_keypoints_follow_pitch_roll_and_brows() -> None:
    r = Renderer(Identity.from_seed(8), 128, 128)
    tip, brow, left, right = (
        KEYPOINT_NAMES.index(n) for n in ("nose_tip", "brow_left_middle", "contour_0", "contour_8")
    )
    assert r.keypoints(FaceState(pitch=20.0))[tip, 1] < r.keypoints(FaceState(pitch=-20.0))[tip, 1]
    assert r.keypoints(FaceState(brow_raise=1.0))[brow, 1] < r.keypoints(FaceState(brow_raise=-1.0))[brow, 1]
    kp = r.keypoints(FaceState(roll=20.0))
    assert kp[left, 1] < kp[right, 1]  # clockwise roll lifts the image-left side of the jaw


@pytest.mark.parametrize("seed", [0, 3, 17, 21, 42, 55])
@pytest.mark.parametrize("size", [128, 256])
def test_dark_mouth_area_grows_with_mouth_open(seed: int, size: int) -> None:
    r = Renderer(Identity.from_seed(seed), size, size)
    for extra in (
        {},
        {"yaw": 20.0, "expression": 1, "expression_strength": 1.0},
        {"pitch": -15.0, "roll": 15.0},
    ):
        dark = [_dark_in_mouth_box(r, FaceState(mouth_open=o, **extra)) for o in OPENINGS]  # type: ignore[arg-type]
        assert all(a < b for a, b in zip(dark, dark[1:], strict=False)), (extra, dark)


def _iris_mask(r: Renderer, state: FaceState) -> np.ndarray:
    """Pixels close to the identity's iris colour inside boxes spanned by the eye-corner keypoints."""
    img = r.render(state).astype(np.int64)
    near = np.abs(img - np.array(r.identity.iris_colour)).sum(-1) < 40
    kp = r.keypoints(state) * [r.width, r.height]
    mask = np.zeros_like(near)
    for a, b in (("eye_left_outer", "eye_left_inner"), ("eye_right_inner", "eye_right_outer")):
        p, q = kp[KEYPOINT_NAMES.index(a)], kp[KEYPOINT_NAMES.index(b)]
        w, yc = abs(q[0] - p[0]), (p[1] + q[1]) / 2
        rows = slice(int(yc - 0.6 * w), int(yc + 0.6 * w) + 1)
        cols = slice(int(min(p[0], q[0])), int(max(p[0], q[0])) + 1)
        mask[rows, cols] = near[rows, cols]
    return mask


def _distinct_iris_seeds(n: int) -> list[int]:
    """Identities without glasses whose iris colour is unlike skin, brows, hair, lips and lashes."""
    out = []
    for seed in range(300):
        i = Identity.from_seed(seed)
        others = (i.skin, i.brow_colour, i.hair_colour, i.lip_colour, (34, 24, 26))
        distinct = min(sum(abs(a - b) for a, b in zip(i.iris_colour, o, strict=True)) for o in others) > 120
        if distinct and i.glasses == "none":
            out.append(seed)
        if len(out) == n:
            break
    return out


def test_blink_hides_the_iris() -> None:
    seeds = _distinct_iris_seeds(4)
    assert len(seeds) == 4
    for seed in seeds:
        r = Renderer(Identity.from_seed(seed), 256, 256)
        for yaw in (0.0, 20.0):
            open_, half, closed = (
                int(_iris_mask(r, FaceState(yaw=yaw, blink=b)).sum()) for b in (0.0, 0.5, 1.0)
            )
            assert open_ >= 40, (seed, open_)
            assert closed <= 0.1 * open_ and half < open_, (seed, open_, half, closed)


def test_gaze_moves_the_iris() -> None:
    r = Renderer(Identity.from_seed(_distinct_iris_seeds(1)[0]), 256, 256)

    def iris_x(state: FaceState) -> tuple[float, float]:
        xs = np.nonzero(_iris_mask(r, state))[1]
        return float(xs[xs < r.width / 2].mean()), float(xs[xs >= r.width / 2].mean())

    right, left = iris_x(FaceState(gaze_x=1.0)), iris_x(FaceState(gaze_x=-1.0))
    assert right[0] > left[0] + 3 and right[1] > left[1] + 3


def test_identities_differ_far_more_than_small_state_changes() -> None:
    size = 96
    neutral = [
        Renderer(Identity.from_seed(s), size, size).render(FaceState()).astype(np.int16) for s in range(12)
    ]
    between = [np.abs(neutral[i] - neutral[j]).mean() for i in range(12) for j in range(i + 1, 12)]
    r = Renderer(Identity.from_seed(0), size, size)
    within = []
    for k in range(8):
        a = r.render(FaceState(yaw=2.0 * k, mouth_open=0.1 * k)).astype(np.int16)
        b = r.render(FaceState(yaw=2.0 * k + 1.0, mouth_open=0.1 * k + 0.05, gaze_x=0.1)).astype(np.int16)
        within.append(np.abs(a - b).mean())
    assert np.median(between) > 30.0
    assert np.median(between) > 15 * np.median(within)
    assert min(between) > 5 * max(within)


def test_expressions_change_the_face() -> None:
    r = Renderer(Identity.from_seed(9), 128, 128)
    neutral = r.render(FaceState()).astype(int)
    for e in range(1, 5):
        img = r.render(FaceState(expression=e, expression_strength=1.0)).astype(int)
        assert (np.abs(img - neutral).sum(-1) > 30).sum() > 20, e


def test_contact_sheet_tiles_with_borders() -> None:
    imgs = [np.full((10, 12, 3), i * 20, np.uint8) for i in range(5)]
    sheet = contact_sheet(imgs, columns=3, border=2)
    assert sheet.shape == (2 * 12 + 2, 3 * 14 + 2, 3)
    assert (sheet[2:12, 2 + 14 : 14 + 14] == 20).all()
    assert (sheet[0] == 255).all()
    with pytest.raises(ValueError):
        contact_sheet([], 2)
    with pytest.raises(ValueError):
        contact_sheet(imgs, 0)
    with pytest.raises(ValueError):
        contact_sheet([imgs[0], np.zeros((5, 5, 3), np.uint8)], 2)
