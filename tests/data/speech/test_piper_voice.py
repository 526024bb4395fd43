import time

import numpy as np
import pytest

from avatarlm.data.speech import piper_voice
from avatarlm.data.speech.align import HOP, frame_energy_db
from avatarlm.data.speech.espeak import PAUSE
from avatarlm.data.speech.utterance import SAMPLE_RATE

TEXT = "Hello there, my name is Joe, and I will be your guide today."
VOWELS = set("aeiouæɑɒɔəɚɛɜɝɪʊʌ")


@pytest.fixture(scope="module")
def utt():
    return piper_voice.synthesize_piper(TEXT, noise_scale=0.0, noise_w_scale=0.0)  # as the data world uses it


def test_model_files_come_from_the_installed_package():
    model, config = piper_voice.piper_model_paths()
    assert model.name == "en_US-joe-medium.onnx" and model.stat().st_size > 10_000_000
    assert config.is_file()


def test_utterance_is_16k_float_audio_with_engine_fields(utt):
    assert (utt.engine, utt.language, utt.voice) == ("piper", "en", "en_US-joe-medium")
    assert utt.sample_rate == SAMPLE_RATE and utt.audio.dtype == np.float32
    assert np.abs(utt.audio).max() <= 1.0 and np.abs(utt.audio).max() > 0.3
    assert 2.0 < utt.duration < 6.0


def test_phonemes_cover_the_audio_in_order(utt):
    starts = np.array([p.start for p in utt.phonemes])
    ends = np.array([p.end for p in utt.phonemes])
    assert starts[0] == 0.0 and ends[-1] == pytest.approx(utt.duration)
    assert np.all(np.diff(starts) >= 0) and np.allclose(starts[1:], ends[:-1])
    assert sum(1 for p in utt.phonemes if VOWELS & set(p.symbol)) >= 12


def test_vowels_are_louder_than_pauses(utt):
    energy = frame_energy_db(utt.audio)

    def frame(t):
        return min(int(t * SAMPLE_RATE / HOP), len(energy) - 1)

    def mean_energy(phonemes):
        return float(np.mean(np.concatenate([energy[frame(p.start) : frame(p.end) + 1] for p in phonemes])))

    vowels = [p for p in utt.phonemes if VOWELS & set(p.symbol)]
    pauses = [p for p in utt.phonemes if p.symbol == PAUSE]
    assert pauses, "expected pauses at the edges and the commas"
    assert mean_energy(vowels) > mean_energy(pauses) + 30.0
    # Vowel midpoints sit in loud audio, not in a gap (shifting the timings by 100 ms drops this to ~0.77).
    vowel_db = np.array([energy[frame((p.start + p.end) / 2)] for p in vowels])
    assert np.mean(vowel_db > energy.max() - 30.0) > 0.9


def test_length_scale_changes_speaking_rate():
    # no noise: the random durations alone moved the ratio out of bounds now and then
    quiet = {"noise_scale": 0.0, "noise_w_scale": 0.0}
    slow = piper_voice.piper_audio("Good morning everyone.", length_scale=1.4, **quiet)
    fast = piper_voice.piper_audio("Good morning everyone.", length_scale=0.8, **quiet)
    assert len(slow) / len(fast) == pytest.approx(1.4 / 0.8, rel=0.2)


def test_zero_noise_is_deterministic_and_noise_varies_the_voice():
    text = "Good morning everyone."
    a = piper_voice.piper_audio(text, noise_scale=0.0, noise_w_scale=0.0)
    b = piper_voice.piper_audio(text, noise_scale=0.0, noise_w_scale=0.0)
    c = piper_voice.piper_audio(text, noise_scale=1.0, noise_w_scale=1.0)
    assert np.array_equal(a, b)
    assert len(a) != len(c) or not np.allclose(a, c, atol=1e-3)


def test_synthesis_is_faster_than_real_time():
    piper_voice.load_piper_voice()
    start = time.perf_counter()
    audio = piper_voice.piper_audio(TEXT)
    assert time.perf_counter() - start < 0.5 * len(audio) / SAMPLE_RATE


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"text": " "}, "text"),
        ({"length_scale": 0.0}, "length_scale"),
        ({"noise_scale": -1.0}, "noise_scale"),
    ],
)
def test_bad_arguments_are_rejected(kwargs, match):
    args = {"text": "Hi.", **kwargs}
    with pytest.raises(ValueError, match=match):
        piper_voice.synthesize_piper(**args)
