import numpy as np

from avatarlm.data.conversation import Conversation, Placed, dialogue, frame_energy, monologue, nod_times
from avatarlm.data.speech.utterance import SAMPLE_RATE, Phoneme, Utterance


def _tone_speaker(seconds: float, level: float = 0.3):
    def say(text: str) -> Utterance:
        n = int(seconds * SAMPLE_RATE)
        audio = (level * np.sin(np.arange(n) * 0.1)).astype(np.float32)
        return Utterance(audio, [Phoneme("a", 0.0, seconds)], text, "en", "test", "tone")

    return say


def test_monologue_fills_duration_with_pauses():
    conv = monologue(np.random.default_rng(0), _tone_speaker(1.5), lambda: "hello", 10.0)
    starts = [p.start for p in conv.streams[0]]
    assert len(starts) >= 4 and conv.streams[1] == []
    gaps = [b.start - a.end for a, b in zip(conv.streams[0], conv.streams[0][1:], strict=False)]
    assert all(0.2 <= g <= 1.2 for g in gaps)
    assert conv.duration >= 10.0 and conv.streams[0][-1].end <= conv.duration
    audio = conv.audio(0)
    assert len(audio) == round(conv.duration * SAMPLE_RATE)
    assert np.all(conv.audio(1) == 0)  # a monologue's partner stream is silence, not missing


def test_dialogue_alternates_and_backchannels():
    seen_overlap = seen_backchannel = False
    for seed in range(12):
        conv = dialogue(
            np.random.default_rng(seed),
            (_tone_speaker(1.4), _tone_speaker(1.1)),
            lambda: "x",
            lambda: "mm-hmm",
            20.0,
        )
        a, b = conv.speaking(0, 500, 25.0), conv.speaking(1, 500, 25.0)
        assert a.sum() > 25 and b.sum() > 25  # both talk
        seen_overlap |= bool(np.any(a & b))
        seen_backchannel |= any(p.backchannel for s in conv.streams for p in s)
    assert seen_overlap and seen_backchannel


def test_speaking_flags_and_energy_follow_audio():
    utt = _tone_speaker(1.0)("x")
    conv = Conversation(3.0, ([Placed(1.0, utt)], []))
    speaking = conv.speaking(0, 75, 25.0)
    assert not speaking[:25].any() and speaking[25:50].all() and not speaking[50:].any()
    energy = frame_energy(conv.audio(0), 75, 25.0)
    assert energy[30:45].min() > 0.5 and energy[:20].max() == 0.0
    assert nod_times(conv, 0, np.random.default_rng(0)) == []
