"""A session's audio input: one or two live streams (the avatar's own voice; the partner's, for duplex
models), each at its own sample rate and in its own chunking, aligned sample by sample for the streaming
audio encoder.

Stream s's pieces are resampled to 16 kHz (one stateful resampler per stream and rate) and buffered; the
encoder is fed the stretch every stream has reached, so frame j's tokens exist once *all* streams reached
its look-ahead. ``advance`` fills a lagging stream with silence on the clock (a monologue's silent partner, a
stalled connection) and ``flush`` pads every stream to the longest before the encoder's own flush. The
encoder sees one aligned stream whatever the chunking, so its tokens are bit-identical for any chunking.
"""

from __future__ import annotations

import numpy as np
import torch

from avatarlm.conditions.audio import AudioStreamState
from avatarlm.conditions.resample import StreamResampler

SAMPLE_RATE = 16_000
STREAM_NAMES = ("self", "partner")


def as_float_audio(pcm: np.ndarray | torch.Tensor) -> torch.Tensor:
    """int16 or float PCM (n,) -> float32 in [-1, 1]."""
    x = pcm.detach().cpu().numpy() if isinstance(pcm, torch.Tensor) else np.asarray(pcm)
    if x.ndim != 1:
        raise ValueError(f"audio chunks must be 1-D (mono samples), got shape {x.shape}")
    if x.dtype == np.int16:
        return torch.from_numpy(x.astype(np.float32) / 32768.0)
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"audio samples must be int16 or float, got {x.dtype}")
    if x.size and not np.isfinite(x).all():
        raise ValueError("audio samples must be finite")
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


class AudioInput:
    """``push(stream, pcm, rate)`` / ``advance(seconds)`` / ``flush()`` each return the new audio tokens
    (1, k, S * T, d) of the frames that became complete."""

    def __init__(self, encoder_state: AudioStreamState) -> None:
        self.encoder = encoder_state
        self.streams = encoder_state.encoder.cfg.audio_streams
        self._rates: list[int | None] = [None] * self.streams
        self._resamplers: list[StreamResampler | None] = [None] * self.streams
        self._buffers = [torch.zeros(0) for _ in range(self.streams)]
        self.received = [0] * self.streams  # 16 kHz samples per stream, pushed or filled with silence
        self.silence_filled = [0] * self.streams

    def push(
        self, stream: int, pcm: np.ndarray | torch.Tensor, sample_rate: int = SAMPLE_RATE
    ) -> torch.Tensor:
        if not 0 <= stream < self.streams:
            raise ValueError(
                f"this model hears {self.streams} audio stream(s) ({', '.join(STREAM_NAMES[: self.streams])}); "
                f"{STREAM_NAMES[stream]} audio needs a duplex model"
            )
        audio = as_float_audio(pcm)
        rate = self._rates[stream]
        if rate is None:
            self._rates[stream] = sample_rate
            self._resamplers[stream] = None if sample_rate == SAMPLE_RATE else StreamResampler(sample_rate)
        elif sample_rate != rate:
            raise ValueError(
                f"this session's {STREAM_NAMES[stream]} audio is {rate} Hz; got a chunk at {sample_rate} Hz"
            )
        resampler = self._resamplers[stream]
        if resampler is not None:
            audio = torch.from_numpy(resampler.process(audio.numpy()))
        return self._append(stream, audio)

    def advance(self, seconds: float) -> torch.Tensor:
        """Every stream that has fewer than ``seconds`` of audio is filled with silence up to it."""
        target = int(seconds * SAMPLE_RATE)
        out = self._empty()
        for s in range(self.streams):
            behind = target - self.received[s]
            if behind > 0:
                self.silence_filled[s] += behind
                out = torch.cat([out, self._append(s, torch.zeros(behind))], dim=1)
        return out

    def flush(self) -> torch.Tensor:
        """End of input: resamplers drained, every stream padded with silence to the longest, then the
        encoder pads the look-ahead so every pushed 40 ms gets its frame."""
        parts = [self._empty()]
        for s, resampler in enumerate(self._resamplers):
            if resampler is not None:
                parts.append(self._append(s, torch.from_numpy(resampler.flush())))
        longest = max(self.received)
        for s in range(self.streams):
            parts.append(self._append(s, torch.zeros(longest - self.received[s])))
        parts.append(self.encoder.flush())
        return torch.cat(parts, dim=1)

    def _append(self, stream: int, audio: torch.Tensor) -> torch.Tensor:
        self._buffers[stream] = torch.cat([self._buffers[stream], audio])
        self.received[stream] += len(audio)
        ready = min(len(b) for b in self._buffers)
        if ready == 0:
            return self._empty()
        aligned = torch.stack([b[:ready] for b in self._buffers])[None]  # (1, S, n)
        self._buffers = [b[ready:] for b in self._buffers]
        return self.encoder.push(aligned)

    def _empty(self) -> torch.Tensor:
        return self.encoder.push(torch.zeros(1, self.streams, 0))
