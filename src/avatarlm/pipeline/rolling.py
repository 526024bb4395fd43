"""The rolling window: bounded memory for unbounded sessions (DESIGN.md, "Positions and the rolling window").

A session keeps the reference f_0 and the last frames it generated. When the window is full, the oldest
frames are dropped and the backbone cache is re-encoded from scratch in one pass, with positions restarting
at 0, as the sequence a training window with a reference from elsewhere in the clip holds:

    [cond(j_s)][f_0][cond(j_s+1)][f_{j_s}] ... [cond(j_e)][f_{j_e-1}]    (then the next step appends
                                                                         [cond(j_e+1)][f_{j_e}])

so after a roll the model sees exactly what it was trained on. History frames keep the inference noise they
had when first appended (it is keyed by (seed, frame index)). Re-encoding W frames costs one backbone pass
per roll; evicting E frames at a time spreads it over E steps.

The cheap alternative (:func:`evict_frames`, DESIGN.md's "re-rotate its cached keys") drops the oldest frames'
entries from the cache and moves the rest back by re-rotating their keys: no backbone pass, but the kept
frames' entries above the first layer still carry what they attended to in the dropped frames, and f_0 keeps
cond(1) before it — close to the training layout, not equal to it (measured in the README).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from avatarlm.model import ARModel, GenerationState
from avatarlm.sequence import frame_causal_mask


@dataclass
class KeptFrame:
    """A generated frame the window may still need: its index j, cond(j) (B, k, D) — two rows in a guided
    session — and its clean latent (T, C)."""

    index: int
    cond: torch.Tensor
    latent: torch.Tensor


@torch.no_grad()
def rebuild_state(
    model: ARModel, reference: torch.Tensor, kept: list[KeptFrame], seed: int
) -> GenerationState:
    """A generation state whose cache holds ``reference`` (T, C) and the ``kept`` frames (consecutive, at
    least one), ready for the step that appends the last kept frame and samples the one after it."""
    if not kept:
        raise ValueError("a rebuilt window needs at least one kept frame")
    if any(b.index != a.index + 1 for a, b in zip(kept, kept[1:], strict=False)):
        raise ValueError("kept frames must be consecutive")
    cfg = model.config
    rows = kept[0].cond.shape[0]
    state = model.start(reference[None].expand(rows, -1, -1), seed=seed)
    latents = [reference[None]] + [f.latent[None] for f in kept[:-1]]  # f_0, then all but the last
    indices = [0] + [f.index for f in kept[:-1]]
    kc, t = cfg.cond_tokens_per_frame, cfg.tokens_per_frame
    pieces, groups = [], []
    for g, (latent, index, frame) in enumerate(zip(latents, indices, kept, strict=True)):
        noisy, sigma = model.history_latent(latent, index, seed)
        sig = torch.full((1, 1), sigma, dtype=noisy.dtype, device=noisy.device)
        lat_tokens = model.embed_latents(noisy[:, None], sig)[:, 0].expand(rows, -1, -1)
        pieces += [frame.cond.to(noisy.dtype), lat_tokens]
        groups += [2 * g] * kc + [2 * g + 1] * t
    embeds = torch.cat(pieces, dim=1)
    group_ids = torch.tensor(groups, device=embeds.device)
    mask = frame_causal_mask(group_ids, dtype=embeds.dtype)
    positions = torch.arange(embeds.shape[1], device=embeds.device)
    model.backbone.step(embeds, positions, state.cache, mask)
    last = kept[-1]
    state.frame, state.num_groups = last.index, 2 * len(latents)
    state.latent = last.latent[None].expand(rows, -1, -1)
    return state


@torch.no_grad()
def evict_frames(model: ARModel, state: GenerationState, count: int) -> None:
    """Drop the ``count`` oldest generated frames after the first chunk from the cache of ``state`` by
    re-rotating the keys of the later ones. The cache holds whole chunks: [cond(1..n)][f_0]..[f_{n-1}], then
    [cond][f]... per chunk of n frames (n = 1: [cond][f_0] and one [cond][f] pair per frame); the first chunk
    (with f_0) always stays, and ``count`` must be whole chunks."""
    cfg = model.config
    n = cfg.chunk_size
    chunk = n * (cfg.cond_tokens_per_frame + cfg.tokens_per_frame)
    held = state.cache.length // chunk - 1
    if count % n or not 0 < count // n <= held or state.cache.length % chunk:
        raise ValueError(
            f"can evict 1..{held} whole chunks of {n} frame(s) from this cache, not {count} frames"
        )
    model.backbone.evict(state.cache, chunk, chunk * (count // n + 1))
    state.num_groups -= (n + 1) * (count // n)
