"""espeak-ng speech with phoneme timings, through libespeak-ng (bundled by `espeakng-loader`) and ctypes,
run in a process of its own (``espeak_engine.py``: a crash there cannot take this process down).

The library runs in retrieval mode: its synthesis callback hands over 22.05 kHz samples together with
phoneme events (IPA, sample position). Audio is resampled to 16 kHz; a phoneme ends where the next one
starts, pauses are spelled PAUSE ("_"), and the phonemes cover the whole returned audio.
"""

from __future__ import annotations

import atexit
import json
import os
import subprocess
import sys
import threading
from typing import Any

import numpy as np
from scipy.signal import resample_poly

from avatarlm.data.speech.espeak_engine import ESPEAK_RATE
from avatarlm.data.speech.languages import get_language
from avatarlm.data.speech.utterance import SAMPLE_RATE, Phoneme, Utterance

PAUSE = "_"
EDGE_SILENCE_S = 0.05  # silence kept before the first and after the last spoken phoneme
MIN_INNER_PAUSE_S = 0.04  # shorter pauses between phonemes are merged into the preceding phoneme
RATE_RANGE = (80, 450)

# espeak-ng voice variants (espeak-ng-data/voices/!v) that sound like distinct, clean human voices.
VOICE_VARIANTS: tuple[str, ...] = (
    *(f"m{i}" for i in range(1, 9)),
    *(f"f{i}" for i in range(1, 6)),
    "klatt",
    "klatt2",
    "klatt3",
    "adam",
    "Alicia",
    "Andrea",
    "anika",
    "belinda",
    "david",
    "edward",
    "linda",
    "max",
    "michel",
    "robert",
    "steph",
)


