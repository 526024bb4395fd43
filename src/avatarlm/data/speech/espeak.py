"""espeak-ng speech with phoneme timings, through libespeak-ng (bundled by `espeakng-loader`) and ctypes.

The library runs in retrieval mode: its synthesis callback hands over 22.05 kHz samples together with
phoneme events (IPA, sample position). Audio is resampled to 16 kHz; a phoneme ends where the next one
starts, pauses are spelled PAUSE ("_"), and the phonemes cover the whole returned audio.
"""

from __future__ import annotations

import _ctypes
import atexit
import ctypes
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

import espeakng_loader
import numpy as np
from scipy.signal import resample_poly

from avatarlm.data.speech.languages import get_language
from avatarlm.data.speech.utterance import SAMPLE_RATE, Phoneme, Utterance

PAUSE = "_"
ESPEAK_RATE = 22_050
EDGE_SILENCE_S = 0.05  # silence kept before the first and after the last spoken phoneme
MIN_INNER_PAUSE_S = 0.04  # shorter pauses between phonemes are merged into the preceding phoneme
RATE_RANGE = (80, 450)
VOLUME = 100  # espeak-ng amplitude, 0..200

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

# espeak_lib.h constants
_AUDIO_OUTPUT_RETRIEVAL = 1
_INIT_PHONEME_EVENTS = 0x0001
_INIT_PHONEME_IPA = 0x0002
_INIT_DONT_EXIT = 0x8000
_CHARS_UTF8 = 1
_EVENT_LIST_TERMINATED = 0
_EVENT_PHONEME = 7
_PARAM_RATE, _PARAM_VOLUME, _PARAM_PITCH, _PARAM_RANGE = 1, 2, 3, 4


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


class _Engine:
    """One load of libespeak-ng for one synthesis. Use only while holding _LOCK.

    libespeak-ng keeps synthesis state in static variables (e.g. its pitch flutter phase), so the same
    call gives different audio the second time. Each synthesis therefore loads a private copy of the
    library afresh and unloads it afterwards (about 2 ms), which makes output reproducible.
    """

    def __init__(self, library_path: str) -> None:
        # DEEPBIND: the copy's calls into itself stay inside it, never resolving to another libespeak-ng the
        # process holds (Piper's voices load their own); a full test run crashed once inside espeak_Synth
        # with both loaded.
        self.lib = ctypes.CDLL(library_path, mode=os.RTLD_LOCAL | os.RTLD_DEEPBIND)
        self.lib.espeak_Initialize.restype = ctypes.c_int
        self.lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self.lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        self.lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        self.lib.espeak_Synth.argtypes = [
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        data_path = str(Path(espeakng_loader.get_data_path())).encode()
        options = _INIT_PHONEME_EVENTS | _INIT_PHONEME_IPA | _INIT_DONT_EXIT
        rate = self.lib.espeak_Initialize(_AUDIO_OUTPUT_RETRIEVAL, 0, data_path, options)
        if rate != ESPEAK_RATE:
            self.close()
            raise RuntimeError(f"libespeak-ng initialisation failed (returned {rate})")
        self.chunks: list[np.ndarray] = []
        self.events: list[tuple[int, str]] = []  # (sample at 22.05 kHz, IPA; "" for a pause)
        self._callback = _SynthCallback(self._on_synth)  # must outlive the library's use of it
        self.lib.espeak_SetSynthCallback(self._callback)

    def close(self) -> None:
        self.lib.espeak_Terminate()
        _ctypes.dlclose(self.lib._handle)

    def _on_synth(self, wav: Any, n_samples: int, events: Any) -> int:
        if n_samples > 0 and wav:
            self.chunks.append(np.ctypeslib.as_array(wav, shape=(n_samples,)).copy())
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            event = events[i]
            if event.type == _EVENT_PHONEME:
                symbol = bytes(event.id.string).split(b"\0", 1)[0].decode("utf-8", errors="ignore")
                self.events.append((int(event.sample), symbol))
            i += 1
        return 0

    def run(
        self, text: str, voice: str, rate: int, pitch: int, pitch_range: int
    ) -> tuple[np.ndarray, list[tuple[int, str]]]:
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ValueError(f"espeak-ng has no voice {voice!r}")
        for param, value in ((_PARAM_RATE, rate), (_PARAM_PITCH, pitch), (_PARAM_RANGE, pitch_range)):
            self.lib.espeak_SetParameter(param, value, 0)
        self.lib.espeak_SetParameter(_PARAM_VOLUME, VOLUME, 0)
        self.lib.espeak_ng_SetRandSeed(0)
        self.chunks, self.events = [], []
        encoded = text.encode("utf-8")
        status = self.lib.espeak_Synth(encoded, len(encoded) + 1, 0, 0, 0, _CHARS_UTF8, None, None)
        self.lib.espeak_Synchronize()
        if status != 0:
            raise RuntimeError(f"espeak_Synth failed with status {status}")
        audio = np.concatenate(self.chunks) if self.chunks else np.zeros(0, np.int16)
        return audio, self.events


_LOCK = threading.Lock()
_LIBRARY_COPY: str | None = None


def _private_library() -> str:
    """A process-private copy of libespeak-ng, so that unloading it never disturbs other users."""
    global _LIBRARY_COPY
    if _LIBRARY_COPY is None:
        folder = tempfile.mkdtemp(prefix="avatarlm-espeak-")
        atexit.register(shutil.rmtree, folder, True)
        _LIBRARY_COPY = str(shutil.copy(espeakng_loader.get_library_path(), Path(folder) / "libespeak-ng.so"))
    return _LIBRARY_COPY


def _run_espeak(
    text: str, voice: str, rate: int, pitch: int, pitch_range: int
) -> tuple[np.ndarray, list[tuple[int, str]]]:
    with _LOCK:
        engine = _Engine(_private_library())
        try:
            return engine.run(text, voice, rate, pitch, pitch_range)
        finally:
            engine.close()


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
