"""Speech recognition of the user's turns, offline: PocketSphinx with its bundled US-English models.

Small and fast (a 40 MB wheel, ~0.7x real time on one core) and rough (it mishears synthetic voices); any
object with ``transcribe(pcm_16k) -> str`` can take its place. Languages it does not know get no transcript,
and the responder is told the turn was not transcribed.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

SAMPLE_RATE = 16_000
PRE_ROLL = SAMPLE_RATE * 3 // 10  # 0.3 s of audio around a turn goes to the recogniser


class Transcriber(Protocol):
    def transcribe(self, pcm: np.ndarray) -> str: ...


def hear_turn(
    transcriber: Transcriber, audio: np.ndarray, start: int, end: int, first_sample: int = 0
) -> str:
    """The transcript of the user's turn from stream sample ``start`` to ``end``, with ``PRE_ROLL`` around it
    (the VAD decides an onset a window or two into the speech); ``audio[0]`` is stream sample ``first_sample``."""
    lo = max(0, start - PRE_ROLL - first_sample)
    hi = max(lo, end + PRE_ROLL - first_sample)
    return transcriber.transcribe(audio[lo:hi])


class PocketSphinxTranscriber:
    """US-English transcription with the models inside the ``pocketsphinx`` package (no download)."""

    language = "en"

    def __init__(self) -> None:
        from pocketsphinx import Decoder

        self._decoder = Decoder(samprate=SAMPLE_RATE, loglevel="FATAL")

    def _decode(self, pcm: np.ndarray) -> None:
        x = np.asarray(pcm, dtype=np.float32)
        if x.ndim != 1:
            raise ValueError(f"transcribe takes mono samples, got shape {x.shape}")
        raw = (np.clip(x, -1.0, 1.0) * 32767).astype("<i2").tobytes()
        d = self._decoder
        d.start_utt()
        d.process_raw(raw, full_utt=True)
        d.end_utt()

    def transcribe(self, pcm: np.ndarray) -> str:
        """16 kHz mono float PCM in [-1, 1] -> the words heard ("" for none)."""
        self._decode(pcm)
        hyp = self._decoder.hyp()
        return " ".join(hyp.hypstr.split()) if hyp is not None else ""

    def words(self, pcm: np.ndarray) -> list[tuple[str, float, float]]:
        """The words heard with their start and end in seconds (silences and fillers left out)."""
        self._decode(pcm)
        rate = 100.0  # the decoder's frames per second
        return [
            (seg.word.split("(")[0], seg.start_frame / rate, (seg.end_frame + 1) / rate)
            for seg in self._decoder.seg()
            if not (seg.word.startswith("<") or seg.word.startswith("[") or seg.word.startswith("++"))
        ]


class NoTranscriber:
    """For languages without a recogniser: every turn is reported as not transcribed."""

    def transcribe(self, pcm: np.ndarray) -> str:
        return ""


def transcriber_for(language: str) -> Transcriber:
    return PocketSphinxTranscriber() if language == "en" else NoTranscriber()
