"""Audio condition encoder: 16 kHz audio -> causal log-mel -> causal convs -> tokens per video frame.

Timing (25 fps, 640 samples per frame, look-ahead L frames). Audio sample 0 is at the timestamp of the frame
before the first target frame. Output position ``i`` is cond(i + 1): it drives the frame shown at
``t = (i + 1) * 40 ms`` and holds the audio of ``[t - 40 ms, t + L * 40 ms]``: exactly, it depends on samples
``s < (i + 1 + L) * 640`` and on nothing later (earlier samples within the receptive field also count). Its
four mel frames ``4i .. 4i + 3`` end at ``i * 640 + 160 ... (i + 1) * 640``; the frame-rate stack is causal,
and the tokens of position ``i`` are read at frame-rate step ``i + L``.

Two streams (duplex: 0 = self, 1 = partner) share the weights, get a stream embedding each and are
concatenated per frame: ``[self tokens][partner tokens]``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from avatarlm.conditions.causal_conv import CausalConvStack
from avatarlm.conditions.config import ConditionConfig
from avatarlm.conditions.mel import CONTEXT_SAMPLES, LogMel

NUM_STREAM_IDS = 2  # 0 = self, 1 = partner


class AudioEncoder(nn.Module):
    """``encode(audio)`` offline; ``stream()`` gives an :class:`AudioStreamState` with identical output."""

    def __init__(self, cfg: ConditionConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.ratio = cfg.mel_frames_per_frame
        self.log_mel = LogMel(cfg.n_mels)
        self.mel_in = nn.Linear(cfg.n_mels, cfg.audio_channels)
        self.mel_stack = CausalConvStack(cfg.audio_channels, cfg.audio_mel_layers, cfg.audio_kernel)
        self.merge = nn.Linear(cfg.audio_channels * self.ratio, cfg.audio_frame_channels)
        self.frame_stack = CausalConvStack(cfg.audio_frame_channels, cfg.audio_frame_layers, cfg.audio_kernel)
        self.out_norm = nn.LayerNorm(cfg.audio_frame_channels)
        self.out = nn.Linear(cfg.audio_frame_channels, cfg.audio_tokens * cfg.d_model)
        self.stream_embedding = nn.Embedding(NUM_STREAM_IDS, cfg.d_model)
        nn.init.normal_(self.stream_embedding.weight, std=0.02)

    @property
    def lookahead_samples(self) -> int:
        return self.cfg.lookahead_frames * self.cfg.samples_per_frame

    @property
    def receptive_field_frames(self) -> int:
        """40 ms steps that reach one token: position i sees steps i + L - (this - 1) ... i + L.

        The first mel window also reaches 15 ms further back.
        """
        mel = (self.mel_stack.receptive_field + self.ratio - 2) // self.ratio + 1
        return self.frame_stack.receptive_field + mel - 1

    # ------------------------------------------------------------------ shared pieces
    def _merge(self, x: torch.Tensor) -> torch.Tensor:
        """(N, r * k, C) mel-rate features -> (N, k, r * C): the r mel frames of each video frame."""
        n, m, c = x.shape
        return x.reshape(n, m // self.ratio, self.ratio * c)

    def _tokens(self, h: torch.Tensor, batch: int) -> torch.Tensor:
        """(B * S, k, C) frame-rate features -> (B, k, S * T, d) with stream embeddings."""
        cfg = self.cfg
        s = cfg.audio_streams
        y = self.out(self.out_norm(h))  # (B*S, k, T*d)
        y = y.reshape(batch, s, -1, cfg.audio_tokens, cfg.d_model)
        y = y + self.stream_embedding.weight[:s, None, None, :]
        return y.transpose(1, 2).reshape(batch, -1, s * cfg.audio_tokens, cfg.d_model)

    def _as_streams(self, audio: torch.Tensor | np.ndarray, batch: int | None = None) -> torch.Tensor:
        """Accept (B, S, N), (B * S, N) or (N,) and return float (B, S, N)."""
        s = self.cfg.audio_streams
        x = torch.as_tensor(audio, dtype=torch.float32, device=self.mel_in.weight.device)
        if x.ndim == 1:
            x = x[None, None]
        elif x.ndim == 2:
            if x.shape[0] % s or (batch is not None and x.shape[0] != batch * s):
                raise ValueError(f"audio of shape {tuple(x.shape)}: rows must be batch x {s} stream(s)")
            x = x.reshape(-1, s, x.shape[-1])
        if x.ndim != 3 or x.shape[1] != s or (batch is not None and x.shape[0] != batch):
            raise ValueError(
                f"audio of shape {tuple(x.shape)} does not match (batch, streams={s}, samples)"
                + ("" if batch is None else f" with batch={batch}")
            )
        return x

    # ------------------------------------------------------------------ offline
    def encode(self, audio: torch.Tensor | np.ndarray, num_frames: int | None = None) -> torch.Tensor:
        """Tokens (B, F, streams * audio_tokens, d) for audio (B, S, N) / (B * S, N) / (N,).

        F = ``num_frames`` or N // 640. The audio is cut or zero-padded to (F + L) * 640 samples, so the
        last L positions look ahead into silence, exactly as :meth:`AudioStreamState.flush` does.
        """
        x = self._as_streams(audio)
        b, s, n = x.shape
        spf = self.cfg.samples_per_frame
        frames = n // spf if num_frames is None else num_frames
        if frames < 0:
            raise ValueError(f"num_frames must be >= 0, got {num_frames}")
        if frames == 0:
            return x.new_zeros(b, 0, s * self.cfg.audio_tokens, self.cfg.d_model)
        total = (frames + self.cfg.lookahead_frames) * spf
        x = nn.functional.pad(x[..., :total], (0, max(0, total - n))).reshape(b * s, total)
        mel = self.log_mel(x)  # (B*S, M, n_mels)
        h = self.frame_stack(self.merge(self._merge(self.mel_stack(self.mel_in(mel)))))
        return self._tokens(h[:, self.cfg.lookahead_frames :], b)

    def forward(self, audio: torch.Tensor | np.ndarray, num_frames: int | None = None) -> torch.Tensor:
        return self.encode(audio, num_frames)

    # ------------------------------------------------------------------ streaming
    def stream(self, batch_size: int = 1) -> AudioStreamState:
        """A fresh streaming state (start of a session)."""
        return AudioStreamState(self, batch_size)

    @torch.no_grad()
    def encode_exact(self, audio: torch.Tensor | np.ndarray, num_frames: int | None = None) -> torch.Tensor:
        """Like :meth:`encode` but computed step by step: bit-identical to any streaming of ``audio``."""
        x = self._as_streams(audio)
        spf = self.cfg.samples_per_frame
        frames = x.shape[-1] // spf if num_frames is None else num_frames
        if frames < 0:
            raise ValueError(f"num_frames must be >= 0, got {num_frames}")
        total = (frames + self.cfg.lookahead_frames) * spf
        x = nn.functional.pad(x[..., :total], (0, max(0, total - x.shape[-1])))
        return self.stream(x.shape[0]).push(x)


class AudioStreamState:
    """Streaming audio encoding: ``push(samples)`` returns the tokens of every frame that became available.

    Samples are buffered and the encoder runs once per complete 40 ms of audio with the same tensor shapes
    every time, so the tokens are bit-identical for any chunking of the input (and to
    :meth:`AudioEncoder.encode_exact`); the batched :meth:`AudioEncoder.encode` agrees within ~1e-6
    (matrix products of other shapes round differently). Position i becomes available once sample
    (i + 1 + L) * 640 - 1 has arrived.
    """

    def __init__(self, encoder: AudioEncoder, batch_size: int = 1) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.encoder = encoder
        self.batch_size = batch_size
        rows = batch_size * encoder.cfg.audio_streams
        like = encoder.mel_in.weight
        self._samples = like.new_zeros(rows, CONTEXT_SAMPLES)  # mel context + samples not yet encoded
        self._mel_caches = encoder.mel_stack.initial_cache(rows, like)
        self._frame_caches = encoder.frame_stack.initial_cache(rows, like)
        self._steps = 0  # 40 ms steps encoded
        self.samples_pushed = 0
        self.frames_emitted = 0
        self.finished = False

    @torch.no_grad()
    def push(self, samples: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Append samples (B, S, n) / (B * S, n) / (n,); return new tokens (B, k, S * T, d), k >= 0."""
        if self.finished:
            raise ValueError("this audio stream was flushed; start a new one with AudioEncoder.stream()")
        enc = self.encoder
        x = enc._as_streams(samples, self.batch_size)
        if x.shape[-1] == 0:
            return self._empty()
        self._samples = torch.cat([self._samples, x.reshape(-1, x.shape[-1])], dim=1)
        self.samples_pushed += x.shape[-1]
        spf = enc.cfg.samples_per_frame
        out = []
        while self._samples.shape[1] >= CONTEXT_SAMPLES + spf:
            h = self._step(self._samples[:, : CONTEXT_SAMPLES + spf])
            self._samples = self._samples[:, spf:]
            self._steps += 1
            if self._steps > enc.cfg.lookahead_frames:  # the first L steps only serve as look-ahead
                out.append(enc._tokens(h, self.batch_size))
        if not out:
            return self._empty()
        tokens = torch.cat(out, dim=1)
        self.frames_emitted += tokens.shape[1]
        return tokens

    def _step(self, samples: torch.Tensor) -> torch.Tensor:
        """One 40 ms step: (rows, CONTEXT_SAMPLES + 640) samples -> (rows, 1, C) frame-rate features."""
        enc = self.encoder
        mel = enc.log_mel.frames_from_context(samples)
        h = enc.mel_stack.step(enc.mel_in(mel), self._mel_caches)
        return enc.frame_stack.step(enc.merge(enc._merge(h)), self._frame_caches)

    def flush(self) -> torch.Tensor:
        """End of input: pad with silence so every complete 40 ms of audio pushed gets its tokens."""
        spf = self.encoder.cfg.samples_per_frame
        target = (self.samples_pushed // spf + self.encoder.cfg.lookahead_frames) * spf
        out = self.push(self._samples.new_zeros(self._samples.shape[0], max(0, target - self.samples_pushed)))
        self.finished = True
        return out

    def _empty(self) -> torch.Tensor:
        cfg = self.encoder.cfg
        return self._samples.new_zeros(self.batch_size, 0, cfg.audio_streams * cfg.audio_tokens, cfg.d_model)
