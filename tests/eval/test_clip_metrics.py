"""Report metrics on constructed cases: the truth scores at the ceiling, a still frame at the floor, a clip
shifted by k frames reports offset k, and the Fréchet distance grows with blur and noise."""

import numpy as np
import pytest

from avatarlm.data.face import FACE_STATE_FIELDS
from avatarlm.eval.clip_metrics import (
    audio_envelope,
    degrade,
    frechet_distance,
    pose_error,
    span_accuracy,
    static_distance,
    static_mask,
)
from avatarlm.eval.eval_clips import EXPRESSION_INSTRUCTIONS, evaluation_clips
from avatarlm.eval.lipsync import lip_sync
from avatarlm.eval.pixel_probe import PixelProbe
from avatarlm.eval.report import frame_features

MOUTH = FACE_STATE_FIELDS.index("mouth_open")


@pytest.fixture(scope="module")
def clip():
    return next(evaluation_clips(("en",), 1, 5.0, 128))


@pytest.fixture(scope="module")
def probe():
    return PixelProbe.from_pretrained("models/probe")


def test_evaluation_clips_are_unseen_reproducible_and_instructed(clip):
    again = next(evaluation_clips(("en",), 1, 5.0, 128))
    np.testing.assert_array_equal(again.frames, clip.frames)
    assert clip.clip.meta["spec"]["split"] == "test" and clip.clip.meta["voices"][0]["name"] == "f5"
    texts = {t for t in clip.clip.texts if t}
    assert len(texts) == 1 and texts <= set(EXPRESSION_INSTRUCTIONS)
    assert next(evaluation_clips(("sw",), 1, 3.0, 64)).held_out_language
    with pytest.raises(ValueError, match="at least 2 s"):
        next(evaluation_clips(("en",), 1, 1.0, 64))


def test_probed_lip_sync_is_high_on_truth_zero_when_still_and_finds_a_shift(clip, probe):
    truth = clip.clip.truth["face"][:, MOUTH].astype(float)
    mouth = probe.read(clip.frames)[0][:, 0].astype(float)
    on_truth = lip_sync(mouth, truth)
    assert on_truth.corr_at_0 > 0.85 and on_truth.best_lag == 0
    still = probe.read(np.repeat(clip.frames[:1], len(truth), axis=0))[0][:, 0].astype(float)
    assert lip_sync(still, truth).corr_at_best == 0.0
    k = 2
    late = np.concatenate([np.repeat(clip.frames[:1], k, axis=0), clip.frames[:-k]])  # video k frames late
    shifted = lip_sync(probe.read(late)[0][:, 0].astype(float), truth)
    assert shifted.best_lag == k and shifted.corr_at_best > 0.8
    envelope = audio_envelope(clip.clip.audio[0], len(truth), 25.0)
    assert lip_sync(mouth, envelope).corr_at_best > 0.4  # a talking mouth follows the loudness


def test_pose_span_and_static_metrics():
    truth = np.array([[10.0, 0.0, -5.0], [20.0, 5.0, 0.0]])
    np.testing.assert_allclose(pose_error(truth + [1.0, -2.0, 0.0], truth), [1.0, 2.0, 0.0])
    hits = span_accuracy(np.array([1, 2, 0, 1]), np.array([1, 1, 0, 1]), np.array([1, 1, 0, 1]))
    assert hits == (2, 3)
    frames = np.full((4, 8, 8, 3), 100, np.uint8)
    frames[:, :4] = np.arange(4)[:, None, None, None] * 50  # top half changes, bottom half is static
    mask = static_mask(frames)
    assert mask[4:].all() and not mask[:4].any()
    drifted = frames.copy()
    drifted[:, 4:] += np.arange(4, dtype=np.uint8)[:, None, None, None] * 10
    np.testing.assert_allclose(static_distance(drifted, frames[0], mask), [0, 10, 20, 30])
    with pytest.raises(ValueError, match=r"\(N, 3\) arrays"):
        pose_error(truth[:, :2], truth[:, :2])


def test_frechet_distance_is_zero_on_itself_and_grows_with_blur_and_noise(clip, probe):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((400, 3))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(a + [2.0, 0.0, 0.0], a) == pytest.approx(4.0, rel=1e-3)

    def features(frames):
        return frame_features(probe.embed(frames), frames)

    real = features(clip.frames)
    mu, sd = real.mean(0), real.std(0) + 1e-6

    def distance(frames):
        return frechet_distance((features(frames) - mu) / sd, (real - mu) / sd)

    blur = [distance(degrade(clip.frames, "blur", s)) for s in (1.0, 2.0)]
    noise = [distance(degrade(clip.frames, "noise", s)) for s in (4.0, 16.0)]
    assert distance(clip.frames) == pytest.approx(0.0, abs=1e-3)
    assert 0.0 < blur[0] < blur[1] and 0.0 < noise[0] < noise[1]
    with pytest.raises(ValueError, match="blur"):
        degrade(clip.frames, "fog", 1.0)
