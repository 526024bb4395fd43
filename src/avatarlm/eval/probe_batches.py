"""Batches for the pixel probe: rendered frames with their face states, and what the autoencoder makes of them.

Every batch is rendered from its own seed (``seed``, batch index), so it is the same whether it is rendered
in this process or by one of ``workers`` processes (``ProbeBatches``, which keeps a few batches in flight so
that a GPU need not wait for the renderer). Each frame comes with a reference picture of the same face in
another, typical state: a reference-reading autoencoder decodes a frame given it, as a session decodes its
frames given the picture it animates (``reconstruct``). Only the references a caller reads are rendered
(``reference_stride``); the random stream stays the same, so a reference is the same picture either way.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from multiprocessing import get_context
from multiprocessing.pool import AsyncResult, Pool

import numpy as np
import torch

from avatarlm.autoencoder.model import DCAutoencoder
from avatarlm.data.face import FaceState
from avatarlm.data.render_sampler import RenderedClipSampler, random_state_vector
from avatarlm.eval.ae_quality import to_tensor, to_uint8


@dataclass
class ProbeBatch:
    frames: np.ndarray  # uint8 (N, H, W, 3)
    states: np.ndarray  # face-state vectors (N, n_fields)
    references: np.ndarray  # uint8: the faces of frames[::reference_stride] in a typical state


_SAMPLER: RenderedClipSampler | None = None  # each worker's own, with its renderer cache


def _set_sampler(identities: Sequence[int], size: int) -> None:
    global _SAMPLER
    _SAMPLER = RenderedClipSampler(identities, size=size)


def render_batch(
    sampler: RenderedClipSampler, seed: int, index: int, n: int, reference_stride: int | None = 1
) -> ProbeBatch:
    """Batch ``index`` of the stream ``seed``: ``n`` random states of random identities, and the references
    of every ``reference_stride``-th frame (None: none)."""
    rng = np.random.default_rng([seed, index])
    frames, ids, states = sampler.draw(rng, n)
    typical = [random_state_vector(rng, 0.0) for _ in ids]  # drawn for all: the same stream at any stride
    height, width = frames.shape[2:4]
    picked = range(0, n, reference_stride) if reference_stride else range(0)
    references = np.empty((len(picked), height, width, 3), np.uint8)
    for row, i in enumerate(picked):
        references[row] = sampler.renderer(ids[i]).render(FaceState.from_vector(typical[i]))
    vectors = np.stack([s[0].to_vector() for s in states])
    return ProbeBatch(frames[:, 0], vectors, references)


def _render_in_worker(job: tuple[int, int, int, int | None]) -> ProbeBatch:
    assert _SAMPLER is not None
    return render_batch(_SAMPLER, *job)


class ProbeBatches:
    """Batches 0, 1, 2, ... of ``n`` frames of ``identities`` (references as ``render_batch``), rendered
    here (``workers`` = 0) or by a pool of ``workers`` processes that keeps ``2 * workers`` batches ahead.
    Use as a context manager."""

    def __init__(
        self,
        identities: Sequence[int],
        size: int,
        n: int,
        seed: int,
        workers: int = 0,
        reference_stride: int | None = 1,
    ) -> None:
        if workers < 0:
            raise ValueError(f"workers must be >= 0, got {workers}")
        self.identities, self.size, self.n, self.seed, self.workers = list(identities), size, n, seed, workers
        self.reference_stride = reference_stride
        self._pool: Pool | None = None

    def __enter__(self) -> ProbeBatches:
        if self.workers:
            ctx = get_context("spawn")  # the parent may hold torch threads: never fork them
            self._pool = ctx.Pool(self.workers, _set_sampler, (self.identities, self.size))
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool = None

    def iterate(self, count: int) -> Iterator[ProbeBatch]:
        if self._pool is None:
            sampler = RenderedClipSampler(self.identities, size=self.size)
            for i in range(count):
                yield render_batch(sampler, self.seed, i, self.n, self.reference_stride)
            return
        pending: deque[AsyncResult[ProbeBatch]] = deque()
        submitted = 0
        for _ in range(count):
            while submitted < count and len(pending) < 2 * self.workers:
                job = (self.seed, submitted, self.n, self.reference_stride)
                pending.append(self._pool.apply_async(_render_in_worker, (job,)))
                submitted += 1
            yield pending.popleft().get()


@torch.no_grad()
def reconstruct(
    ae: DCAutoencoder, frames: np.ndarray, references: np.ndarray, chunk: int = 256
) -> np.ndarray:
    """uint8 frames (N, H, W, 3) through ``ae`` on its device, each frame on its own, read with its own
    reference (N, H, W, 3) by a reference-reading decoder (ignored by others)."""
    ae.eval()
    device = next(ae.parameters()).device
    frames, references = np.ascontiguousarray(frames), np.ascontiguousarray(references)
    out = []
    for i in range(0, len(frames), chunk):
        x = to_tensor(frames[i : i + chunk]).to(device).transpose(0, 1)  # (N, 1, 3, H, W): N streams
        r = to_tensor(references[i : i + chunk])[0].to(device)
        out.append(to_uint8(ae.reconstruct(x, r).transpose(0, 1).cpu()))
    return np.concatenate(out)
