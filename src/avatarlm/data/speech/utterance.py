"""What every speech engine returns: 16 kHz mono audio plus timed phonemes."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SAMPLE_RATE = 16_000


@dataclass
class Phoneme:
    """One phoneme (IPA as the engine spells it) with start and end in seconds from the utterance start."""

    symbol: str
    start: float
    end: float


@dataclass
class Utterance:
    audio: np.ndarray  # float32, mono, SAMPLE_RATE, in [-1, 1]
    phonemes: list[Phoneme]
    text: str
    language: str
    engine: str  # "espeak", "piper", "kokoro"
    voice: str
    sample_rate: int = SAMPLE_RATE
    meta: dict[str, float | str] = field(default_factory=dict)

    @property
    def duration(self) -> float:
        return len(self.audio) / self.sample_rate
