"""A stateful rational resampler for live audio: any input rate -> 16 kHz, chunk by chunk.

Output sample m is ``sum_k h[k] * u[m * M - k]``, where ``u`` is the input upsampled by L (zeros between
samples) and ``h`` a Kaiser-windowed low-pass at the lower Nyquist rate (gain L). Each output sample is
computed only from input that has arrived and always with the same arithmetic, so any chunking of the input
gives bit-identical output. The filter is causal: output lags the input by its group delay,
``(len(h) - 1) / 2`` upsampled samples (about 1 ms); :attr:`delay_seconds` says exactly.
"""

from __future__ import annotations

from math import gcd

import numpy as np

TARGET_RATE = 16_000


def lowpass(up: int, down: int, half_width: int = 16, beta: float = 8.0) -> np.ndarray:
    """Polyphase prototype filter (gain ``up``) for resampling by ``up / down``."""
    ratio = max(up, down)
    n = 2 * half_width * ratio + 1
    t = (np.arange(n) - (n - 1) / 2) / ratio
    return np.sinc(t) * np.kaiser(n, beta) * up / ratio


class StreamResampler:
    """``process(chunk)`` returns every 16 kHz sample the input so far determines; ``flush()`` the rest."""

    def __init__(self, rate: int, target: int = TARGET_RATE) -> None:
        if not isinstance(rate, int) or rate < 1000 or rate > 384_000:
            raise ValueError(f"sample rate must be an int in [1000, 384000] Hz, got {rate!r}")
        g = gcd(rate, target)
        self.up, self.down = target // g, rate // g
        self.rate, self.target = rate, target
        self.h = lowpass(self.up, self.down)
        self.taps = -(-len(self.h) // self.up)  # input samples one output sample can touch
        self._x = np.zeros(0, np.float64)  # input samples kept: the last ``taps`` plus the unused ones
        self._first = 0  # input index of self._x[0]
        self._m = 0  # next output index
        self._n = 0  # input samples received

    @property
    def delay_seconds(self) -> float:
        return (len(self.h) - 1) / 2 / (self.rate * self.up)

    def process(self, chunk: np.ndarray) -> np.ndarray:
        x = np.asarray(chunk, dtype=np.float64)
        if x.ndim != 1:
            raise ValueError(f"audio chunks must be 1-D, got shape {x.shape}")
        self._x = np.concatenate([self._x, x])
        self._n += len(x)
        return self._emit(last_input=self._n - 1)

    def flush(self) -> np.ndarray:
        """End of input: zeros after it, so the output covers the whole input duration."""
        pad = self.taps + 1
        self._x = np.concatenate([self._x, np.zeros(pad)])
        total = (self._n * self.up) // self.down  # output samples the input's duration holds
        return self._emit(last_input=self._n - 1 + pad, limit=total)

    def _emit(self, last_input: int, limit: int | None = None) -> np.ndarray:
        # output m needs input up to floor(m * down / up); emit every m whose input has arrived
        end = (last_input * self.up) // self.down + 1
        if limit is not None:
            end = min(end, limit)
        if end <= self._m:
            return np.zeros(0, np.float32)
        m = np.arange(self._m, end)
        pos = m * self.down  # position in the upsampled stream
        newest = pos // self.up  # newest input sample that contributes
        idx = newest[:, None] - np.arange(self.taps)[None, :]
        k = pos[:, None] - idx * self.up
        valid = (idx >= 0) & (k < len(self.h))
        local = np.clip(idx - self._first, 0, len(self._x) - 1)
        y = (np.where(valid, self._x[local] * self.h[np.minimum(k, len(self.h) - 1)], 0.0)).sum(axis=1)
        self._m = end
        keep_from = max(0, (end * self.down) // self.up - self.taps)  # oldest input a later output needs
        drop = keep_from - self._first
        if drop > 0:
            self._x, self._first = self._x[drop:], keep_from
        return y.astype(np.float32)
