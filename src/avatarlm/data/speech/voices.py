"""Which voices exist for a language, which are held out for evaluation, and one `speak` for all engines."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from avatarlm.data.speech.utterance import Utterance

# Held out of training: evaluation measures lip-sync on a voice the model never heard.
EVAL_VOICES: frozenset[str] = frozenset({"espeak:f5", "kokoro:jm_kumo"})


@dataclass(frozen=True)
class Voice:
    engine: str  # "espeak", "piper" or "kokoro"
    language: str
    name: str  # espeak variant, piper voice name or kokoro voice id
    rate: float = 1.0  # speaking-rate factor (1 = the engine's default)
    pitch: float = 50.0  # espeak pitch (0-99); ignored by the neural engines

    @property
    def key(self) -> str:
        return f"{self.engine}:{self.name}"

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def voices_for(language: str) -> list[tuple[str, str]]:
    """(engine, voice name) pairs available for a language."""
    from avatarlm.data.speech import espeak
    from avatarlm.data.speech.languages import get_language

    get_language(language)
    out = [("espeak", v) for v in espeak.VOICE_VARIANTS]
    if language == "en":
        out += [("piper", "en_US-joe-medium")] * 3  # weight the neural voice up
    if language == "ja" and kokoro_available():
        from avatarlm.data.speech.kokoro_voice import KOKORO_VOICES

        out += [("kokoro", v) for v in KOKORO_VOICES] * 2
    return out


def kokoro_available() -> bool:
    try:
        from avatarlm.data.speech import kokoro_voice

        return kokoro_voice.is_available()
    except ImportError:
        return False


def sample_voice(language: str, rng: np.random.Generator, held_out: bool = False) -> Voice:
    """A random voice for `language`; `held_out` picks only among EVAL_VOICES (when the language has one)."""
    options = [v for v in voices_for(language) if (f"{v[0]}:{v[1]}" in EVAL_VOICES) == held_out]
    if not options:
        options = [v for v in voices_for(language) if f"{v[0]}:{v[1]}" not in EVAL_VOICES]
    engine, name = options[int(rng.integers(len(options)))]
    return Voice(engine, language, name, rate=float(rng.uniform(0.85, 1.2)), pitch=float(rng.uniform(30, 70)))


def speak(voice: Voice, text: str) -> Utterance:
    """Synthesize `text` with `voice`: 16 kHz mono audio and timed phonemes, whatever the engine."""
    if voice.engine == "espeak":
        from avatarlm.data.speech.espeak import synthesize

        return synthesize(
            text,
            voice.language,
            voice_variant=voice.name,
            rate_wpm=int(160 * voice.rate),
            pitch=int(voice.pitch),
        )
    if voice.engine == "piper":
        from avatarlm.data.speech.piper_voice import synthesize_piper

        # Piper's sampling noise comes from unseeded ONNX random nodes; without it the voice is
        # deterministic, so the same clip spec always gives the same audio.
        return synthesize_piper(text, length_scale=1.0 / voice.rate, noise_scale=0.0, noise_w_scale=0.0)
    if voice.engine == "kokoro":
        from avatarlm.data.speech.kokoro_voice import synthesize_kokoro

        return synthesize_kokoro(text, voice=voice.name, speed=voice.rate)
    raise ValueError(f"unknown speech engine {voice.engine!r}; known: espeak, piper, kokoro")
