"""Offline conversational text per language: everyday phrases and short backchannels ("yeah", "mm-hmm").

The lists live in `phrase_lists/<code>.txt` inside the package, with a `[phrases]` and a `[backchannels]`
section, one utterance per line; `#` starts a comment line.
"""

from __future__ import annotations

import unicodedata
from functools import cache
from importlib import resources

import numpy as np

from avatarlm.data.speech.languages import get_language

# Characters per word for scripts written without spaces (used for word counts and duration estimates).
_CHARS_PER_WORD = {"zh": 1.7, "ja": 3.0}
# Words (as count_words counts them) per second at 160 wpm, measured on espeak-ng over the phrase lists.
_WORDS_PER_SECOND_AT_160 = {
    "en": 3.3, "es": 3.0, "fr": 3.87, "de": 3.02, "it": 2.94, "pt": 2.87, "nl": 3.05, "pl": 2.22,
    "tr": 1.92, "vi": 3.89, "id": 2.25, "sw": 1.75, "ru": 2.84, "el": 2.74, "ar": 1.94, "hi": 2.9,
    "zh": 2.08, "ja": 2.32, "ko": 1.82,
}  # fmt: skip
_DEFAULT_WORDS_PER_SECOND = 2.7


@cache
def _load(language: str) -> dict[str, tuple[str, ...]]:
    code = get_language(language).code
    text = (
        resources.files("avatarlm.data.speech")
        .joinpath("phrase_lists")
        .joinpath(f"{code}.txt")
        .read_text("utf-8")
    )
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
        elif current is not None:
            current.append(line)
    return {name: tuple(lines) for name, lines in sections.items()}


def phrases(language: str) -> list[str]:
    """Everyday conversational sentences in `language` (greetings, questions, opinions, answers)."""
    return list(_load(language).get("phrases", ()))


def backchannels(language: str) -> list[str]:
    """Short listener responses in `language` ("yeah", "mm-hmm", "right", ...)."""
    return list(_load(language).get("backchannels", ()))


def count_words(text: str, language: str) -> float:
    """Words in `text`; for scripts without spaces, letters divided by a typical word length."""
    code = get_language(language).code
    if code in _CHARS_PER_WORD:
        letters = sum(1 for ch in text if unicodedata.category(ch)[0] == "L")
        return letters / _CHARS_PER_WORD[code]
    return float(len(text.split()))


def estimate_seconds(text: str, language: str, rate_wpm: int = 160) -> float:
    """Rough spoken duration of `text` at `rate_wpm` (espeak-ng; pauses included on average)."""
    code = get_language(language).code
    words_per_second = _WORDS_PER_SECOND_AT_160.get(code, _DEFAULT_WORDS_PER_SECOND) * rate_wpm / 160.0
    return count_words(text, code) / words_per_second


def sample_text(
    language: str,
    rng: np.random.Generator,
    approx_seconds: float = 3.0,
    min_words: int = 1,
    backchannel_prob: float = 0.0,
    rate_wpm: int = 160,
) -> str:
    """Random text in `language`: phrases joined until about `approx_seconds` and `min_words` are reached.

    With probability `backchannel_prob` the result is a single backchannel instead.
    """
    if approx_seconds <= 0:
        raise ValueError(f"approx_seconds must be positive, got {approx_seconds}")
    if not 0.0 <= backchannel_prob <= 1.0:
        raise ValueError(f"backchannel_prob must be in [0, 1], got {backchannel_prob}")
    code = get_language(language).code
    if backchannel_prob > 0 and rng.random() < backchannel_prob:
        options = backchannels(code)
        return options[int(rng.integers(len(options)))]
    pool = phrases(code)
    separator = "" if code in _CHARS_PER_WORD else " "
    chosen: list[str] = []
    order = rng.permutation(len(pool))
    while True:
        chosen.append(pool[order[len(chosen) % len(pool)]])
        text = separator.join(chosen)
        long_enough = estimate_seconds(text, code, rate_wpm) >= approx_seconds
        if long_enough and count_words(text, code) >= min_words:
            return text
