"""The pieces of ingestion that need no face tracker: frames on the dataset's clock, audio alignment, shot
runs, the crop, and the lip-audio measure."""

from __future__ import annotations

import numpy as np
import pytest

from avatarlm.data import ingest_crop, video_decode
from avatarlm.data.ingest import face_runs
from avatarlm.data.ingest_quality import QualityConfig, lip_sync, rejection
from avatarlm.media import write_mp4


def numbered_video(path, n, fps):
    """Frame i is a flat grey of level 8 * i (h264 keeps flat frames within a level or two)."""
    frames = [np.full((48, 64, 3), 8 * i, np.uint8) for i in range(n)]
    write_mp4(path, frames, fps, audio=np.zeros(int(n / fps * 16_000), np.float32), crf=0)


@pytest.mark.parametrize(("source_fps", "expected"), [(25, list(range(30))), (50, list(range(0, 30, 2))),
                                                      (10, [i * 10 // 25 for i in range(75)])])  # fmt: skip
def test_frames_are_resampled_to_the_clock_by_time(tmp_path, source_fps, expected):
    numbered_video(tmp_path / "v.mp4", 30, source_fps)
    frames = list(video_decode.iter_frames(tmp_path / "v.mp4", 25.0))
    levels = [round(float(f.mean()) / 8) for f in frames]
    assert levels == expected


def test_frames_are_scaled_down_for_tracking(tmp_path):
    numbered_video(tmp_path / "v.mp4", 3, 25)
    (first, *_) = video_decode.iter_frames(tmp_path / "v.mp4", 25.0, max_side=32)
    assert first.shape == (24, 32, 3)


def test_audio_is_put_on_the_video_clock():
    audio = np.arange(1, 101, dtype=np.float32)
    late = video_decode.align_audio(audio, 0.001, 120)  # starts 16 samples after the first frame
    assert not late[:16].any() and late[16] == 1 and late[115] == 100 and not late[116:].any()
    early = video_decode.align_audio(audio, -0.001, 50)  # started 16 samples before it
    assert early[0] == 17 and len(early) == 50


def test_shot_cuts_by_histogram():
    a = video_decode.colour_histogram(np.zeros((64, 64, 3), np.uint8))
    b = video_decode.colour_histogram(np.full((64, 64, 3), 200, np.uint8))
    assert not video_decode.is_cut(None, a, 0.4) and not video_decode.is_cut(a, a, 0.4)
    assert video_decode.is_cut(a, b, 0.4)


def test_face_runs_stop_at_cuts_and_gaps_and_split_long_runs():
    found = np.array([1] * 10 + [0] + [1] * 25, bool)
    cuts = np.zeros(36, bool)
    cuts[20] = True
    assert face_runs(found, cuts, 5, 100) == [(0, 10), (11, 20), (20, 36)]
    assert face_runs(found, cuts, 10, 100) == [(0, 10), (20, 36)]
    assert face_runs(found, np.zeros(36, bool), 5, 10) == [(0, 10), (11, 19), (19, 28), (28, 36)]


def test_crop_reaching_outside_the_image_repeats_its_edges():
    image = np.zeros((100, 100, 3), np.uint8)
    image[:, :50] = 255
    out = ingest_crop.crop(image, np.array([-50.0, 0.0, 200.0]), 20)  # x -50 .. 150, y 0 .. 200
    assert out.shape == (20, 20, 3)
    assert (out[:, :9] == 255).all() and (out[:, 11:] == 0).all()  # white goes on left, black right
    assert np.allclose(ingest_crop.in_crop(np.array([[[0.0, 50.0]]]), np.array([[-50.0, 0.0, 100.0]])), 0.5)


def test_lip_sync_finds_a_lagged_match_and_ignores_a_still_mouth():
    rng = np.random.default_rng(0)
    loud = rng.normal(size=200)
    assert lip_sync(np.roll(loud, 2), loud) > 0.95  # the lips trail the sound by 2 frames
    assert lip_sync(np.roll(loud, 5), loud) < 0.3  # beyond the lags searched
    assert lip_sync(np.full(200, 0.1), loud) == 0.0


def test_rejection_names_the_first_failed_filter():
    good = {"face_px": 120.0, "sharpness": 300.0, "audio_db": -20.0, "lip_sync": 0.6}
    cfg = QualityConfig()
    assert rejection(good, cfg) is None
    assert "face too small" in str(rejection({**good, "face_px": 30.0}, cfg))
    assert "blurred" in str(rejection({**good, "sharpness": 2.0}, cfg))
    assert "silent" in str(rejection({**good, "audio_db": -70.0}, cfg))
    assert "lips do not follow" in str(rejection({**good, "lip_sync": 0.0}, cfg))
    assert rejection({**good, "lip_sync": 0.0}, QualityConfig(min_lip_sync=-2.0)) is None


def test_a_face_that_jumps_to_another_place_is_a_cut():
    from avatarlm.data.ingest import face_jumps

    mesh = np.zeros((6, 468, 3))
    mesh[:, 10, 1], mesh[:, 152, 1] = 0.0, 100.0  # forehead-chin length 100 px
    x = np.array([0.0, 5.0, 10.0, 200.0, 205.0, 210.0])  # the eyes drift, then leap 190 px (another face)
    mesh[:, 33, 0] = mesh[:, 263, 0] = x
    assert face_jumps(mesh).tolist() == [False, False, False, True, False, False]
    mesh[3] = np.nan  # no face in the frame of the leap: the next face is compared with the last one seen
    assert face_jumps(mesh).tolist() == [False, False, False, False, True, False]
