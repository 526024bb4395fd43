import numpy as np
import pytest
from apps_speech import lay_out

from avatarlm.apps.duplex import DuplexConfig, DuplexLoop
from avatarlm.apps.responder import ScriptedResponder
from avatarlm.apps.turns import TurnState
from avatarlm.apps.vad import SAMPLE_RATE

VIDEO_FRAME_S = 0.04  # 25 fps
AVATAR_LINE = "Let me tell you a long story about the weather, the mountains and the sea."


def quiet(seconds: float) -> np.ndarray:
    return np.random.default_rng(5).normal(0.0, 1e-3, round(seconds * SAMPLE_RATE)).astype(np.float32)


def run_ticks(loop: DuplexLoop, mic: np.ndarray):
    step = loop.tick_samples
    return [loop.tick(mic[at : at + step]) for at in range(0, len(mic) - step + 1, step)]


def test_barge_in_stops_the_avatar_within_one_video_frame(speech_clips):
    clips, _ = speech_clips
    loop = DuplexLoop()
    stream = loop.say(AVATAR_LINE)
    assert loop.state is TurnState.AVATAR_SPEAKING and stream.utterance.duration > 3.0
    user = lay_out([clips[0]], lead_s=1.0, gap_s=0.0, tail_s=1.5)  # the user cuts in after 1 s
    ticks = run_ticks(loop, user.audio)

    events = [e for t in ticks for e in t.events]
    assert [e.kind for e in events] == ["barge_in", "end_of_turn"]
    barge = events[0]
    assert barge.stop_avatar and abs(barge.time - user.spans[0][0]) < 0.15
    speaking = [t for t in ticks if t.avatar_speaking]
    assert speaking and all(t.avatar_speaking for t in ticks[: len(speaking)])  # spoke from the start ...
    stopped_at = speaking[-1].plays_at + loop.tick_samples / SAMPLE_RATE  # ... until it went quiet here
    assert barge.decided_at - VIDEO_FRAME_S <= stopped_at <= barge.decided_at + VIDEO_FRAME_S
    assert all(not t.avatar_audio.any() for t in ticks[len(speaking) :])
    played = np.concatenate([t.avatar_audio for t in speaking])
    assert np.array_equal(played, stream.utterance.audio[: len(played)])  # the reply's opening, in order
    assert stream.stopped and stream.position_s < stream.utterance.duration - 1.0
    assert loop.stream is None and loop.state is TurnState.LISTENING  # the user's turn ended too


def test_the_avatar_finishes_and_the_floor_returns_to_the_user():
    loop = DuplexLoop(responder=ScriptedResponder(["Good morning."]))
    assert loop.reply_to("hello") == "[offline] Good morning."
    assert loop.history == [("user", "hello"), ("assistant", "[offline] Good morning.")]
    stream = loop.stream
    assert stream is not None and loop.state is TurnState.AVATAR_SPEAKING
    ticks = run_ticks(loop, quiet(stream.utterance.duration + 0.2))
    assert sum(t.avatar_speaking for t in ticks) == stream.total_chunks
    assert not any(t.events for t in ticks) and loop.state is TurnState.LISTENING
    assert [t.plays_at_sample for t in ticks[:2]] == [320, 640]


def test_misuse_is_refused(speech_clips):
    loop = DuplexLoop(DuplexConfig())
    with pytest.raises(ValueError, match="320 microphone samples"):
        loop.tick(np.zeros(100, np.float32))
    with pytest.raises(ValueError, match="non-empty text"):
        loop.say(" ")
    assert loop.state is TurnState.LISTENING and loop.stream is None  # a failed say changes nothing
    run_ticks(loop, lay_out([speech_clips[0][0]], lead_s=0.3, gap_s=0.0, tail_s=0.0).audio)
    assert loop.state is TurnState.USER_SPEAKING
    with pytest.raises(RuntimeError, match="only while listening"):
        loop.reply_to("interrupting the user")
    assert loop.history == []
