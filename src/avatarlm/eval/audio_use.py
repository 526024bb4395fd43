"""`avatarlm eval audio-use`: does the AR model use the audio (or, with ``--condition``, the pose or the
instructions), and on faces it has not seen?

Teacher forcing on the true latents of whole clips (no free-running drift): the hidden states at f_k,
with every history frame at the inference noise level, condition the head on f_{k+1}. The head's mean
prediction of the change f_{k+1} - f_k (over ``draws`` samples) is correlated, token by token, with the true
change — once with the clip's audio and once with the audio replaced by the learned null tokens. The
difference is what the audio buys. Training and held-out splits side by side show memorised identities as
a gap: a model that lip-syncs only the faces it was trained on scores on ``train`` and not on ``test``.
On an autoencoder with mouth channels the same is also reported over those channels alone, where the audio
should show most.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from avatarlm.autoencoder.latent_cache import encode_frames
from avatarlm.autoencoder.tokens import grid_to_tokens
from avatarlm.data.shards import iter_samples
from avatarlm.pipeline.folder import Pipeline
from avatarlm.trainer.ar_data import clip_from_sample, stack_conditions, window_conditions


@dataclass
class AudioUseReport:
    split: str
    clips: int
    frames: int
    with_audio: np.ndarray  # (T,) correlation per token, mean over clips
    without_audio: np.ndarray  # (T,)
    moving: np.ndarray  # (T,) bool: the quarter of tokens that change most (the face, the mouth)
    # the same over the mouth channels alone (models on an autoencoder with mouth channels), else None
    mouth_with: np.ndarray | None = None
    mouth_without: np.ndarray | None = None

    @property
    def gain(self) -> float:
        """Mean over the moving tokens of (with audio - without audio)."""
        return float((self.with_audio - self.without_audio)[self.moving].mean())

    @property
    def mouth_gain(self) -> float | None:
        """The gain over the mouth channels of the moving tokens, or None without mouth channels."""
        if self.mouth_with is None or self.mouth_without is None:
            return None
        return float((self.mouth_with - self.mouth_without)[self.moving].mean())

    def row(self) -> str:
        m = self.moving
        line = (
            f"{self.split:>6} {self.clips:>5} {self.frames:>6}   {self.with_audio[m].mean():+.3f}      "
            f"{self.without_audio[m].mean():+.3f}      {self.gain:+.3f}"
        )
        if self.mouth_with is not None and self.mouth_without is not None:
            line += (
                f"      {self.mouth_with[m].mean():+.3f}      {self.mouth_without[m].mean():+.3f}      "
                f"{self.mouth_gain:+.3f}"
            )
        return line


def token_correlations(predicted: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Pearson correlation per token of (N, T, C) arrays, over frames and channels -> (T,)."""
    if predicted.shape != true.shape or predicted.ndim != 3:
        raise ValueError(f"need two (N, T, C) arrays of one shape, got {predicted.shape} and {true.shape}")
    p = predicted - predicted.mean(axis=(0, 2), keepdims=True)
    t = true - true.mean(axis=(0, 2), keepdims=True)
    den = np.sqrt((p**2).sum(axis=(0, 2)) * (t**2).sum(axis=(0, 2)))
    return np.where(den > 0, (p * t).sum(axis=(0, 2)) / np.maximum(den, 1e-12), 0.0)


@torch.no_grad()
def teacher_forced_hidden(
    pipe: Pipeline, latents: torch.Tensor, cond: torch.Tensor, seed: int = 0
) -> torch.Tensor:
    """Hidden states (N-1, T, D) that predict f_1..f_{N-1} of clip latents (N, T, C), history at the
    inference noise level."""
    model = pipe.model.eval()
    noisy, sigmas = [], []
    for k in range(latents.shape[0]):
        x, s = model.history_latent(latents[k][None], k, seed)
        noisy.append(x[0])
        sigmas.append(s)
    history = torch.stack(noisy)[None]
    hidden, layout = model.hidden_states(history, torch.tensor([sigmas], dtype=latents.dtype), cond)
    source, _ = layout.prediction_index()
    return hidden[:, source].reshape(-1, model.config.tokens_per_frame, hidden.shape[-1])


