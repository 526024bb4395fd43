"""The generation half of :class:`~avatarlm.model.ARModel`: start a run from a reference frame, append a
frame to the backbone's key/value cache and sample the next one, for one run (:meth:`ARGeneration.step`) or
several at once (:meth:`ARGeneration.step_many`); the inference dtype and CUDA graphs of those steps.

Every draw comes from a generator keyed by the run's seed and the frame (``generation.py``), so a session,
an offline run and a batch of sessions agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import nn

from avatarlm.ar_config import ARConfig
from avatarlm.backbone import Backbone
from avatarlm.backbone_graphs import StaticKVCache
from avatarlm.generation import GenerationState, StepInput, frame_generator, group_indices
from avatarlm.head import FlowHead
from avatarlm.head.graphed import GraphedSampler
from avatarlm.sequence import frame_causal_mask

HISTORY_STREAM = 0  # generator stream of the history noise
HEAD_STREAM = 1  # generator stream of the head's sampling noise when no generator is passed


class ARGeneration(nn.Module):
    """Generation steps over the parts :class:`~avatarlm.model.ARModel` builds (config, backbone, head)."""

    config: ARConfig
    backbone: Backbone
    head: FlowHead
    _graphed: GraphedSampler | None

    if TYPE_CHECKING:  # building blocks ARModel defines

        def embed_latents(self, latents: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor: ...

        def _check_cond(self, cond: torch.Tensor, name: str = "cond_tokens") -> None: ...

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
        gen = frame_generator(state.seed, state.frame + 1, HEAD_STREAM, cond.device)
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

    def history_latent(self, latent: torch.Tensor, frame: int, seed: int) -> tuple[torch.Tensor, float]:
        """Inference noise of history frame ``frame`` (B, T, C): sigma_inf with eps from (seed, frame), the
        same for every row; the reference frame 0 stays clean. Returns (noised latent, sigma)."""
        sigma = 0.0 if frame == 0 else self.config.inference_sigma
        if sigma == 0.0:
            return latent, 0.0
        g = frame_generator(seed, frame, HISTORY_STREAM, latent.device)
        # one draw for all rows: the rows of a guided step share their history
        eps = torch.randn(latent.shape[1:], generator=g, device=latent.device, dtype=latent.dtype)
        return (1.0 - sigma) * latent + sigma * eps, sigma
