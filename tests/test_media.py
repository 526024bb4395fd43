import numpy as np
import pytest

from avatarlm.media import GENERATED_TAG, read_mp4, write_mp4


def test_mp4_round_trip_carries_sound_and_tag(tmp_path):
    frames = [np.full((32, 48, 3), 10 * i, np.uint8) for i in range(10)]
    audio = (0.2 * np.sin(np.linspace(0, 400, 6400))).astype(np.float32)
    path = write_mp4(tmp_path / "a.mp4", frames, 25, audio)
    video, meta = read_mp4(path)
    assert video.shape == (10, 32, 48, 3)
    assert abs(int(video[5].mean()) - 50) <= 3  # lossy but close
    assert meta["comment"] == GENERATED_TAG
    import av

    with av.open(str(path)) as box:
        assert [s.type for s in box.streams].count("audio") == 1


def test_bad_mp4_leaves_nothing(tmp_path):
    with pytest.raises(ValueError, match="even"):
        write_mp4(tmp_path / "b.mp4", [np.zeros((31, 32, 3), np.uint8)], 25)
    assert list(tmp_path.iterdir()) == []