@torch.no_grad()
def predicted_changes(
    pipe: Pipeline,
    latents: torch.Tensor,
    hidden: torch.Tensor,
    draws: int = 4,
    seed: int = 0,
    unconditional: torch.Tensor | None = None,
    guidance: float = 1.0,
) -> torch.Tensor:
    """Mean predicted change f_{k+1} - f_k (N-1, T, C) from teacher-forced ``hidden`` (N-1, T, D), optionally
    guided away from ``unconditional`` hidden states."""
    model = pipe.model
    g = torch.Generator().manual_seed(seed)
    mean = torch.stack(
        [
            model.head.sample(hidden, generator=g, unconditional=unconditional, guidance=guidance)
            for _ in range(draws)
        ]
    ).mean(0)
    if model.config.target == "delta":
        return mean * model.config.delta_scale
    return mean - latents[:-1]


def audio_use(
    pipe: Pipeline,
    data: str | os.PathLike[str],
    split: str,
    max_clips: int = 4,
    max_frames: int = 200,
    draws: int = 4,
    guidance: float = 1.0,
    condition: str = "audio",
) -> AudioUseReport:
    """Score up to ``max_clips`` clips of ``split`` (their first ``max_frames`` frames); with ``guidance``
    != 1 the "with audio" prediction is guided away from the null-audio one (the session's lip strength).
    ``condition``: the modality compared with its null tokens ("audio"; "pose" or "text" ask the same of
    the head pose and the instructions)."""
    model, ae = pipe.model.eval(), pipe.autoencoder.eval()
    cfg = model.config.conditions
    if condition not in cfg.modalities:
        raise ValueError(f"the model has no {condition} condition (it takes {', '.join(cfg.modalities)})")
    k = model.config.mouth_channels
    names = ("with", "without", "mouth_with", "mouth_without")
    sums = {name: np.zeros(model.config.tokens_per_frame) for name in names}
    motion = np.zeros(model.config.tokens_per_frame)
    clips = frames = 0
    for sample in iter_samples(Path(data), split):
        clip = clip_from_sample(sample)
        n = min(clip.n_frames, max_frames)
        with torch.no_grad():
            latents = torch.from_numpy(grid_to_tokens(encode_frames(ae, sample.frames[:n].copy())))
        true = (latents[1:] - latents[:-1]).numpy()
        parts = window_conditions(
            clip, 1, n - 1, 0, cfg.audio_streams, cfg.samples_per_frame, cfg.lookahead_frames
        )
        hidden = {}
        for name, modalities in (
            ("with", cfg.modalities),
            ("without", [m for m in cfg.modalities if m != condition]),
        ):
            with torch.no_grad():
                cond = model.encode_conditions(stack_conditions([parts], modalities, 0))
            hidden[name] = teacher_forced_hidden(pipe, latents, cond)
        guided = predicted_changes(pipe, latents, hidden["with"], draws, 0, hidden["without"], guidance)
        plain = predicted_changes(pipe, latents, hidden["without"], draws)
        sums["with"] += token_correlations(guided.numpy(), true)
        sums["without"] += token_correlations(plain.numpy(), true)
        if k:
            sums["mouth_with"] += token_correlations(guided[..., :k].numpy(), true[..., :k])
            sums["mouth_without"] += token_correlations(plain[..., :k].numpy(), true[..., :k])
        motion += np.sqrt((true**2).mean(axis=(0, 2)))
        clips += 1
        frames += n - 1
        if clips >= max_clips:
            break
    if not clips:
        raise ValueError(f"no clips in split {split!r} of {data}")
    moving = motion >= np.quantile(motion, 0.75)
    mean = {name: v / clips for name, v in sums.items()}
    return AudioUseReport(
        split,
        clips,
        frames,
        mean["with"],
        mean["without"],
        moving,
        mean["mouth_with"] if k else None,
        mean["mouth_without"] if k else None,
    )
