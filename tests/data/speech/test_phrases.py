import unicodedata

import numpy as np
import pytest

from avatarlm.data.speech.espeak import synthesize
from avatarlm.data.speech.languages import LANGUAGES, get_language
from avatarlm.data.speech.phrases import backchannels, count_words, phrases, sample_text

CODES = sorted(LANGUAGES)
# Prefix of the Unicode character names of each script's letters.
SCRIPT_PREFIXES = {
    "Latin": ("LATIN",),
    "Cyrillic": ("CYRILLIC",),
    "Greek": ("GREEK",),
    "Arabic": ("ARABIC",),
    "Devanagari": ("DEVANAGARI",),
    "Han": ("CJK UNIFIED",),
    "Kana": ("HIRAGANA", "KATAKANA"),
    "Hangul": ("HANGUL",),
}


def test_language_table():
    assert len(LANGUAGES) >= 12
    assert {"en", "es", "fr", "de", "it", "pt", "ru", "zh", "ja", "ko", "ar", "hi"} <= set(LANGUAGES)
    assert len({lang.script for lang in LANGUAGES.values()}) >= 7
    assert get_language("zh").espeak_voice == "cmn"
    with pytest.raises(ValueError, match="unknown language 'xx'; known: ar, de"):
        get_language("xx")


@pytest.mark.parametrize("code", CODES)
def test_lists_are_long_distinct_and_in_the_right_script(code):
    sentences, short = phrases(code), backchannels(code)
    assert len(sentences) >= 30 and len(set(sentences)) == len(sentences)
    assert len(short) >= 5
    assert max(count_words(b, code) for b in short) <= 3
    prefixes = SCRIPT_PREFIXES[get_language(code).script]
    letters = [ch for text in sentences + short for ch in text if unicodedata.category(ch)[0] == "L"]
    in_script = sum(unicodedata.name(ch, "").startswith(prefixes) for ch in letters)
    assert in_script / len(letters) > 0.97


@pytest.mark.parametrize("code", CODES)
def test_backchannels_are_spoken(code):
    for text in backchannels(code)[:3]:
        assert synthesize(text, code).duration > 0.15


def test_sample_text_is_reproducible_and_scales_with_length():
    a = sample_text("fr", np.random.default_rng(3), approx_seconds=6.0)
    b = sample_text("fr", np.random.default_rng(3), approx_seconds=6.0)
    assert a == b
    short = sample_text("fr", np.random.default_rng(3), approx_seconds=1.0)
    assert len(short) < len(a)
    assert sample_text("fr", np.random.default_rng(0), min_words=40).count(" ") >= 39


@pytest.mark.parametrize("code", ["en", "zh", "ja", "ar"])
def test_sample_text_duration_is_roughly_as_asked(code):
    rng = np.random.default_rng(1)
    durations = [synthesize(sample_text(code, rng, approx_seconds=5.0), code).duration for _ in range(3)]
    assert 3.0 < np.mean(durations) < 10.0


def test_sample_text_backchannel_and_errors():
    assert sample_text("ko", np.random.default_rng(0), backchannel_prob=1.0) in backchannels("ko")
    with pytest.raises(ValueError, match="approx_seconds"):
        sample_text("en", np.random.default_rng(0), approx_seconds=0)
    with pytest.raises(ValueError, match="unknown language 'qq'"):
        phrases("qq")
