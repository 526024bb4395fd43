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


def test_bad_requests(tiny_dataset):
    with pytest.raises(ValueError, match="window"):
        FrameSampler(tiny_dataset, window=0)
    with pytest.raises(ValueError, match="no clips of at least"):
        FrameSampler(tiny_dataset, window=10_000)
