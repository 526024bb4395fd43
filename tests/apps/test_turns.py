import numpy as np
import pytest
from apps_speech import LevelModel, envelope_segments, scripted

from avatarlm.apps.turns import TurnConfig, TurnDetector, TurnState
from avatarlm.apps.vad import SAMPLE_RATE, WINDOW, WINDOW_S, StreamingVAD, VADConfig, events_of

SPEECH, QUIET = 0.9, 0.05  # scripted speech probabilities


def scripted_detector(eot: float = 0.6) -> TurnDetector:
    cfg = TurnConfig(end_of_turn_silence=eot)  # VAD defaults: 4 windows to start and to end speech
    return TurnDetector(cfg, StreamingVAD(cfg.vad, model=LevelModel()))


def windows(*runs: tuple[float, int]) -> np.ndarray:
    return scripted([p for p, n in runs for _ in range(n)])


@pytest.mark.parametrize("eot", [0.0, -1.0, float("nan"), float("inf"), 0.05])
def test_config_rejects_bad_end_of_turn_silence(eot):
    with pytest.raises(ValueError, match="end_of_turn_silence must be"):
        TurnConfig(end_of_turn_silence=eot, vad=VADConfig(min_silence_s=0.1))


def test_end_of_turn_after_the_configured_silence():
    turns = scripted_detector(0.6)
    events = turns.push(windows((QUIET, 5), (SPEECH, 10), (QUIET, 17)))
    assert [e.kind for e in events] == ["user_started"] and turns.state is TurnState.USER_SPEAKING
    assert (events[0].sample, events[0].decided_sample) == (5 * WINDOW, 9 * WINDOW)
    assert turns.push(windows((QUIET, 1))) == []  # 18 windows of silence: 0.576 s < 0.6 s
    events = turns.push(windows((QUIET, 1)))  # 19 windows: 0.608 s, decided at the end of that window
    assert [e.kind for e in events] == ["end_of_turn"] and turns.state is TurnState.LISTENING
    end = events[0]
    assert end.sample == 15 * WINDOW and end.turn_start_sample == 5 * WINDOW
    assert 0.6 <= end.decided_at - end.time < 0.6 + WINDOW_S
    assert turns.push(windows((QUIET, 40))) == []  # silence goes on: no second end


def test_a_pause_shorter_than_the_end_of_turn_continues_the_turn():
    turns = scripted_detector(0.6)
    audio = windows((QUIET, 3), (SPEECH, 8), (QUIET, 12), (SPEECH, 8), (QUIET, 25))  # a 0.38 s pause
    events = turns.push(audio)
    assert [e.kind for e in events] == ["user_started", "end_of_turn"]
    assert events[1].turn_start_sample == 3 * WINDOW and events[1].sample == (3 + 8 + 12 + 8) * WINDOW


def test_barge_in_moves_the_avatar_turn_to_the_user_at_the_onset_decision():
    turns = scripted_detector(0.6)
    turns.avatar_started()
    assert turns.state is TurnState.AVATAR_SPEAKING
    events = turns.push(windows((QUIET, 10), (SPEECH, 3)))
    assert events == [] and turns.state is TurnState.AVATAR_SPEAKING  # 3 windows: not yet speech
    events = turns.push(windows((SPEECH, 1)))
    assert [(e.kind, e.stop_avatar) for e in events] == [("barge_in", True)]
    assert events[0].sample == 10 * WINDOW and events[0].decided_sample == 14 * WINDOW
    assert turns.state is TurnState.USER_SPEAKING
    turns.avatar_finished()  # the avatar's player reporting its stop changes nothing now
    assert turns.state is TurnState.USER_SPEAKING
    events = turns.push(windows((SPEECH, 5), (QUIET, 30)))
    assert [e.kind for e in events] == ["end_of_turn"] and turns.state is TurnState.LISTENING


def test_avatar_turn_rules():
    turns = scripted_detector()
    turns.avatar_finished()  # no-op while listening
    assert turns.state is TurnState.LISTENING
    turns.avatar_started()
    with pytest.raises(RuntimeError, match="only while listening"):
        turns.avatar_started()
    turns.avatar_finished()
    assert turns.state is TurnState.LISTENING
    turns.push(windows((SPEECH, 6)))
    assert turns.state is TurnState.USER_SPEAKING
    with pytest.raises(RuntimeError, match="not in USER_SPEAKING"):
        turns.avatar_started()
    turns.reset()
    assert turns.state is TurnState.LISTENING and turns.time == 0.0


@pytest.mark.parametrize("eot", [0.3, 0.6, 1.0])
def test_turns_in_real_speech(conversation, eot):
    cfg = TurnConfig(end_of_turn_silence=eot)
    vad = StreamingVAD(cfg.vad)
    vad_events = events_of(vad.push(conversation.audio))
    # a turn ends where a silence the VAD found (offset -> the next onset's decision, or the last full
    # window) holds a window that ends eot or more after the offset
    last_window_end = len(conversation.audio) // WINDOW * WINDOW
    resumes = [e.decided_sample - WINDOW for e in vad_events if e.kind == "onset"][1:] + [last_window_end]
    offsets = [e.sample for e in vad_events if e.kind == "offset"]
    eot_samples = round(eot * SAMPLE_RATE)
    needed = [-(-(off + eot_samples) // WINDOW) * WINDOW for off in offsets]
    expected = [off / SAMPLE_RATE for off, n, r in zip(offsets, needed, resumes, strict=True) if n <= r]

    turns = TurnDetector(cfg)
    events = []
    for at in range(0, len(conversation.audio), 320):  # 20 ms microphone chunks
        events += turns.push(conversation.audio[at : at + 320])
    ends = [e for e in events if e.kind == "end_of_turn"]
    assert len(ends) >= len(conversation.spans)  # at least the pauses between the clips end turns
    assert [e.time for e in ends] == pytest.approx(expected)
    for end in ends:
        assert eot <= end.decided_at - end.time < eot + WINDOW_S
    if eot >= 0.6:  # word gaps inside a clip are shorter: one turn per clip, ended in the pause after it
        assert len(ends) == len(conversation.spans)
        envelope = envelope_segments(conversation.audio)
        for end, (clip_start, clip_end) in zip(ends, conversation.spans, strict=True):
            speech_end = max(b for a, b in envelope if a < clip_end and b > clip_start)
            assert abs(end.time - speech_end) <= 0.15, (end.time, speech_end)
    kinds = [e.kind for e in events]
    assert kinds == ["user_started", "end_of_turn"] * len(ends)
    # the same events whatever the microphone's chunking
    turns.reset()
    assert turns.push(conversation.audio) == events
