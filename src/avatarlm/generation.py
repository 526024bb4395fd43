"""What a generation run carries between steps, and the seeded noise that makes runs reproducible.

A run's every random draw comes from a generator keyed by (seed, frame, stream), so a streaming session,
an offline generation and a batch of sessions draw the same noise for the same frame.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from avatarlm.kv_cache import KVCache


@dataclass
class GenerationState:
    """One generation run: the cache, the frame the next step appends (``frame`` = k, latent ``latent``,
    clean) and the hidden states at the last appended frame's tokens (``hidden``, (B, T, D))."""

    cache: KVCache
    seed: int
    frame: int
    latent: torch.Tensor
    hidden: torch.Tensor | None = None
    num_groups: int = 0


def keyed_generator(*key: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A generator seeded by a hash of the integers ``key``: the same key always gives the same draws."""
    if any(k < 0 for k in key):
        raise ValueError(f"generator keys must be >= 0, got {key}")
    digest = hashlib.blake2b(":".join(map(str, key)).encode(), digest_size=8).digest()
    g = torch.Generator(device=device)
    g.manual_seed(int.from_bytes(digest, "little") >> 1)  # the CPU generator uses only the low 32 bits
    return g


def frame_generator(
    seed: int, frame: int, stream: int, device: torch.device | str = "cpu"
) -> torch.Generator:
    """A generator seeded by (seed, frame index, stream), so streaming and offline runs draw alike."""
    if seed < 0 or frame < 0:
        raise ValueError(f"seed and frame must be >= 0, got seed={seed}, frame={frame}")
    return keyed_generator(seed, frame, stream, device=device)


@dataclass
class StepInput:
    """What one generation step appends: embeddings (B, L, D), their positions (L,), their additive mask
    over cache + new tokens, and how many of them are the latent frame's tokens (the last ``tokens``)."""

    embeds: torch.Tensor
    positions: torch.Tensor
    mask: torch.Tensor
    tokens: int
    opens_chunk: bool
    guidance: float | None


def group_indices(keys: Sequence[object]) -> list[list[int]]:
    """Indices of ``keys`` grouped by equal key, groups in order of first appearance."""
    out: dict[object, list[int]] = {}
    for i, key in enumerate(keys):
        out.setdefault(key, []).append(i)
    return list(out.values())
