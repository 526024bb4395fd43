"""The avatar's own voice: speak a reply with the project's speech engines and stream it in short chunks.

``stream_reply(text, config)`` synthesises the whole reply up front (espeak-ng is far faster than real
time; the neural voices are too for a sentence) and hands it out chunk by chunk, each exactly
``chunk_s`` long (the last one padded with silence). ``stop()`` ends the stream at once: the next chunk
is never produced, which is how a barge-in cuts the avatar off mid-word. The utterance's timed phonemes
stay available for the lips, and ``position_s`` says how much of it was handed out.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from avatarlm.data.speech.espeak import VOICE_VARIANTS
from avatarlm.data.speech.languages import get_language
from avatarlm.data.speech.utterance import SAMPLE_RATE, Utterance
from avatarlm.data.speech.voices import Voice, speak

ENGINES = ("espeak", "piper", "kokoro")
ENGINE_LANGUAGE = {"piper": "en", "kokoro": "ja"}  # the neural voices speak one language each


@dataclass
class TTSConfig:
    language: str = "en"  # ISO 639-1 code from avatarlm.data.speech.languages.LANGUAGES
    engine: str = "espeak"  # "espeak" (every language), "piper" (en) or "kokoro" (ja)
    voice: str = "m1"  # espeak variant (espeak.VOICE_VARIANTS), piper voice name or kokoro voice id
    rate: float = 1.0  # speaking-rate factor
    pitch: float = 50.0  # espeak pitch, 0..99
    chunk_s: float = 0.02  # length of each streamed chunk

    def __post_init__(self) -> None:
        get_language(self.language)  # ValueError naming the known languages
        if self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {self.engine!r}")
        only = ENGINE_LANGUAGE.get(self.engine)
        if only is not None and self.language != only:
            raise ValueError(f"the {self.engine} voice speaks only {only!r}, not {self.language!r}")
        if self.engine == "espeak" and self.voice not in VOICE_VARIANTS:
            raise ValueError(f"unknown espeak voice {self.voice!r}; known: {', '.join(VOICE_VARIANTS)}")
        if not (math.isfinite(self.rate) and 0.5 <= self.rate <= 2.5):
            raise ValueError(f"rate must be a speaking-rate factor in 0.5..2.5, got {self.rate}")
        if not (math.isfinite(self.pitch) and 0.0 <= self.pitch <= 99.0):
            raise ValueError(f"pitch must be in 0..99, got {self.pitch}")
        samples = self.chunk_s * SAMPLE_RATE if math.isfinite(self.chunk_s) else 0.0
        if samples < 1 or abs(samples - round(samples)) > 1e-6:
            raise ValueError(
                f"chunk_s must be > 0 and a whole number of {SAMPLE_RATE} Hz samples, got {self.chunk_s}"
            )

    @property
    def chunk_samples(self) -> int:
        return round(self.chunk_s * SAMPLE_RATE)

    def as_voice(self) -> Voice:
        return Voice(self.engine, self.language, self.voice, rate=self.rate, pitch=self.pitch)


class SpeechStream:
    """An utterance handed out in fixed-size chunks; iterate it, and ``stop()`` it to cut it off."""

    def __init__(self, utterance: Utterance, chunk_samples: int) -> None:
        if chunk_samples < 1:
            raise ValueError(f"chunk_samples must be >= 1, got {chunk_samples}")
        self.utterance = utterance
        self.chunk_samples = chunk_samples
        self._next = 0  # first sample not yet handed out
        self.stopped = False

    @property
    def total_chunks(self) -> int:
        return -(-len(self.utterance.audio) // self.chunk_samples)

    @property
    def position_s(self) -> float:
        """Seconds of the utterance handed out so far."""
        return min(self._next, len(self.utterance.audio)) / SAMPLE_RATE

    @property
    def done(self) -> bool:
        """True once stopped or when every chunk was handed out."""
        return self.stopped or self._next >= len(self.utterance.audio)

    def stop(self) -> None:
        """Hand out nothing more (barge-in)."""
        self.stopped = True

    def next_chunk(self) -> np.ndarray | None:
        """The next ``chunk_samples`` of audio (float32), or None when done."""
        if self.done:
            return None
        audio = self.utterance.audio
        chunk = audio[self._next : self._next + self.chunk_samples]
        self._next += self.chunk_samples
        if len(chunk) < self.chunk_samples:
            chunk = np.concatenate([chunk, np.zeros(self.chunk_samples - len(chunk), np.float32)])
        return np.asarray(chunk, dtype=np.float32)

    def __iter__(self) -> Iterator[np.ndarray]:
        while (chunk := self.next_chunk()) is not None:
            yield chunk


def synthesize_reply(text: str, config: TTSConfig | None = None) -> Utterance:
    """The whole reply as one 16 kHz utterance with timed phonemes; ValueError for empty text."""
    cfg = config or TTSConfig()
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"the avatar's reply must be non-empty text, got {text!r}")
    return speak(cfg.as_voice(), text.strip())


def stream_reply(text: str, config: TTSConfig | None = None) -> SpeechStream:
    """Speak `text` with the configured voice and return it as a stoppable stream of chunks."""
    cfg = config or TTSConfig()
    return SpeechStream(synthesize_reply(text, cfg), cfg.chunk_samples)
