"""Which way the view moved: image shifts of constructed frames, and the state's expected direction."""

import numpy as np
import pytest

from avatarlm.eval.world_motion import expected_shift, follows, image_shift


def _texture(seed: int = 0, size: int = 64) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (size // 4, size // 4, 3))
    return np.kron(small, np.ones((4, 4, 1))).astype(np.uint8)  # blocks: a shift is visible at any offset


@pytest.mark.parametrize(("dx", "dy"), [(3, 0), (-5, 0), (0, 4), (-2, -6), (7, 1)])
def test_a_shifted_frame_reports_its_shift(dx, dy):
    big = _texture(size=96)
    a = big[16:80, 16:80]
    b = big[16 - dy : 80 - dy, 16 - dx : 80 - dx]  # b[y, x] = a[y - dy, x - dx]
    assert image_shift(a, b, vertical=True) == (dx, dy)
    assert image_shift(a, b)[0] == dx or dy != 0  # horizontal only: exact when there is no vertical move


def test_a_still_frame_reports_no_shift_and_errors_are_named():
    a = _texture()
    assert image_shift(a, a, vertical=True) == (0, 0)
    assert image_shift(np.full_like(a, 90), np.full_like(a, 90)) == (0, 0)  # flat: ties go to no move
    with pytest.raises(ValueError, match="one shape"):
        image_shift(a, a[:32])
    with pytest.raises(ValueError, match="max_shift"):
        image_shift(a, a, max_shift=40)


def test_the_state_says_which_way_the_view_slides():
    doom = lambda angle: np.array([0.0, 0.0, 0.0, angle])  # noqa: E731
    assert expected_shift("vizdoom", doom(10), doom(16)) == (1, 0)  # turned left: the scene slides right
    assert expected_shift("vizdoom", doom(10), doom(4)) == (-1, 0)
    assert expected_shift("vizdoom", doom(358), doom(3)) == (1, 0)  # across 0 degrees: +5, a left turn
    assert expected_shift("vizdoom", doom(10), doom(10.5)) is None  # walking, not turning
    craft = lambda x, y: np.array([x, y, 0.0, 1.0])  # noqa: E731
    assert expected_shift("crafter", craft(5, 5), craft(6, 5)) == (-1, 0)  # a step right: the map slides left
    assert expected_shift("crafter", craft(5, 5), craft(5, 4)) == (0, 1)
    assert expected_shift("crafter", craft(5, 5), craft(5, 5)) is None  # blocked, or turned in place
    with pytest.raises(ValueError, match="unknown environment"):
        expected_shift("pong", craft(0, 0), craft(1, 0))


def test_following_needs_the_right_sign_on_every_axis_that_moved():
    assert follows((3, 0), (1, 0)) and follows((3, 2), (1, 0))  # the other axis is not asked about
    assert not follows((-3, 0), (1, 0)) and not follows((0, 0), (1, 0))  # wrong way, or did not move
    assert follows((-7, 7), (-1, 1)) and not follows((-7, 0), (-1, 1))


def test_pooled_psnr_stays_finite_when_some_frames_are_identical():
    from avatarlm.eval.world_quality import pooled_psnr

    a = np.zeros((4, 4, 3), np.uint8)
    b = np.full((4, 4, 3), 10, np.uint8)
    assert pooled_psnr([(a, a), (a, b)]) == pytest.approx(10 * np.log10(255**2 / 50))  # mean MSE 50
    assert pooled_psnr([(a, a)]) == np.inf
