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
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from avatarlm.ar_config import ARConfig
from avatarlm.backbone import Backbone
from avatarlm.backbone_graphs import StaticKVCache
from avatarlm.conditions.projector import ConditionBatch, ConditionEncoder
from avatarlm.generation import GenerationState, StepInput, frame_generator, group_indices, keyed_generator
from avatarlm.head import build_head
from avatarlm.head.graphed import GraphedSampler
from avatarlm.head.layers import TimestepEmbedding
from avatarlm.io import load_pretrained, save_model_folder
from avatarlm.sequence import SequenceLayout, build_layout, frame_causal_mask

__all__ = ["ARConfig", "ARModel", "GenerationState", "frame_generator", "keyed_generator"]

_HISTORY_STREAM = 0  # generator stream of the history noise
_HEAD_STREAM = 1  # generator stream of the head's sampling noise when no generator is passed


class ARModel(nn.Module):
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

    def history_latent(self, latent: torch.Tensor, frame: int, seed: int) -> tuple[torch.Tensor, float]:
        """Inference noise of history frame ``frame`` (B, T, C): sigma_inf with eps from (seed, frame), the
        same for every row; the reference frame 0 stays clean. Returns (noised latent, sigma)."""
        sigma = 0.0 if frame == 0 else self.config.inference_sigma
        if sigma == 0.0:
            return latent, 0.0
        g = frame_generator(seed, frame, _HISTORY_STREAM, latent.device)
        # one draw for all rows: the rows of a guided step share their history
        eps = torch.randn(latent.shape[1:], generator=g, device=latent.device, dtype=latent.dtype)
        return (1.0 - sigma) * latent + sigma * eps, sigma

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

    # -- generation ----------------------------------------------------------------------------------
    def start(
        self, reference_latent: torch.Tensor, seed: int = 0, static_capacity: int | None = None
    ) -> GenerationState:
        """A new run from the reference frame f_0 (B, T, C); ``seed`` fixes the history noise.
        ``static_capacity``: keep the backbone's cache in fixed buffers of that many tokens (doubled when
        full; ``backbone_graphs.py``), where a GPU replays each step as a CUDA graph (one run per cache: not
        for :meth:`step_many`)."""
        cfg = self.config
        shape = (cfg.tokens_per_frame, cfg.latent_channels)
        if reference_latent.dim() != 3 or reference_latent.shape[1:] != shape:
            raise ValueError(
                f"reference_latent must be (B, {shape[0]}, {shape[1]}), got {tuple(reference_latent.shape)}"
            )
        frame_generator(seed, 0, 0)  # validates the seed
        layers = self.backbone.config.num_layers
        cache = (
            self.backbone.new_cache() if static_capacity is None else StaticKVCache(layers, static_capacity)
        )
        return GenerationState(cache=cache, seed=seed, frame=0, latent=reference_latent)

    @torch.no_grad()
    def step(
        self,
        state: GenerationState,
        cond_tokens: torch.Tensor | None,
        generator: torch.Generator | None = None,
        guidance: float | None = None,
    ) -> torch.Tensor:
        """Append f_k (at the inference noise level) — after the condition group cond(k+1 .. k+n) when f_k
        opens a chunk of n frames — and sample f_{k+1} (B, T, C).

        ``cond_tokens``: at a chunk's first frame (every frame when n = 1) the chunk's conditions (B, n, k, D),
        or (B, k, D) when n = 1; None inside a chunk (its conditions came with the chunk). Without
        ``generator`` the head's noise comes from a generator seeded by (seed, k+1), so runs with the same
        seed agree. With ``guidance`` the batch is two rows over one history: row 0 the full condition, row 1
        the condition without what is guided (e.g. null audio); the head follows classifier-free guidance and
        both rows get its sample.
        """
        step = self._prepare_step(state, cond_tokens, guidance)
        hidden = self.backbone.step(step.embeds, step.positions, state.cache, step.mask)[:, -step.tokens :]
        return self._finish_step(state, step, hidden, generator)

    @torch.no_grad()
    def step_many(
        self,
        states: Sequence[GenerationState],
        cond_tokens: Sequence[torch.Tensor | None],
        guidance: Sequence[float | None] | None = None,
    ) -> list[torch.Tensor]:
        """:meth:`step` for several independent runs (e.g. a server's sessions) with one backbone pass per
        group of runs adding as many tokens (with n = 1 all of them) and one head pass per guidance value;
        each run's frame equals its own :meth:`step` (within float rounding) and advances only its state."""
        guidance = [None] * len(states) if guidance is None else list(guidance)
        if not len(states) == len(cond_tokens) == len(guidance):
            raise ValueError("step_many needs one condition and one guidance per state")
        steps = [self._prepare_step(s, c, g) for s, c, g in zip(states, cond_tokens, guidance, strict=True)]
        hidden: dict[int, torch.Tensor] = {}
        for group in group_indices([st.embeds.shape[1] for st in steps]):
            out = self.backbone.step_many(
                [steps[i].embeds for i in group],
                [steps[i].positions for i in group],
                [states[i].cache for i in group],
                [steps[i].mask for i in group],
            )
            for i, h in zip(group, out, strict=True):
                hidden[i] = h[:, -steps[i].tokens :]
        samples: dict[int, torch.Tensor] = {}
        for group in group_indices(guidance):
            g = guidance[group[0]]  # a guided run samples once, from row 0 (conditional) and row 1
            conds = [hidden[i][:1] if g is not None else hidden[i] for i in group]
            noise = torch.cat([self._head_noise(states[i], c) for i, c in zip(group, conds, strict=True)])
            free = None if g is None else torch.cat([hidden[i][1:] for i in group])
            drawn = self._sample_head(torch.cat(conds), noise, free, 1.0 if g is None else g)
            for i, x in zip(group, drawn.split([c.shape[0] for c in conds]), strict=True):
                samples[i] = x
        return [
            self._finish_step(states[i], steps[i], hidden[i], sample=samples[i]) for i in range(len(states))
        ]

    def set_inference_dtype(self, dtype: torch.dtype) -> None:
        """Run the backbone and the head in ``dtype`` (e.g. ``torch.bfloat16`` on a GPU: half the bytes a step
        reads); the condition encoders and the latent projections stay as they are, and the latents the
        model returns keep their dtype. For inference: training keeps fp32 weights under autocast."""
        if dtype not in (torch.float32, torch.bfloat16, torch.float16):
            raise ValueError(f"inference dtype must be float32, bfloat16 or float16, got {dtype}")
        self.backbone.to(dtype)
        self.head.to(dtype)
        if self._graphed is not None:
            self._graphed.clear()

    def use_cuda_graphs(self, enabled: bool = True) -> None:
        """Sample the head through CUDA graphs (``head/graphed.py``: one launch instead of hundreds per
        frame) in :meth:`step` and :meth:`step_many`, for CUDA tensors outside autocast; the CPU and autocast
        keep the plain loop. For inference: the graphs hold the weight tensors of the time they were recorded."""
        self._graphed = GraphedSampler(self.head) if enabled else None

    @property
    def uses_cuda_graphs(self) -> bool:
        return self._graphed is not None

    def _sample_head(
        self, cond: torch.Tensor, noise: torch.Tensor, free: torch.Tensor | None, guidance: float
    ) -> torch.Tensor:
        graphed = self._graphed
        if graphed is not None and cond.is_cuda and not torch.is_autocast_enabled("cuda"):
            return graphed(cond, noise, free, guidance)
        return self.head.sample(cond, noise=noise, unconditional=free, guidance=guidance)

    def _head_noise(self, state: GenerationState, cond: torch.Tensor) -> torch.Tensor:
        """The head's starting noise for the frame ``state`` samples next (keyed by its seed and index, so
        :meth:`step` and :meth:`step_many` draw alike)."""
        gen = frame_generator(state.seed, state.frame + 1, _HEAD_STREAM, cond.device)
        shape = (cond.shape[0], cond.shape[1], self.head.config.in_channels)
        return torch.randn(
            shape, generator=gen, device=cond.device, dtype=self.head.time_embed.fc1.weight.dtype
        )

    def _prepare_step(
        self, state: GenerationState, cond_tokens: torch.Tensor | None, guidance: float | None
    ) -> StepInput:
        """Check a step's inputs and build the tokens it appends, their positions and mask."""
        cfg = self.config
        n, k = cfg.chunk_size, state.frame
        b = state.latent.shape[0]
        if guidance is not None and b != 2:
            raise ValueError(f"a guided step takes 2 rows (conditional, unconditional), got {b}")
        opens_chunk = k % n == 0
        if opens_chunk:
            if cond_tokens is None:
                raise ValueError(f"frame {k} opens a chunk: give cond_tokens for frames {k + 1}..{k + n}")
            if cond_tokens.dim() == 3:
                cond_tokens = cond_tokens[:, None]
            self._check_cond(cond_tokens)
            if cond_tokens.shape[:2] != (b, n):
                raise ValueError(
                    f"cond_tokens must be (B={b}, {n}, k, D) for the chunk's {n} frame(s), "
                    f"got {tuple(cond_tokens.shape)}"
                )
        elif cond_tokens is not None:
            raise ValueError(
                f"frame {k} is inside a chunk of {n}: its conditions came with frame {k - k % n}"
            )
        latent, sigma = self.history_latent(state.latent, k, state.seed)
        sig = torch.full((b, 1), sigma, dtype=latent.dtype, device=latent.device)
        lat_tokens = self.embed_latents(latent[:, None], sig)[:, 0]
        kc, t = cfg.cond_tokens_per_frame, cfg.tokens_per_frame
        g = state.num_groups
        if opens_chunk:
            assert cond_tokens is not None
            conds = cond_tokens.reshape(b, n * kc, -1).to(lat_tokens.dtype)
            embeds = torch.cat([conds, lat_tokens], dim=1)
            groups = [g] * (n * kc) + [g + 1] * t
        else:
            embeds, groups = lat_tokens, [g] * t
        past = state.cache.length
        new_groups = torch.tensor(groups, device=embeds.device)
        key_groups = torch.cat([torch.full((past,), -1, device=embeds.device), new_groups])
        mask = frame_causal_mask(new_groups, key_groups, dtype=embeds.dtype)
        positions = torch.arange(past, past + embeds.shape[1], device=embeds.device)
        return StepInput(embeds, positions, mask, t, opens_chunk, guidance)

    def _finish_step(
        self,
        state: GenerationState,
        step: StepInput,
        hidden: torch.Tensor,
        generator: torch.Generator | None = None,
        sample: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Sample the next frame from the hidden states at f_k's tokens (unless ``sample`` is given) and
        advance ``state``."""
        cfg = self.config
        if sample is None:
            g = step.guidance
            cond, free = (hidden, None) if g is None else (hidden[:1], hidden[1:])
            guidance = 1.0 if g is None else g
            if generator is None:
                sample = self._sample_head(cond, self._head_noise(state, cond), free, guidance)
            else:
                sample = self.head.sample(cond, generator=generator, unconditional=free, guidance=guidance)
        if step.guidance is not None:
            sample = sample.expand(2, -1, -1)
        nxt = sample.to(state.latent.dtype)  # the head may run in bf16 (set_inference_dtype)
        if cfg.target == "delta":
            nxt = state.latent + cfg.delta_scale * nxt
        state.frame, state.latent, state.hidden = state.frame + 1, nxt, hidden
        state.num_groups += 2 if step.opens_chunk else 1
        return nxt
