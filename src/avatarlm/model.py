"""The autoregressive video model: backbone over condition and latent tokens, flow head per next frame.

Training is teacher forcing over a whole clip (:meth:`ARModel.loss`); generation appends one frame at a
time to the backbone's key/value cache (:meth:`ARModel.start`, :meth:`ARModel.step`). The token layout is
:mod:`avatarlm.sequence`. The model owns its condition encoders (``model.conditions``, a
:class:`~avatarlm.conditions.ConditionEncoder`), but ``loss`` and ``step`` take conditions already encoded
to the backbone width, so streaming callers can encode them incrementally.

Conditions: ``cond(j)`` drives frame j. Chunk c's condition group holds ``cond(c*n+1 .. c*n+n)``. Frames
whose condition is not given (only ever the last ones, whose hidden states predict nothing) get zeros.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from avatarlm.ar_config import ARConfig
from avatarlm.backbone import Backbone
from avatarlm.conditions.projector import ConditionBatch, ConditionEncoder
from avatarlm.generation import GenerationState, frame_generator, keyed_generator
from avatarlm.head import build_head
from avatarlm.head.graphed import GraphedSampler
from avatarlm.head.layers import TimestepEmbedding
from avatarlm.io import load_pretrained, save_model_folder
from avatarlm.model_generation import ARGeneration
from avatarlm.sequence import SequenceLayout, build_layout

__all__ = ["ARConfig", "ARModel", "GenerationState", "frame_generator", "keyed_generator"]


class ARModel(ARGeneration):
    """Latents (B, F, T, C) and encoded conditions (B, F or F-1, k, D) in, head loss or next frames out."""

    def __init__(self, config: ARConfig) -> None:
        super().__init__()
        self.config = config
        d = config.hidden_size
        self.conditions = ConditionEncoder(config.conditions)
        self.backbone = Backbone(config.backbone)
        self.head = build_head(config.head)
        self._graphed: GraphedSampler | None = None  # see use_cuda_graphs
        self.latent_proj = nn.Linear(config.latent_channels, d)
        self.slot_embedding = nn.Parameter(0.02 * torch.randn(config.tokens_per_frame, d))
        self.sigma_embedding = TimestepEmbedding(d, config.sigma_frequency_dim)
        nn.init.zeros_(self.sigma_embedding.fc2.weight)  # starts as a constant; learns the noise level
        nn.init.zeros_(self.sigma_embedding.fc2.bias)
        self.face_probe = (
            nn.Linear(d, len(config.face_probe_fields)) if config.face_probe_weight > 0 else None
        )  # training-only auxiliary read-out, see ARConfig.face_probe_weight

    # -- folders -------------------------------------------------------------------------------------
    def save_pretrained(self, folder: str | os.PathLike[str], dtype: torch.dtype | None = None) -> Path:
        """Write ``config.json`` + ``model.safetensors`` (``dtype=torch.float16`` halves the folder)."""
        return save_model_folder(folder, self.config.to_dict(), self.state_dict(), dtype=dtype)

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike[str]) -> ARModel:
        """Load a folder written by :meth:`save_pretrained`, upcast to fp32, in eval mode."""
        return load_pretrained(folder, ARConfig.kind, lambda c: cls(ARConfig.from_dict(c)))

    def encode_conditions(
        self, batch: ConditionBatch, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Condition tokens (B, F, k, D) of ``batch`` (modality dropout applies in training mode)."""
        return self.conditions(batch, generator=generator)

    # -- building blocks -----------------------------------------------------------------------------
    def layout(self, num_frames: int) -> SequenceLayout:
        cfg = self.config
        return build_layout(num_frames, cfg.chunk_size, cfg.tokens_per_frame, cfg.cond_tokens_per_frame)

    def embed_latents(self, latents: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
        """(B, F, T, C) latents at noise levels (B, F) -> (B, F, T, D) tokens."""
        b, f = latents.shape[:2]
        sig = self.sigma_embedding(sigmas.reshape(-1)).view(b, f, 1, -1)
        return self.latent_proj(latents) + self.slot_embedding + sig

    def corrupt_history(
        self, latents: torch.Tensor, generator: torch.Generator | None = None, sigma: float | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """History noise ``(1 - s) x + s eps``, s = 0 for frame 0: in training s ~ U[0, sigma_max] per frame
        (0 everywhere without noise injection); with ``sigma``, that level on every other frame (e.g. the
        inference level, for a teacher-forced pass that reads history as a session does). Returns (history
        (B, F, T, C), sigmas (B, F))."""
        b, f = latents.shape[:2]
        dev = latents.device
        if sigma is None:
            u = torch.rand(b, f, generator=generator, device=dev, dtype=latents.dtype)
            sigmas = u * (self.config.sigma_max if self.config.noise_injection else 0.0)
        else:
            sigmas = torch.full((b, f), sigma, device=dev, dtype=latents.dtype)
        eps = torch.randn(latents.shape, generator=generator, device=dev, dtype=latents.dtype)
        sigmas[:, 0] = 0.0
        s = sigmas[:, :, None, None]
        return (1.0 - s) * latents + s * eps, sigmas

    def _check_cond(self, cond: torch.Tensor, name: str = "cond_tokens") -> None:
        k, d = self.config.cond_tokens_per_frame, self.config.hidden_size
        if cond.dim() != 4 or cond.shape[2:] != (k, d):
            raise ValueError(f"{name} must be (B, frames, {k}, {d}), got {tuple(cond.shape)}")

    def hidden_states(
        self, history: torch.Tensor, sigmas: torch.Tensor, cond: torch.Tensor
    ) -> tuple[torch.Tensor, SequenceLayout]:
        """Full-sequence backbone pass over history frames f_0..f_{F-1} (B, F, T, C), already at noise
        levels ``sigmas`` (B, F), with ``cond`` (B, J, k, D) where entry j-1 is cond(j), J >= F-1.
        Returns hidden states (B, L, D) and the layout."""
        cfg = self.config
        b, f = history.shape[:2]
        if history.dim() != 4 or history.shape[2:] != (cfg.tokens_per_frame, cfg.latent_channels):
            raise ValueError(
                f"latents must be (B, F, {cfg.tokens_per_frame}, {cfg.latent_channels}), "
                f"got {tuple(history.shape)}"
            )
        self._check_cond(cond)
        layout = self.layout(f)
        j_max = int(layout.cond_frames.max()) if layout.cond_frames.numel() else 0
        if cond.shape[0] != b or not f - 1 <= cond.shape[1] <= j_max:
            raise ValueError(
                f"cond must hold cond(1..J) with {f - 1} <= J <= {j_max} for {f} frames and batch {b}, "
                f"got {tuple(cond.shape)}"
            )
        embeds = history.new_zeros(b, layout.length, cfg.hidden_size)
        tokens = self.embed_latents(history, sigmas)
        dev = embeds.device
        rows = layout.latent_index.reshape(-1).to(dev)
        embeds[:, rows] = tokens[:, layout.latent_frames.to(dev)].flatten(1, 2)
        given = layout.cond_frames <= cond.shape[1]
        if given.any():
            rows = layout.cond_index[given].reshape(-1).to(dev)
            embeds[:, rows] = cond[:, (layout.cond_frames[given] - 1).to(dev)].to(embeds.dtype).flatten(1, 2)
        mask = layout.attention_mask(embeds.dtype).to(embeds.device)
        hidden = self.backbone(embeds, layout.position_ids.to(embeds.device), mask)
        return hidden, layout

    # -- training ------------------------------------------------------------------------------------
    def loss(
        self,
        latents: torch.Tensor,
        cond_tokens: torch.Tensor,
        generator: torch.Generator | None = None,
        frame_weight: torch.Tensor | None = None,
        face_targets: torch.Tensor | None = None,
        history: torch.Tensor | None = None,
        history_pull: float = 1.0,
        loss_directions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Teacher-forcing head loss (a scalar) of clip latents (B, F, T, C), F >= 2, normalised.

        ``cond_tokens`` (B, F, k, D) is indexed by frame (entry j = cond(j); entry 0 is unused: f_0 has no
        condition); (B, F-1, k, D) holds cond(1..F-1). History frames are corrupted (see
        :meth:`corrupt_history`); the hidden states at f_k condition the head on the clean f_{k+1} (or on
        its change from the clean f_k, see ``ARConfig.target``). ``frame_weight`` (B, F-1) weights the
        loss of each predicted frame f_1..f_{F-1} (0 skips one). ``face_targets`` (B, F-1, P) is the face
        state of f_1..f_{F-1} (``ARConfig.face_probe_fields``); with ``face_probe_weight`` > 0 it is required.
        ``history`` (B, F, T, C): the frames the model reads instead of ``latents`` (e.g. its own predictions,
        ``trainer/own_history.py``); the targets stay ``latents``' frames, and a "delta" target is the true
        change plus ``history_pull`` times the history frame's error (1: all of it in one step; less: a share
        per frame, so that far-off history is pulled back gradually and the targets stay in scale).
        ``loss_directions`` (K, T, C): latent directions whose error counts more (``FlowHead.loss``'s
        ``directions``; ``trainer/pose_loss.py``).
        """
        if latents.dim() != 4 or latents.shape[1] < 2:
            raise ValueError(f"latents must be (B, F, T, C) with F >= 2, got {tuple(latents.shape)}")
        f = latents.shape[1]
        self._check_cond(cond_tokens)
        if cond_tokens.shape[1] == f:
            cond_tokens = cond_tokens[:, 1:]
        elif cond_tokens.shape[1] != f - 1:
            raise ValueError(f"cond_tokens must cover {f} or {f - 1} frames, got {tuple(cond_tokens.shape)}")
        if history is None:
            history = latents
        elif history.shape != latents.shape:
            raise ValueError(f"history must match latents {tuple(latents.shape)}, got {tuple(history.shape)}")
        noised, sigmas = self.corrupt_history(history, generator)
        hidden, layout = self.hidden_states(noised, sigmas, cond_tokens)
        source, targets = layout.prediction_index()
        b, t = latents.shape[0], self.config.tokens_per_frame
        cond = hidden[:, source.to(hidden.device)].reshape(-1, t, hidden.shape[-1])
        idx = targets.to(latents.device)
        target = latents[:, idx]
        if self.config.target == "delta":
            base = torch.lerp(latents[:, idx - 1], history[:, idx - 1], history_pull)
            target = (target - base) / self.config.delta_scale
        mask = None
        if frame_weight is not None:
            if frame_weight.shape != (b, f - 1):
                raise ValueError(f"frame_weight must be (B, {f - 1}), got {tuple(frame_weight.shape)}")
            mask = frame_weight.to(latents.device)[:, idx - 1].reshape(-1)
        loss = self.head.loss(
            target.reshape(b * targets.numel(), t, -1),
            cond,
            mask=mask,
            generator=generator,
            channel_weight=self.config.channel_weight(),
            directions=loss_directions,
        )
        if self.face_probe is None:
            return loss
        p = len(self.config.face_probe_fields)
        if face_targets is None or face_targets.shape != (b, f - 1, p):
            got = None if face_targets is None else tuple(face_targets.shape)
            raise ValueError(
                f"face_probe_weight > 0 needs face_targets of shape (B, {f - 1}, {p}), got {got}"
            )
        guess = self.face_probe(cond.reshape(b, targets.numel(), t, -1).mean(dim=2))
        truth = face_targets.to(guess.device, guess.dtype)[:, idx - 1]
        return loss + self.config.face_probe_weight * nn.functional.mse_loss(guess, truth)
