"""Streaming voice activity detection with the packaged, offline silero-vad model.

``StreamingVAD.push`` takes 16 kHz mono PCM in any chunk size, buffers it into the model's 512-sample
(32 ms) windows and returns, per complete window, the speech probability and the debounced speech state.
Onset and offset events come from hysteresis on those probabilities:

- silence -> speech: a run of windows that starts with probability >= ``onset_threshold`` and stays
  >= ``offset_threshold`` for ``min_speech_s`` becomes an onset at the run's first window;
- speech -> silence: a run that starts below ``offset_threshold`` and stays below ``onset_threshold`` for
  ``min_silence_s`` becomes an offset at the run's first window (where the speech ended).

Every time is stream time: samples pushed / 16 kHz, never the wall clock. An event carries both when it
happened (``time``) and when it was decided (``decided_at``, the end of the window that confirmed it).
The model is stateful but sees the same windows whatever the chunking, so the events are identical for
any chunking of the same audio.

The model ships inside the ``silero-vad`` wheel (TorchScript and ONNX); nothing is downloaded.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
import torch

SAMPLE_RATE = 16_000
WINDOW = 512  # samples per model call at 16 kHz
WINDOW_S = WINDOW / SAMPLE_RATE
BACKENDS = ("jit", "onnx")


@dataclass
class VADConfig:
    onset_threshold: float = 0.5  # a window this likely to be speech may start an onset
    offset_threshold: float = 0.35  # below this a window may start an offset
    min_speech_s: float = 0.1  # speech must last this long to count (rounded up to whole windows)
    min_silence_s: float = 0.1  # silence must last this long to end speech (rounded up to whole windows)
    backend: str = "jit"  # "jit" (TorchScript, torch only) or "onnx" (onnxruntime)

    def __post_init__(self) -> None:
        if not 0.0 < self.offset_threshold <= self.onset_threshold < 1.0:
            raise ValueError(
                "thresholds must satisfy 0 < offset_threshold <= onset_threshold < 1, got "
                f"offset_threshold={self.offset_threshold}, onset_threshold={self.onset_threshold}"
            )
        for name in ("min_speech_s", "min_silence_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0.0):
                raise ValueError(f"{name} must be a finite number of seconds >= 0, got {value}")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")

    @property
    def min_speech_windows(self) -> int:
        return max(1, math.ceil(round(self.min_speech_s / WINDOW_S, 6)))

    @property
    def min_silence_windows(self) -> int:
        return max(1, math.ceil(round(self.min_silence_s / WINDOW_S, 6)))


class StreamTimes:
    """Seconds of an event's ``sample`` and ``decided_sample`` on the 16 kHz stream."""

    sample: int
    decided_sample: int

    @property
    def time(self) -> float:
        return self.sample / SAMPLE_RATE

    @property
    def decided_at(self) -> float:
        return self.decided_sample / SAMPLE_RATE


@dataclass(frozen=True)
class VADEvent(StreamTimes):
    """Speech ``onset`` or ``offset`` at stream sample ``sample``, decided at stream sample ``decided_sample``."""

    kind: Literal["onset", "offset"]
    sample: int
    decided_sample: int


@dataclass(frozen=True)
class VADWindow:
    """One 32 ms window: its speech probability, the debounced state after it, and the event it decided."""

    start_sample: int
    prob: float
    speech: bool
    event: VADEvent | None = None

    @property
    def start(self) -> float:
        return self.start_sample / SAMPLE_RATE

    @property
    def end(self) -> float:
        return (self.start_sample + WINDOW) / SAMPLE_RATE


class VADModel(Protocol):
    """What StreamingVAD needs of a model: speech probability of one 512-sample window; state reset."""

    def __call__(self, x: torch.Tensor, sr: int) -> torch.Tensor: ...

    def reset_states(self) -> None: ...


