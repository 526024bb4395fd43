import numpy as np
import pytest

from avatarlm.data.face import FaceState
from avatarlm.data.identity import Identity
from avatarlm.data.render import Renderer
from avatarlm.eval.lipsync import (
    DARK_LEVEL,
    lagged_correlations,
    lip_sync,
    mouth_boxes,
    mouth_dark_level,
    mouth_trace,
)


def rendered_talking_clip(seed: int = 4, n: int = 60, shift: int = 0):
    """Frames of a face whose mouth follows a random opening track, optionally `shift` frames late."""
    rng = np.random.default_rng(seed)
    track = np.clip(np.convolve(rng.random(n + 10), np.ones(4) / 4, "same")[5 : 5 + n] * 1.6 - 0.3, 0, 1)
    renderer = Renderer(Identity.from_seed(seed), 96, 96)
    faces, frames = [], []
    for i in range(n):
        state = FaceState(yaw=5 * np.sin(i / 9), mouth_open=float(track[i]))
        faces.append(state.to_vector())
        shown = FaceState(yaw=state.yaw, mouth_open=float(track[max(i - shift, 0)]))
        frames.append(renderer.render(shown))
    return np.stack(frames), np.stack(faces), track


def test_probe_reads_the_mouth_and_finds_the_delay():
    frames, faces, track = rendered_talking_clip()
    boxes = mouth_boxes(4, faces, 96, 96)
    result = lip_sync(mouth_trace(frames, boxes), track)
    assert result.best_lag == 0 and result.corr_at_best > 0.9
    late, faces, track = rendered_talking_clip(shift=2)
    delayed = lip_sync(mouth_trace(late, mouth_boxes(4, faces, 96, 96)), track)
    assert delayed.best_lag == 2 and delayed.corr_at_best > 0.9 and delayed.corr_at_0 < delayed.corr_at_best


@pytest.mark.parametrize("seed", [5, 123])  # dark skin, no beard; light skin under a full beard
def test_probe_reads_the_mouth_on_dark_skin_and_under_a_beard(seed):
    ident = Identity.from_seed(seed)
    assert (np.mean(ident.skin) < 75) == (seed == 5) and (ident.beard == "full") == (seed == 123)
    frames, faces, track = rendered_talking_clip(seed)
    boxes = mouth_boxes(seed, faces, 96, 96)
    level = mouth_dark_level(seed)
    assert level < DARK_LEVEL  # the box is dark with the mouth shut: the interior is darker still
    relative = lip_sync(mouth_trace(frames, boxes, level), track).corr_at_0
    fixed = lip_sync(mouth_trace(frames, boxes), track).corr_at_0  # one grey level for every face
    assert relative > 0.9 and relative > fixed
    if seed == 123:  # under a beard the fixed level reads the shut mouth as dark: it does not follow at all
        assert fixed < 0.6


def test_a_light_face_keeps_the_fixed_level():
    assert mouth_dark_level(4) == DARK_LEVEL


def test_a_closed_mouth_does_not_correlate():
    frames, faces, track = rendered_talking_clip()
    closed = np.stack([frames[0]] * len(frames))
    result = lip_sync(mouth_trace(closed, mouth_boxes(4, faces, 96, 96)), track)
    assert abs(result.corr_at_best) < 0.3


def test_lagged_correlations_checks_inputs():
    x = np.arange(20.0)
    assert lagged_correlations(x, x, 2)[0] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="equal 1-D"):
        lagged_correlations(x, x[:-1])
    with pytest.raises(ValueError, match="need more than"):
        lagged_correlations(x[:5], x[:5], 3)
    with pytest.raises(ValueError, match="mouth boxes"):
        mouth_trace(np.zeros((2, 8, 8, 3), np.uint8), [(0, 0, 1, 1)])
    with pytest.raises(ValueError, match="dark_level must be positive"):
        mouth_trace(np.zeros((1, 8, 8, 3), np.uint8), [(0, 0, 1, 1)], 0.0)