class _EngineProcess:
    """The ``espeak_engine`` process of this process (started on first use, again after a fork or a crash)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._pid = 0  # the process that started it: a forked child starts its own

    def run(self, **request: Any) -> tuple[np.ndarray, list[tuple[int, str]]]:
        with self._lock:
            for attempt in (1, 2):
                try:
                    return self._ask(request)
                except (BrokenPipeError, EOFError, OSError) as err:
                    self._stop()
                    if attempt == 2:
                        raise RuntimeError(f"the espeak-ng process failed twice: {err}") from err
            raise AssertionError("unreachable")

    def _ask(self, request: dict[str, Any]) -> tuple[np.ndarray, list[tuple[int, str]]]:
        proc = self._started()
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps(request).encode() + b"\n")
        proc.stdin.flush()
        line = proc.stdout.readline()
        if not line:
            raise EOFError(f"espeak-ng process ended (exit code {proc.poll()})")
        head = json.loads(line)
        if not head["ok"]:
            raise (ValueError if head["kind"] == "ValueError" else RuntimeError)(head["error"])
        data = proc.stdout.read(2 * head["samples"])
        if len(data) != 2 * head["samples"]:
            raise EOFError("espeak-ng process ended in the middle of an answer")
        events = [(int(sample), str(symbol)) for sample, symbol in head["events"]]
        return np.frombuffer(data, dtype=np.int16).copy(), events

    def _started(self) -> subprocess.Popen[bytes]:
        if self._proc is None or self._pid != os.getpid() or self._proc.poll() is not None:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "avatarlm.data.speech.espeak_engine"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
            )
            self._pid = os.getpid()
        return self._proc

    def _stop(self) -> None:
        if self._proc is not None and self._pid == os.getpid():
            self._proc.kill()
            self._proc.wait()
        self._proc = None

    def close(self) -> None:
        with self._lock:
            if self._proc is not None and self._pid == os.getpid():
                assert self._proc.stdin is not None
                self._proc.stdin.close()
                self._proc.wait(timeout=5)
            self._proc = None


_ENGINE = _EngineProcess()
atexit.register(_ENGINE.close)


def _run_espeak(
    text: str, voice: str, rate: int, pitch: int, pitch_range: int
) -> tuple[np.ndarray, list[tuple[int, str]]]:
    return _ENGINE.run(text=text, voice=voice, rate=rate, pitch=pitch, pitch_range=pitch_range)


def _segments(events: list[tuple[int, str]], n_samples: int) -> list[tuple[str, int, int]]:
    """Phoneme events -> (symbol, start, end) in samples; pauses merged and spelled PAUSE."""
    # "(en)"-style events mark a switch of language inside the text; they are not sounds.
    events = sorted((e for e in events if not e[1].startswith("(")), key=lambda e: e[0])
    segments: list[tuple[str, int, int]] = []
    for i, (start, symbol) in enumerate(events):
        end = events[i + 1][0] if i + 1 < len(events) else n_samples
        end = min(max(end, start), n_samples)
        symbol = symbol.strip() or PAUSE
        if segments and symbol == PAUSE and segments[-1][0] == PAUSE:
            segments[-1] = (PAUSE, segments[-1][1], end)
        elif end > start or symbol != PAUSE:
            segments.append((symbol, start, end))
    merged: list[tuple[str, int, int]] = []
    min_pause = int(MIN_INNER_PAUSE_S * ESPEAK_RATE)
    for k, (symbol, start, end) in enumerate(segments):
        inner = 0 < k < len(segments) - 1
        if symbol == PAUSE and inner and end - start < min_pause and merged and merged[-1][0] != PAUSE:
            merged[-1] = (merged[-1][0], merged[-1][1], end)
        elif end > start:
            merged.append((symbol, start, end))
    return merged


def _trim(
    audio: np.ndarray, segments: list[tuple[str, int, int]]
) -> tuple[np.ndarray, list[tuple[str, int, int]], int]:
    """Cut edge silence beyond EDGE_SILENCE_S and shift segments; returns (audio, segments, cut_start)."""
    spoken = [s for s in segments if s[0] != PAUSE]
    if not spoken:
        raise ValueError("text produced no speech")
    edge = int(EDGE_SILENCE_S * ESPEAK_RATE)
    cut_start = max(0, spoken[0][1] - edge)
    cut_end = min(len(audio), spoken[-1][2] + edge)
    out: list[tuple[str, int, int]] = []
    for symbol, start, end in segments:
        start, end = max(start, cut_start) - cut_start, min(end, cut_end) - cut_start
        if end > start:
            out.append((symbol, start, end))
    if out[0][1] > 0:
        out.insert(0, (PAUSE, 0, out[0][1]))
    length = cut_end - cut_start
    if out[-1][2] < length:
        out.append((PAUSE, out[-1][2], length))
    return audio[cut_start:cut_end], out, cut_start


def synthesize(
    text: str,
    language: str,
    voice_variant: str | None = None,
    rate_wpm: int = 160,
    pitch: int = 50,
    pitch_range: int = 50,
) -> Utterance:
    """Speak `text` in `language` (a code from LANGUAGES) with espeak-ng; 16 kHz audio + timed IPA phonemes.

    `voice_variant` is one of VOICE_VARIANTS (None: the language's default voice); `rate_wpm` is in
    80..450, `pitch` and `pitch_range` in 0..100. The same arguments always give the same audio.
    """
    lang = get_language(language)
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"text must be a non-empty string, got {text!r}")
    if voice_variant is not None and voice_variant not in VOICE_VARIANTS:
        raise ValueError(f"unknown voice variant {voice_variant!r}; known: {', '.join(VOICE_VARIANTS)}")
    if not RATE_RANGE[0] <= rate_wpm <= RATE_RANGE[1]:
        raise ValueError(f"rate_wpm must be in {RATE_RANGE[0]}..{RATE_RANGE[1]}, got {rate_wpm}")
    for name, value in (("pitch", pitch), ("pitch_range", pitch_range)):
        if not 0 <= value <= 100:
            raise ValueError(f"{name} must be in 0..100, got {value}")
    voice = lang.espeak_voice if voice_variant is None else f"{lang.espeak_voice}+{voice_variant}"
    raw, events = _run_espeak(text, voice, int(rate_wpm), int(pitch), int(pitch_range))
    segments = _segments(events, len(raw))
    raw, segments, cut_start = _trim(raw, segments)
    audio = resample_poly(raw.astype(np.float32) / 32768.0, SAMPLE_RATE // 50, ESPEAK_RATE // 50)
    audio = np.clip(audio, -1.0, 1.0).astype(np.float32)
    duration = len(audio) / SAMPLE_RATE
    phonemes = [Phoneme(symbol, start / ESPEAK_RATE, end / ESPEAK_RATE) for symbol, start, end in segments]
    phonemes[-1].end = duration
    return Utterance(
        audio=audio,
        phonemes=phonemes,
        text=text,
        language=lang.code,
        engine="espeak",
        voice=voice,
        meta={
            "rate_wpm": float(rate_wpm),
            "pitch": float(pitch),
            "pitch_range": float(pitch_range),
            "trimmed_start_s": cut_start / ESPEAK_RATE,
        },
    )
