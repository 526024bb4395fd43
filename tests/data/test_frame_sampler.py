import numpy as np
import pytest

from avatarlm.data.frame_sampler import FrameSampler
from avatarlm.data.shards import iter_samples


def test_windows_are_consecutive_frames_of_one_clip(tiny_dataset):
    sampler = FrameSampler(tiny_dataset, "train", window=4)
    batch = sampler(np.random.default_rng(0), batch=5)
    assert batch.shape == (5, 4, 64, 64, 3) and batch.dtype == np.uint8
    clips = [s.frames for s in iter_samples(tiny_dataset, "train")]
    for window in batch:
        assert any(np.array_equal(window, c[i : i + 4]) for c in clips for i in range(len(c) - 3)), (
            "a window must be 4 consecutive frames of one clip"
        )
    np.testing.assert_array_equal(batch, sampler(np.random.default_rng(0), batch=5))


def test_reference_frames_come_first_from_the_windows_clip(tiny_dataset):
    sampler = FrameSampler(tiny_dataset, "train", window=3, reference=True)
    batch = sampler(np.random.default_rng(1), batch=6)
    assert batch.shape == (6, 4, 64, 64, 3)
    clips = [s.frames for s in iter_samples(tiny_dataset, "train")]
    for item in batch:
        owners = [c for c in clips if any(np.array_equal(item[1:], c[i : i + 3]) for i in range(len(c) - 2))]
        assert owners and any((item[0] == frame).all() for frame in owners[0]), (
            "the reference is a frame of the clip the window comes from"
        )


def test_bad_requests(tiny_dataset):
    with pytest.raises(ValueError, match="window"):
        FrameSampler(tiny_dataset, window=0)
    with pytest.raises(ValueError, match="no clips of at least"):
        FrameSampler(tiny_dataset, window=10_000)
