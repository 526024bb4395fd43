"""The live session on a hand-made clock: frames on the video clock, the voice with its frame, the
microphone as the partner (duplex) or the avatar's own voice (one stream), resets and refusals."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest

from avatarlm.pipeline.generate import speak_text
from avatarlm.serve import protocol as P
from avatarlm.serve.live_session import MAX_MIC_BACKLOG_SECONDS, LiveSession

FPS = 25
SPF = 16000 // FPS


def split(out):
    """Messages of a tick -> (frames {index: image}, voices {index: float samples}, notices)."""
    frames, voices, notices = {}, {}, []
    for item in out:
        if isinstance(item, dict):
            notices.append(item)
            continue
        kind, index, seconds, payload = P.unpack(item)
        assert seconds == pytest.approx(index / FPS)
        if kind == P.FRAME:
            frames[index] = cv2.imdecode(np.frombuffer(payload, np.uint8), cv2.IMREAD_COLOR)
        else:
            voices[index] = np.frombuffer(payload, "<i2").astype(np.float32) / 32767
    return frames, voices, notices


def run(live, until, step=0.1, start=0.0):
    frames, voices, notices = {}, {}, []
    t = start
    while t < until - 1e-9:
        t = min(until, t + step)
        f, v, n = split(live.tick(t))
        frames.update(f), voices.update(v), notices.extend(n)
    return frames, voices, notices


def test_frames_follow_the_clock_without_input(mono_pipe):
    live = LiveSession(mono_pipe)
    frames, voices, _ = run(live, 2.0)
    lookahead = 50 - len(frames) + 1  # frames the audio look-ahead holds back
    assert 0 <= lookahead <= 8
    assert sorted(frames) == list(range(len(frames)))  # in order, none missing: the avatar idles on
    assert set(voices) == set(frames) and all(not v.any() for v in voices.values())
    assert frames[0].shape == (64, 64, 3)
    more, _, _ = run(live, 4.0, start=2.0)
    assert sorted(more) == list(range(len(frames), len(frames) + 50))


def test_the_voice_leaves_with_its_frame(mono_pipe):
    live = LiveSession(mono_pipe)
    frames, voices, _ = run(live, 0.4)
    live.handle(P.Say("Hello there.", "en"))
    later_frames, later_voices, _ = run(live, 4.0, start=0.4)
    frames.update(later_frames), voices.update(later_voices)
    assert set(voices) == set(frames)
    speech = speak_text("Hello there.", "en")
    sent = np.concatenate([voices[i] for i in sorted(voices)])
    assert min(voices) == 0  # frame 0 carries samples 0..SPF
    start = int(0.4 * 16000)  # the speech starts with the first tick after `say`
    assert np.abs(sent[start : start + len(speech)] - speech).max() < 2e-4  # PCM16 rounding
    assert not sent[:start].any()


def test_stop_silences_the_avatar(mono_pipe):
    live = LiveSession(mono_pipe)
    live.handle(P.Say("This is a rather long sentence that takes a few seconds to say.", "en"))
    run(live, 1.0)
    live.handle(P.Stop())
    _, voices, _ = run(live, 3.0, start=1.0)
    late = [voices[i] for i in sorted(voices) if i >= 26]  # audio pushed after the stop
    assert late and not np.concatenate(late).any()


@pytest.mark.parametrize("duplex", [False, True])
def test_the_microphone_reaches_the_model_but_is_not_echoed(mono_pipe, duplex_pipe, duplex):
    pipe = duplex_pipe if duplex else mono_pipe
    quiet, hearing = LiveSession(pipe), LiveSession(pipe)
    tone = (np.sin(np.arange(32000) * 2 * np.pi * 220 / 16000) * 12000).astype("<i2")
    assert hearing.ready_message()["microphone"] == ("partner" if duplex else "self")
    a, _, _ = run(quiet, 0.5)
    for chunk in np.split(tone, 4):
        hearing.hear(chunk.tobytes())
        run(hearing, 0.0)  # no time passes: the audio waits for the clock
    b, voices, _ = run(hearing, 0.5)
    a2, _, _ = run(quiet, 1.5, start=0.5)
    b2, voices2, _ = run(hearing, 1.5, start=0.5)
    assert sorted(a) == sorted(b) and sorted(a2) == sorted(b2)
    assert any(np.abs(a2[i].astype(int) - b2[i]).max() > 0 for i in a2)  # the model heard it
    assert not any(
        v.any() for v in [*voices.values(), *voices2.values()]
    )  # the user's voice is not sent back


def test_microphone_rates_and_backlog(mono_pipe):
    live = LiveSession(mono_pipe)
    live.handle(P.AudioFormat(48000))
    live.hear(np.zeros(24000, "<i2").tobytes())  # 0.5 s at 48 kHz
    assert abs(live._mic.size - 8000) < 64
    for _ in range(6):  # 3 s more, at once: faster than real time
        live.hear(np.zeros(24000, "<i2").tobytes())
    notices = [m for m in live.tick(0.0) if isinstance(m, dict)]
    assert [m["type"] for m in notices] == ["warning"] and "piling up" in notices[0]["message"]
    assert live._mic.size <= MAX_MIC_BACKLOG_SECONDS * 16000


def test_reset_to_another_face_and_to_an_image(mono_pipe):
    from PIL import Image

    live = LiveSession(mono_pipe)
    first, _, _ = run(live, 0.2)
    live.handle(P.Reset(identity=5))
    second, _, _ = run(live, 0.2)
    assert 0 in second and np.abs(first[0].astype(int) - second[0]).mean() > 1
    buf = io.BytesIO()
    noise = np.random.default_rng(0).integers(0, 255, (90, 120, 3), dtype=np.uint8)
    Image.fromarray(noise).save(buf, format="PNG")
    live.handle(P.Reset(image=buf.getvalue()))
    _, _, notices = run(live, 0.2)
    assert any(m["type"] == "warning" and "far from" in m["message"] for m in notices)


def test_refused_commands(mono_pipe):
    live = LiveSession(mono_pipe)
    with pytest.raises(P.ProtocolError, match="unknown language"):
        live.handle(P.Say("hi", "xx"))
    with pytest.raises(P.ProtocolError, match="empty"):
        live.handle(P.Say("   ", "en"))
    with pytest.raises(P.ProtocolError, match="world models"):
        live.handle(P.Action(1))
    with pytest.raises(P.ProtocolError, match="cannot be read"):
        live.handle(P.Reset(image=b"not an image"))
    frames, _, _ = run(live, 0.5)  # the session goes on
    assert 0 in frames


def test_the_clock_waits_for_a_slow_generator(mono_pipe):
    live = LiveSession(mono_pipe, max_lag=0.2)
    frames, _, _ = split(live.tick(3.0))  # 3 s pass at once, as if generation had stalled
    assert len(frames) <= (0.2 + (2 + 1) / FPS) * FPS + 1  # not 3 s of backlog
    assert live.stats.slipped > 2.5
    more, _, _ = run(live, 4.0, start=3.0)  # then it runs on the clock again, from where it waited
    assert sorted(more) == list(range(len(frames), len(frames) + 25))


def test_conversation_mode_answers_a_turn_and_yields_to_barge_in(duplex_pipe):
    from avatarlm.apps.responder import ScriptedResponder
    from avatarlm.serve.live_conversation import LiveConversation

    live = LiveSession(
        duplex_pipe,
        conversation=lambda lang: LiveConversation(lang, ScriptedResponder(["Nice to meet you."])),
    )
    live.handle(P.Conversation(True, "en"))
    with pytest.raises(P.ProtocolError, match="unknown language"):
        live.handle(P.Conversation(True, "xx"))
    live.handle(P.Conversation(True, "en"))
    user = speak_text("Hello, how are you today?", "en")
    pcm = (np.concatenate([user, np.zeros(24000, np.float32)]) * 32767).astype("<i2")
    frames, voices, notices = {}, {}, []
    t = 0.0
    for chunk in np.array_split(pcm, len(pcm) // 1600):  # 0.1 s messages, as a browser sends them
        live.hear(chunk.tobytes())
        t += len(chunk) / 16000
        f, v, n = split(live.tick(t))
        frames.update(f), voices.update(v), notices.extend(n)
    turns = [n for n in notices if n["type"] == "turn"]
    assert len(turns) == 1 and turns[0]["answer"] == "[offline] Nice to meet you."
    assert turns[0]["heard"]  # the recogniser heard something
    answering = run(live, t + 0.2, start=t)[1]  # the answer (1.5 s of speech) began at the end of the turn
    assert any(v.any() for v in answering.values())  # the avatar answers aloud
    live.hear((speak_text("Wait, stop.", "en") * 32767).astype("<i2")[:8000].tobytes())  # the user cuts in
    _, after, notices = run(live, t + 0.8, start=t + 0.2)  # (its end of turn comes 0.6 s after it ends)
    assert [n["type"] for n in notices] == ["barge_in"]
    cut = int(notices[0]["seconds"] * FPS) + 3  # a frame's chunk and the frames in flight
    assert all(not v.any() for i, v in after.items() if i > cut)


def test_voice_audio_is_lip_synced_and_sent_back(mono_pipe):
    live = LiveSession(mono_pipe)
    live.handle(P.AudioFormat(16000, "voice"))  # e.g. a voice agent's own speech
    tone = (np.sin(np.arange(16000) * 2 * np.pi * 200 / 16000) * 12000).astype("<i2")
    for chunk in np.split(tone, 4):
        live.hear(chunk.tobytes())
    _, voices, _ = run(live, 2.0)
    sent = np.concatenate([voices[i] for i in sorted(voices)])
    assert np.abs(sent[:16000] - tone / 32768).max() < 1e-4 and not sent[16000:].any()
    live.handle(P.Conversation(True, "en"))
    with pytest.raises(P.ProtocolError, match="conversation mode"):
        live.hear(tone[:320].tobytes())
