"""Duplex metrics on constructed cases: the true dialogue meets both bounds, a still face sits at the floor
of every correlation and of the listening cues, and a face that babbles while the partner speaks fails the
closed-mouth bound."""

import numpy as np
import pytest

from avatarlm.data.face import FACE_STATE_FIELDS
from avatarlm.eval.duplex_metrics import (
    CLOSED_BOUND,
    MOUTH_CLOSED_BELOW,
    SELF_SPEECH_R_BOUND,
    closed_mouth_frames,
    masked_lagged_correlations,
    partner_side,
    yaw_toward_partner,
)
from avatarlm.eval.duplex_report import DialogueScorer, DuplexResult
from avatarlm.eval.eval_clips import MIN_TURN_SECONDS, dialogue_clips
from avatarlm.eval.pixel_probe import PixelProbe

YAW, GAZE_X = FACE_STATE_FIELDS.index("yaw"), FACE_STATE_FIELDS.index("gaze_x")


@pytest.fixture(scope="module")
def dialogue():
    return next(dialogue_clips(("en",), 1, 8.0, 128))


@pytest.fixture(scope="module")
def probe():
    return PixelProbe.from_pretrained("models/probe")


def test_dialogue_clips_are_unseen_reproducible_and_hold_both_turns(dialogue):
    truth = dialogue.clip.truth
    least = MIN_TURN_SECONDS * 25
    assert truth["speaking"].sum() >= least and truth["listening"].sum() >= least
    assert not (truth["speaking"] & truth["listening"]).any()
    assert dialogue.clip.meta["spec"]["kind"] == "dialogue" and dialogue.clip.meta["spec"]["split"] == "test"
    assert {v["name"] for v in dialogue.clip.meta["voices"]} == {"f5"}  # the held-out voice
    assert not any(dialogue.clip.texts) and np.abs(dialogue.clip.audio[1]).max() > 0.01
    again = next(dialogue_clips(("en",), 1, 8.0, 64))
    assert again.key == dialogue.key and again.frames.shape[1:] == (64, 64, 3)
    np.testing.assert_array_equal(again.clip.truth["speaking"], truth["speaking"])
    with pytest.raises(ValueError, match="at least 4 s"):
        next(dialogue_clips(("en",), 1, 3.0, 64))


def scored(probe, clip, versions: dict[str, np.ndarray]) -> DuplexResult:
    scorer = DialogueScorer(probe, clip, max_lag=3)
    for source, frames in versions.items():
        scorer.score(frames, source)
    return DuplexResult(clips=[scorer.scores])


def test_truth_meets_the_bounds_a_still_face_is_the_floor_and_a_babbler_fails(dialogue, probe):
    frames, truth = dialogue.frames, dialogue.clip.truth
    speaking, listening = truth["speaking"].astype(bool), truth["listening"].astype(bool)
    babbling = frames.copy()  # while only the partner speaks, show the avatar's own speaking frames
    babbling[listening] = frames[np.resize(np.flatnonzero(speaking), listening.sum())]
    result = scored(probe, dialogue, {
        "truth": frames, "floor": np.repeat(frames[:1], len(frames), axis=0), "babbler": babbling,
    })  # fmt: skip
    assert result.closed_fraction("truth") >= CLOSED_BOUND
    assert result.self_speech_curve("truth")[0] >= SELF_SPEECH_R_BOUND
    assert result.bounds_met("truth") == {k: True for k in result.bounds_met("truth")}
    (clip,) = result.clips
    # the listening cues read from the true frames are the true head's (the probe reads its pose)
    face, side = truth["face"][1:], partner_side(truth["face"][1:, GAZE_X], listening[1:])
    assert clip.yaw_toward_partner["truth"] == pytest.approx(
        yaw_toward_partner(face[:, YAW], listening[1:], side), abs=1.5
    )
    assert clip.listening_pitch["truth"] > 0.6
    # the still face: no correlation and no listening cue; its closed mouth meets the closed bound alone
    assert all(r == 0.0 for r in clip.self_speech_mouth["floor"].values())
    assert clip.yaw_toward_partner["floor"] == pytest.approx(0.0, abs=1e-3)
    assert clip.listening_pitch["floor"] == 0.0
    assert result.bounds_met("floor")["mouth r in self-speech"] is False
    assert result.closed_fraction("babbler") < CLOSED_BOUND - 0.2  # speech closes the lips now and then
    assert result.bounds_met("babbler")["mouth closed in partner-only frames"] is False


def test_closed_mouth_frames_counts_only_partner_only_frames():
    mouth = np.array([0.0, 0.5, 0.1, 0.9, MOUTH_CLOSED_BELOW, 0.05])
    partner_only = np.array([1, 1, 1, 0, 1, 0])
    assert closed_mouth_frames(mouth, partner_only) == (2, 4)  # 0.0 and 0.1 closed; 0.5 and 0.2 open
    assert closed_mouth_frames(mouth, np.zeros(6)) == (0, 0)
    with pytest.raises(ValueError, match="shape"):
        closed_mouth_frames(mouth, partner_only[:5])


def test_masked_correlation_reads_only_the_masked_frames_and_finds_the_offset():
    rng = np.random.default_rng(0)
    truth = rng.standard_normal(200)
    mask = np.zeros(200, bool)
    mask[50:150] = True
    probe = np.roll(truth, 2)  # the probe trails the truth by 2 frames
    probe[~np.roll(mask, 2)] = rng.standard_normal(100) * 10  # noise outside the (shifted) masked frames
    curve = masked_lagged_correlations(probe, truth, mask, 3)
    assert curve[2] == pytest.approx(1.0) and max(abs(curve[k]) for k in curve if k != 2) < 0.4
    assert masked_lagged_correlations(np.ones(200), truth, mask, 0) == {0: 0.0}  # a still trace
    with pytest.raises(ValueError, match="at least 3 masked frames"):
        masked_lagged_correlations(probe, truth, np.eye(1, 200, 0, dtype=bool)[0], 0)


def test_yaw_toward_the_partner_is_signed_by_the_partner_side():
    listening = np.array([0, 0, 1, 1, 1, 0], bool)
    gaze = np.array([0.1, -0.1, -0.5, -0.6, -0.4, 0.0])
    assert partner_side(gaze, listening) == -1.0 and partner_side(-gaze, listening) == 1.0
    yaw = np.array([1.0, -1.0, -6.0, -6.0, -6.0, 0.0])  # turned 6 deg to the partner's side while listening
    assert yaw_toward_partner(yaw, listening, -1.0) == pytest.approx(6.0)
    assert yaw_toward_partner(-yaw, listening, -1.0) == pytest.approx(-6.0)  # turned away
    assert yaw_toward_partner(np.zeros(6), listening, 1.0) == 0.0
    with pytest.raises(ValueError, match="listening"):
        partner_side(gaze, np.zeros(6, bool))
