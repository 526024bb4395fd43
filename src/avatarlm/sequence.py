"""Token layout of the autoregressive sequence: condition groups and frame groups in chunks of n frames.

Chunk c holds one condition group ``cond(c*n+1 .. c*n+n)`` followed by the latent groups of frames
``c*n .. c*n+n-1``, one group per frame; ``f_0`` is the reference frame::

    [cond(1..n)][f_0][f_1]...[f_{n-1}] [cond(n+1..2n)][f_n]...[f_{2n-1}] ...

A token sees every token of earlier groups and all tokens of its own group (frame-level causal mask).
The hidden states at the tokens of ``f_k`` predict ``f_{k+1}``, token i -> token i.

With ``first_chunk > 0`` the layout is a rolling window: the reference group ``f_0`` comes first, placed
just before the window, followed by chunks ``first_chunk, first_chunk+1, ...`` with contiguous positions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

TOKEN_COND = 0
TOKEN_LATENT = 1


@dataclass(frozen=True)
class SequenceLayout:
    """Per-token description of one sequence (all tensors are int64 on the CPU, length ``L``).

    ``frame_index`` is, for a latent token of ``f_k``, k; for a condition token of ``cond(j)``, j (the
    frame it drives). ``latent_frames[i]`` is the i-th frame in the sequence and ``latent_index[i]`` the
    positions of its ``tokens_per_frame`` tokens; ``cond_frames`` / ``cond_index`` likewise for conditions.
    """

    chunk_size: int
    tokens_per_frame: int
    cond_tokens_per_frame: int
    first_chunk: int
    group_ids: torch.Tensor  # (L,) non-decreasing, one id per group
    kind: torch.Tensor  # (L,) TOKEN_COND or TOKEN_LATENT
    frame_index: torch.Tensor  # (L,)
    position_ids: torch.Tensor  # (L,)
    latent_frames: torch.Tensor  # (F,)
    latent_index: torch.Tensor  # (F, tokens_per_frame)
    cond_frames: torch.Tensor  # (C,)
    cond_index: torch.Tensor  # (C, cond_tokens_per_frame)

    @property
    def length(self) -> int:
        return int(self.group_ids.numel())

    @property
    def num_groups(self) -> int:
        return int(self.group_ids[-1]) + 1 if self.length else 0

    def attention_mask(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The additive frame-causal mask of the whole sequence, shape (1, 1, L, L)."""
        return frame_causal_mask(self.group_ids, dtype=dtype)

    def group_slice(self, group: int) -> slice:
        """Token range of one group (groups are contiguous)."""
        idx = torch.nonzero(self.group_ids == group).flatten()
        if idx.numel() == 0:
            raise ValueError(f"group {group} is not in this layout (it has {self.num_groups} groups)")
        return slice(int(idx[0]), int(idx[-1]) + 1)

    def prediction_index(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(source (P, T), target_frames (P,)): the hidden states at token positions ``source[p]`` (the
        tokens of ``f_k``) predict frame ``target_frames[p] = k + 1``, token i -> token i. Only frames whose
        predecessor is in the sequence are targets; the reference frame is never one."""
        frames = self.latent_frames
        has_next = frames[1:] == frames[:-1] + 1
        if self.first_chunk > 0:  # the reference group of a window predicts nothing
            has_next[0] = False
        src_rows = torch.nonzero(has_next).flatten()
        return self.latent_index[src_rows], frames[src_rows + 1]


def build_layout(
    num_frames: int,
    chunk_size: int,
    tokens_per_frame: int,
    cond_tokens_per_frame: int,
    first_chunk: int = 0,
    position_offset: int = 0,
) -> SequenceLayout:
    """Layout of a sequence holding ``num_frames`` latent frames.

    With ``first_chunk == 0`` the frames are ``f_0 .. f_{num_frames-1}`` in ``ceil(num_frames / n)``
    chunks; the last chunk may be partial (its condition group is always complete: n * k tokens).
    With ``first_chunk > 0`` the sequence is the reference group ``f_0`` followed by ``num_frames`` frames
    starting at ``first_chunk * n``. Positions are ``position_offset + token index``.
    """
    n, t, k = chunk_size, tokens_per_frame, cond_tokens_per_frame
    for name, value, low in (
        ("num_frames", num_frames, 1),
        ("chunk_size", n, 1),
        ("tokens_per_frame", t, 1),
        ("cond_tokens_per_frame", k, 0),
        ("first_chunk", first_chunk, 0),
        ("position_offset", position_offset, 0),
    ):
        if not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")

    groups: list[tuple[int, list[int]]] = []  # (kind, frame index per token)
    first_frame = first_chunk * n
    if first_chunk > 0:
        groups.append((TOKEN_LATENT, [0] * t))
    num_chunks = -(-num_frames // n)
    for c in range(first_chunk, first_chunk + num_chunks):
        if k:
            groups.append((TOKEN_COND, [j for j in range(c * n + 1, c * n + n + 1) for _ in range(k)]))
        for f in range(c * n, min(c * n + n, first_frame + num_frames)):
            groups.append((TOKEN_LATENT, [f] * t))

    group_ids = torch.cat([torch.full((len(fr),), g, dtype=torch.long) for g, (_, fr) in enumerate(groups)])
    kind = torch.cat([torch.full((len(fr),), kd, dtype=torch.long) for kd, fr in groups])
    frame_index = torch.tensor([f for _, fr in groups for f in fr], dtype=torch.long)
    position_ids = torch.arange(group_ids.numel(), dtype=torch.long) + position_offset
    is_latent, is_cond = kind == TOKEN_LATENT, kind == TOKEN_COND
    token_idx = torch.arange(group_ids.numel())
    latent_index = token_idx[is_latent].view(-1, t)
    cond_index = token_idx[is_cond].view(-1, k) if k else torch.zeros(0, 0, dtype=torch.long)
    return SequenceLayout(
        chunk_size=n,
        tokens_per_frame=t,
        cond_tokens_per_frame=k,
        first_chunk=first_chunk,
        group_ids=group_ids,
        kind=kind,
        frame_index=frame_index,
        position_ids=position_ids,
        latent_frames=frame_index[latent_index[:, 0]],
        latent_index=latent_index,
        cond_frames=frame_index[cond_index[:, 0]] if k else torch.zeros(0, dtype=torch.long),
        cond_index=cond_index,
    )


def frame_causal_mask(
    query_groups: torch.Tensor,
    key_groups: torch.Tensor | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Additive mask (1, 1, Lq, Lk): 0 where the key's group id is <= the query's, -inf elsewhere.

    For incremental steps pass the new tokens' group ids as ``query_groups`` and the group ids of all
    cached tokens plus the new ones as ``key_groups``.
    """
    key_groups = query_groups if key_groups is None else key_groups
    if query_groups.dim() != 1 or key_groups.dim() != 1:
        raise ValueError(
            f"group ids must be 1-D, got shapes {tuple(query_groups.shape)} and {tuple(key_groups.shape)}"
        )
    visible = key_groups[None, :] <= query_groups[:, None]
    mask = torch.zeros(visible.shape, dtype=dtype, device=query_groups.device)
    mask.masked_fill_(~visible, float("-inf"))
    return mask[None, None]