def load_model(backend: str = "jit") -> VADModel:
    """A fresh (stateful) silero-vad model from the files packaged with silero-vad.

    Importing silero_vad sets torch's thread count to 1 for the whole process; the caller's setting is
    put back. On one thread the model takes about 20 ms per second of audio.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    threads = torch.get_num_threads()
    try:
        from silero_vad import load_silero_vad
    finally:
        torch.set_num_threads(threads)
    with warnings.catch_warnings():  # silero's importlib.resources.path and torch.jit.load deprecations
        warnings.simplefilter("ignore", DeprecationWarning)
        model: VADModel = load_silero_vad(onnx=backend == "onnx")
    return model


def as_pcm(samples: np.ndarray) -> np.ndarray:
    """1-D float (or int16) PCM -> float32; ValueError for anything else."""
    x = np.asarray(samples)
    if x.ndim != 1:
        raise ValueError(f"audio must be 1-D mono samples, got shape {x.shape}")
    if x.dtype == np.int16:
        return x.astype(np.float32) / 32768.0
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"audio samples must be float (or int16) PCM, got {x.dtype}")
    if x.size and not np.isfinite(x).all():
        raise ValueError("audio samples must be finite")
    return np.ascontiguousarray(x, dtype=np.float32)


class StreamingVAD:
    """Feed ``push(pcm)`` any chunk sizes of 16 kHz mono audio; get back the windows it completed.

    ``model`` replaces the packaged silero-vad model (``config.backend`` is then ignored).
    """

    def __init__(self, config: VADConfig | None = None, model: VADModel | None = None) -> None:
        self.config = config or VADConfig()
        self._model = model if model is not None else load_model(self.config.backend)
        self.reset()

    def reset(self) -> None:
        """Start a new stream at time 0 (the model's recurrent state is cleared too)."""
        self._model.reset_states()
        self._pending = np.zeros(0, np.float32)
        self._processed = 0  # samples consumed by the model
        self.speech = False  # debounced state
        self._run_start: int | None = None  # first sample of a candidate onset / offset run
        self._run_length = 0

    @property
    def samples_pushed(self) -> int:
        return self._processed + len(self._pending)

    @property
    def time(self) -> float:
        """Stream time in seconds: everything pushed so far, including the partial window."""
        return self.samples_pushed / SAMPLE_RATE

    def push(self, samples: np.ndarray) -> list[VADWindow]:
        """Buffer `samples`; run the model on every complete window; return those windows in order."""
        pcm = as_pcm(samples)
        self._pending = np.concatenate([self._pending, pcm]) if len(self._pending) else pcm
        n = len(self._pending) // WINDOW
        windows = [self._step(self._pending[i * WINDOW : (i + 1) * WINDOW]) for i in range(n)]
        self._pending = self._pending[n * WINDOW :].copy()
        return windows

    def flush(self) -> list[VADWindow]:
        """Pad the partial window with silence and process it (the stream time moves to its end)."""
        if not len(self._pending):
            return []
        return self.push(np.zeros(WINDOW - len(self._pending), np.float32))

    def _step(self, window: np.ndarray) -> VADWindow:
        with torch.no_grad():
            prob = float(self._model(torch.from_numpy(window.copy()), SAMPLE_RATE).reshape(-1)[0])
        start = self._processed
        self._processed += WINDOW
        event = self._hysteresis(prob, start)
        return VADWindow(start_sample=start, prob=prob, speech=self.speech, event=event)

    def _hysteresis(self, prob: float, start: int) -> VADEvent | None:
        cfg = self.config
        if self._run_start is None:
            opens = prob < cfg.offset_threshold if self.speech else prob >= cfg.onset_threshold
            if not opens:
                return None
            self._run_start, self._run_length = start, 0
        else:
            keeps = prob < cfg.onset_threshold if self.speech else prob >= cfg.offset_threshold
            if not keeps:  # the run broke; the window cannot open a new one (thresholds are ordered)
                self._run_start = None
                return None
        self._run_length += 1
        needed = cfg.min_silence_windows if self.speech else cfg.min_speech_windows
        if self._run_length < needed:
            return None
        kind: Literal["onset", "offset"] = "offset" if self.speech else "onset"
        event = VADEvent(kind, self._run_start, self._processed)
        self.speech = not self.speech
        self._run_start = None
        return event


def events_of(windows: list[VADWindow]) -> list[VADEvent]:
    """The onset / offset events among `windows`, in order."""
    return [w.event for w in windows if w.event is not None]
