import numpy as np
import pytest

from avatarlm.data.face import FACE_STATE_FIELDS
from avatarlm.data.render_sampler import LIMITS, RenderedClipSampler, random_trajectory

F = {name: i for i, name in enumerate(FACE_STATE_FIELDS)}


def test_batches_are_uint8_clips_of_the_requested_shape() -> None:
    batch = RenderedClipSampler([3, 7], size=32, window=3)(np.random.default_rng(0), batch=4)
    assert batch.shape == (4, 3, 32, 32, 3) and batch.dtype == np.uint8
    assert batch.std() > 10, "frames should show a face, not a flat colour"


def test_same_rng_gives_same_batch_and_other_rng_differs() -> None:
    sampler = RenderedClipSampler([1, 2, 5], size=32)
    a = sampler(np.random.default_rng(11), batch=3)
    b = RenderedClipSampler([1, 2, 5], size=32)(np.random.default_rng(11), batch=3)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, sampler(np.random.default_rng(12), batch=3))


def test_draw_reports_identities_from_the_given_seeds() -> None:
    _, seeds, states = RenderedClipSampler([4, 9], size=32, window=2).draw(np.random.default_rng(0), 6)
    assert set(seeds) <= {4, 9} and len(states) == 6 and all(len(s) == 2 for s in states)


def test_windows_move_smoothly() -> None:
    sampler = RenderedClipSampler([0, 1, 2, 3], size=48, window=6)
    clips = sampler(np.random.default_rng(3), batch=6).astype(np.float64)
    within = np.abs(np.diff(clips, axis=1)).mean()
    across = np.abs(clips[1:, 0] - clips[:-1, 0]).mean()
    assert within < 0.5 * across, (within, across)


def test_trajectories_stay_in_range_with_bounded_steps() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        track = random_trajectory(rng, 8, wide_fraction=0.5)
        for name, (lo, hi) in LIMITS.items():
            assert lo <= track[:, F[name]].min() and track[:, F[name]].max() <= hi
        assert np.abs(np.diff(track[:, F["yaw"]])).max() <= 2.0 + 1e-9
        assert len(set(track[:, F["expression"]])) == 1


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(identity_seeds=[]), "at least one identity"),
        (dict(identity_seeds=[-1]), "non-negative"),
        (dict(identity_seeds=[1], size=8), "size"),
        (dict(identity_seeds=[1], window=0), "window"),
        (dict(identity_seeds=[1], wide_fraction=1.5), "wide_fraction"),
    ],
)
def test_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        RenderedClipSampler(**kwargs)
