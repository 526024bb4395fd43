import numpy as np
import pytest

from avatarlm.data.speech import kokoro_voice
from avatarlm.data.speech.align import HOP, frame_energy_db
from avatarlm.data.speech.espeak import PAUSE
from avatarlm.data.speech.utterance import SAMPLE_RATE

_MISSING = kokoro_voice.missing_packages()
needs_kokoro = pytest.mark.skipif(bool(_MISSING), reason=f"Kokoro needs missing package(s): {_MISSING}")
VOWELS = set("aeiouäɯ")
pytestmark = pytest.mark.filterwarnings("ignore:open_text is deprecated:DeprecationWarning")


def test_voice_list():
    assert kokoro_voice.KOKORO_VOICES == ("jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo")


@pytest.mark.parametrize(
    ("kwargs", "match"), [({"text": ""}, "text"), ({"voice": "af_bella"}, "voice"), ({"speed": 3.0}, "speed")]
)
def test_bad_arguments_are_rejected(kwargs, match):
    args = {"text": "はい。", **kwargs}
    with pytest.raises(ValueError, match=match):
        kokoro_voice.synthesize_kokoro(**args)


def test_missing_package_gives_a_clear_error(monkeypatch):
    real_find_spec = kokoro_voice.importlib.util.find_spec
    monkeypatch.setattr(
        kokoro_voice.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "pyopenjtalk" else real_find_spec(name, *a),
    )
    assert not kokoro_voice.is_available()
    with pytest.raises(RuntimeError, match="pyopenjtalk-plus"):
        kokoro_voice.synthesize_kokoro("はい。")


@needs_kokoro
def test_smoke_short_phrase_has_covering_timed_phonemes():  # a few seconds: model load + one phrase
    utt = kokoro_voice.synthesize_kokoro("今日はいい天気ですね。", voice="jf_alpha")
    assert (utt.engine, utt.language, utt.voice) == ("kokoro", "ja", "jf_alpha")
    assert utt.sample_rate == SAMPLE_RATE and utt.audio.dtype == np.float32
    assert 0.3 < np.abs(utt.audio).max() <= 1.0 and 0.8 < utt.duration < 4.0
    assert str(utt.meta["reading"]).startswith("キョー")  # kanji resolved to a kana reading
    starts = np.array([p.start for p in utt.phonemes])
    ends = np.array([p.end for p in utt.phonemes])
    assert starts[0] == 0.0 and ends[-1] == pytest.approx(utt.duration)
    assert np.all(np.diff(starts) >= 0) and np.allclose(starts[1:], ends[:-1])
    energy = frame_energy_db(utt.audio)
    vowels = [p for p in utt.phonemes if VOWELS & set(p.symbol)]
    assert len(vowels) >= 8
    mid_db = np.array(
        [energy[min(int((p.start + p.end) / 2 * SAMPLE_RATE / HOP), len(energy) - 1)] for p in vowels]
    )
    assert np.mean(mid_db > energy.max() - 30.0) > 0.9


@pytest.mark.slow
@needs_kokoro
def test_faster_speed_gives_shorter_audio():
    slow = kokoro_voice.kokoro_audio("ありがとうございます。", voice="jm_kumo", speed=0.8)
    fast = kokoro_voice.kokoro_audio("ありがとうございます。", voice="jm_kumo", speed=1.4)
    assert len(slow) / len(fast) == pytest.approx(1.4 / 0.8, rel=0.25)


@pytest.mark.slow
@needs_kokoro
def test_sentence_pause_is_aligned_to_a_quiet_gap():
    utt = kokoro_voice.synthesize_kokoro("はい。そうです。", voice="jf_nezumi")
    energy = frame_energy_db(utt.audio)
    inner = [p for p in utt.phonemes[1:-1] if p.symbol == PAUSE and p.end - p.start > 0.15]
    assert inner, [p.symbol for p in utt.phonemes]
    gap = inner[0]
    mid = int((gap.start + gap.end) / 2 * SAMPLE_RATE / HOP)
    assert energy[mid] < energy.max() - 40.0
