"""`avatarlm chat`: a file-mode conversation — the avatar listens while the user talks, answers each turn
after the end-of-turn silence, and the mp4 carries both voices."""

import av
import numpy as np
import pytest
import soundfile as sf

from ar_helpers import random_pipeline_folder
from avatarlm.apps.asr import PocketSphinxTranscriber
from avatarlm.apps.chat import converse
from avatarlm.apps.responder import ScriptedResponder
from avatarlm.cli import main
from avatarlm.data.speech.voices import Voice, speak
from avatarlm.pipeline.folder import load_pipeline

SR = 16000


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("chat")
    return random_pipeline_folder(root), random_pipeline_folder(root, audio_streams=2)


@pytest.fixture(scope="module")
def user():
    """Two turns by the Piper voice, each followed by 2.5 s of quiet."""
    voice = Voice("piper", "en", "en_US-joe-medium")
    noise = np.random.default_rng(0).normal(0, 1e-3, 20 * SR).astype(np.float32)
    parts = [np.zeros(int(0.5 * SR), np.float32)]
    for line in ("hello how are you today", "tell me a story"):
        parts += [speak(voice, line).audio.astype(np.float32), np.zeros(int(2.5 * SR), np.float32)]
    audio = np.concatenate(parts)
    return audio + noise[: len(audio)]


def test_a_file_conversation_answers_each_turn_and_listens_while_the_user_talks(folders, user, tmp_path):
    out = tmp_path / "talk.mp4"
    responder = ScriptedResponder(["Nice to meet you.", "Once upon a time."])
    talk = converse(
        load_pipeline(folders[1]), user, out, responder, PocketSphinxTranscriber(), identity_seed=2
    )
    assert [t.answer for t in talk.turns] == ["[offline] Nice to meet you.", "[offline] Once upon a time."]
    assert "hello" in talk.turns[0].heard and talk.barge_ins == 0
    for t in talk.turns:
        assert 0.55 <= t.decided - t.end <= 0.7  # the end-of-turn wait
        assert 0 < t.first_frame_ms < 1000
    with av.open(str(out)) as box:
        assert box.streams.audio[0].channels == 2
        frames = sum(1 for _ in box.decode(video=0))
        box.seek(0)
        sound = np.concatenate([f.to_ndarray().reshape(2, -1) for f in box.decode(audio=0)], axis=1)
    assert frames == talk.frames and talk.seconds > len(user) / SR  # ran on until the last answer ended
    rate = len(sound[0]) / talk.seconds  # the AAC track's own rate
    avatar = np.abs(sound[0])
    for t in talk.turns:  # quiet while the user speaks, talking right after the turn ends
        assert avatar[int((t.start + 0.2) * rate) : int(t.end * rate)].max() < 0.02
        assert avatar[int(t.decided * rate) : int((t.decided + 0.8) * rate)].max() > 0.1


def test_chat_command_and_its_errors(folders, user, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("AVATARLM_CHAT_URL", raising=False)
    wav = tmp_path / "user.wav"
    sf.write(wav, user, SR)
    out = tmp_path / "c.mp4"
    args = [
        "chat",
        "--model",
        str(folders[0]),
        "--in",
        str(wav),
        "--out",
        str(out),
        "--script",
        "Hi there|Bye",
    ]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "2 turns" in printed and "[offline] Hi there" in printed
    assert out.exists()
    assert (
        main(
            [
                "chat",
                "--model",
                str(folders[0]),
                "--in",
                str(tmp_path / "no.wav"),
                "--out",
                str(tmp_path / "x.mp4"),
            ]
        )
        == 2
    )
    assert "no such audio file" in capsys.readouterr().err and not (tmp_path / "x.mp4").exists()
    assert (
        main(
            [
                "chat",
                "--model",
                str(folders[0]),
                "--in",
                str(wav),
                "--out",
                str(tmp_path / "x.mp4"),
                "--lang",
                "xx",
            ]
        )
        == 2
    )
    assert "xx" in capsys.readouterr().err
