import numpy as np
import pytest

from avatarlm.trainer.ar_config import ARTrainConfig
from avatarlm.trainer.ar_data import ARClip
from avatarlm.trainer.pose_loss import pose_loss_directions, pose_patterns


def planted_clips(patterns: np.ndarray, n_clips: int = 6, frames: int = 80, seed: int = 0) -> list[ARClip]:
    """Clips whose latents move by ``patterns`` (3, T, C) per degree of yaw / pitch / roll, plus noise and
    a drift of their own."""
    rng = np.random.default_rng(seed)
    clips = []
    for i in range(n_clips):
        pose = np.cumsum(rng.normal(0, [2.0, 1.0, 0.5], size=(frames, 3)), axis=0)
        other = np.cumsum(rng.normal(0, 1.0, size=(frames, *patterns.shape[1:])), axis=0)
        latents = np.einsum("fa,atc->ftc", pose, patterns) + 0.3 * other
        clips.append(
            ARClip(
                key=f"c{i}",
                latents=latents.astype(np.float32),
                audio=np.zeros((2, 0), np.float32),
                pose=pose.astype(np.float32),
                keypoints=np.zeros((frames, 0, 2), np.float32),
                texts=[None] * frames,
            )
        )
    return clips


def test_pose_patterns_recover_the_latent_change_per_degree():
    truth = np.random.default_rng(1).normal(size=(3, 4, 5))
    found = pose_patterns(planted_clips(truth))
    assert found.shape == (3, 20)
    for a in range(3):
        assert np.corrcoef(found[a], truth[a].ravel())[0, 1] > 0.95


def test_directions_are_orthonormal_span_the_patterns_and_skip_unweighted_angles():
    truth = np.random.default_rng(2).normal(size=(3, 4, 5))
    clips = planted_clips(truth)
    d = pose_loss_directions(clips, (4.0, 0.0, 9.0)).numpy().reshape(2, 20).astype(np.float64)
    np.testing.assert_allclose(d @ d.T, np.diag([4.0, 9.0]), atol=1e-4)  # yaw and roll, scaled by sqrt(w)
    yaw = pose_patterns(clips)[0]
    assert abs(d[0] @ yaw) / (2.0 * np.linalg.norm(yaw)) > 0.999  # the first is the yaw pattern itself
    every = pose_loss_directions(clips, (1.0, 1.0, 1.0)).numpy().reshape(3, 20).astype(np.float64)
    patterns = pose_patterns(clips)
    inside = patterns @ every.T @ every  # the patterns projected on the span: unchanged
    np.testing.assert_allclose(inside, patterns, atol=1e-4 * np.abs(patterns).max())


def test_bad_weights_and_clips_without_turns_are_refused():
    clips = planted_clips(np.ones((3, 2, 2)))
    for bad in ((0.0, 0.0, 0.0), (1.0, -1.0, 0.0), (1.0, 1.0)):
        with pytest.raises(ValueError, match="weights must be 3 values"):
            pose_loss_directions(clips, bad)
    still = [ARClip(c.key, c.latents, c.audio, np.zeros_like(c.pose), c.keypoints, c.texts) for c in clips]
    with pytest.raises(ValueError, match="need clips where the head turns"):
        pose_patterns(still)
    with pytest.raises(ValueError, match="pose_loss_weights must be 3 values"):
        ARTrainConfig(pose_loss_weights=(1.0, -1.0, 0.0))
