"""Causal-framed log-mel features at 16 kHz (10 ms hop, 25 ms window) and the one mel filterbank.

Framing is causal: mel frame ``m`` is the Hann-windowed 25 ms ending at sample ``(m + 1) * HOP_LENGTH``,
i.e. samples ``[(m + 1) * 160 - 400, (m + 1) * 160)``, with zeros before sample 0. A signal of ``N``
samples therefore gives ``N // 160`` frames, and frame ``m`` never reads a sample at or after
``(m + 1) * 160``. Frames depend only on their own samples, so a stream can compute them as samples arrive
(:meth:`LogMel.frames_from_context`, see ``conditions/audio.py``).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

SAMPLE_RATE = 16_000
HOP_LENGTH = 160  # 10 ms
WIN_LENGTH = 400  # 25 ms
N_FFT = 512  # the 400-sample window is zero-padded to 512 (31.25 Hz bins: no empty filter at 80 mels)
N_MELS = 80
LOG_FLOOR = 1e-6
# Fixed affine normalisation of ln(mel + LOG_FLOOR), roughly zero-mean / unit-variance on speech at
# peak amplitude ~0.5; it is per frame, so it stays causal.
LOG_MEL_SHIFT = -4.0
LOG_MEL_SCALE = 4.0
# torch.stft centres the window inside each n_fft frame; pad so the window ends where stated above.
CONTEXT_SAMPLES = (N_FFT + WIN_LENGTH) // 2 - HOP_LENGTH  # 296 samples needed before the first hop
_RIGHT_PAD = (N_FFT - WIN_LENGTH) // 2  # 56 zero-weighted samples after the window

_MEL_CACHE: dict[tuple[int, int, int, float, float | None], np.ndarray] = {}


def _hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


def mel_filterbank(
    n_mels: int, n_fft: int, sample_rate: int, f_min: float = 20.0, f_max: float | None = None
) -> np.ndarray:
    """Triangular filters on the HTK mel scale, peak 1, shape (n_mels, n_fft // 2 + 1), float64."""
    f_max = sample_rate / 2 if f_max is None else f_max
    if n_mels < 1 or n_fft < 2 or not 0 <= f_min < f_max <= sample_rate / 2:
        raise ValueError(
            f"bad mel filterbank n_mels={n_mels}, n_fft={n_fft}, f_min={f_min}, f_max={f_max} "
            f"at sample_rate={sample_rate}"
        )
    key = (n_mels, n_fft, sample_rate, f_min, f_max)
    if key not in _MEL_CACHE:
        edges = _mel_to_hz(np.linspace(_hz_to_mel(f_min), _hz_to_mel(f_max), n_mels + 2))
        freqs = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
        lower, center, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
        rising = (freqs[None] - lower) / (center - lower)
        falling = (upper - freqs[None]) / (upper - center)
        _MEL_CACHE[key] = np.maximum(0.0, np.minimum(rising, falling))
    return _MEL_CACHE[key]


class LogMel(nn.Module):
    """Audio (..., N) at 16 kHz -> normalised log-mel (..., N // 160, n_mels), causal framing."""

    filterbank: torch.Tensor
    window: torch.Tensor

    def __init__(self, n_mels: int = N_MELS) -> None:
        super().__init__()
        self.n_mels = n_mels
        fb = torch.from_numpy(mel_filterbank(n_mels, N_FFT, SAMPLE_RATE)).float()
        self.register_buffer("filterbank", fb.T.contiguous(), persistent=False)  # (bins, n_mels)
        self.register_buffer("window", torch.hann_window(WIN_LENGTH), persistent=False)

    def frames_from_context(self, x: torch.Tensor) -> torch.Tensor:
        """k frames of ``x`` (..., CONTEXT_SAMPLES + k * HOP_LENGTH); the first CONTEXT_SAMPLES are past."""
        lead = x.shape[:-1]
        x = torch.nn.functional.pad(x.reshape(-1, x.shape[-1]), (0, _RIGHT_PAD))
        spec = torch.stft(
            x,
            N_FFT,
            hop_length=HOP_LENGTH,
            win_length=WIN_LENGTH,
            window=self.window,
            center=False,
            return_complex=True,
        )
        power = spec.real.square() + spec.imag.square()  # (B, bins, k)
        mel = power.transpose(1, 2) @ self.filterbank
        out = (torch.log(mel + LOG_FLOOR) - LOG_MEL_SHIFT) / LOG_MEL_SCALE
        return out.reshape(*lead, out.shape[-2], self.n_mels)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        if audio.shape[-1] < HOP_LENGTH:
            raise ValueError(f"need at least {HOP_LENGTH} samples for one mel frame, got {audio.shape[-1]}")
        usable = audio.shape[-1] // HOP_LENGTH * HOP_LENGTH
        return self.frames_from_context(torch.nn.functional.pad(audio[..., :usable], (CONTEXT_SAMPLES, 0)))
