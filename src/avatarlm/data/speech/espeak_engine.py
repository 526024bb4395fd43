"""libespeak-ng through ctypes, in a process of its own: ``python -m avatarlm.data.speech.espeak_engine``
reads requests on stdin and answers on stdout (``espeak.py`` runs it and talks to it).

Why a process: the library keeps synthesis state in static variables, so each synthesis loads a private
copy afresh; and in a process that also holds other native libraries and threads (Piper's espeak bridge,
onnxruntime, torch, a web server's worker threads) a synthesis crashed inside ``espeak_Synth`` now and
then, taking the whole process with it. Here it can only take this process, which ``espeak.py`` restarts.

Protocol, one request at a time: a JSON line ``{"text", "voice", "rate", "pitch", "pitch_range"}``; the
answer is a JSON line ``{"ok": true, "samples": N, "events": [[sample, symbol], ...]}`` followed by N int16
samples (22.05 kHz, native byte order), or ``{"ok": false, "kind": "ValueError", "error": "..."}``.
"""

from __future__ import annotations

import _ctypes
import atexit
import ctypes
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import espeakng_loader
import numpy as np

ESPEAK_RATE = 22_050
VOLUME = 100  # espeak-ng amplitude, 0..200

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
    """One load of libespeak-ng for one synthesis. One synthesis at a time.

    libespeak-ng keeps synthesis state in static variables (e.g. its pitch flutter phase), so the same
    call gives different audio the second time. Each synthesis therefore loads a private copy of the
    library afresh and unloads it afterwards (about 2 ms), which makes output reproducible.
    """

    def __init__(self, library_path: str) -> None:
        # DEEPBIND: the copy's calls into itself stay inside it, never resolving to another libespeak-ng
        # (Piper's voices load their own); this process loads nothing else, the flag only keeps it so.
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


_LIBRARY_COPY: str | None = None


def _private_library() -> str:
    """A process-private copy of libespeak-ng, so that unloading it never disturbs other users."""
    global _LIBRARY_COPY
    if _LIBRARY_COPY is None:
        folder = tempfile.mkdtemp(prefix="avatarlm-espeak-")
        atexit.register(shutil.rmtree, folder, True)
        _LIBRARY_COPY = str(shutil.copy(espeakng_loader.get_library_path(), Path(folder) / "libespeak-ng.so"))
    return _LIBRARY_COPY


def synthesize_raw(
    text: str, voice: str, rate: int, pitch: int, pitch_range: int
) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """int16 samples at 22.05 kHz and phoneme events (sample, IPA) of one synthesis, in this process."""
    engine = _Engine(_private_library())
    try:
        return engine.run(text, voice, rate, pitch, pitch_range)
    finally:
        engine.close()


def serve(stdin: Any, stdout: Any) -> None:
    """Answer requests (the protocol above) until stdin closes."""
    for line in stdin:
        try:
            r = json.loads(line)
            audio, events = synthesize_raw(r["text"], r["voice"], r["rate"], r["pitch"], r["pitch_range"])
        except Exception as err:  # the caller raises it again
            stdout.write(
                json.dumps({"ok": False, "kind": type(err).__name__, "error": str(err)}).encode() + b"\n"
            )
        else:
            audio = np.ascontiguousarray(audio, dtype=np.int16)
            head = {"ok": True, "samples": int(audio.size), "events": events}
            stdout.write(json.dumps(head).encode() + b"\n" + audio.tobytes())
        stdout.flush()


if __name__ == "__main__":
    serve(sys.stdin.buffer, sys.stdout.buffer)
