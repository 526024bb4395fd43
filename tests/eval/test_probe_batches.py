"""The pixel probe's batches: the same whether rendered here or by worker processes, each frame with a
picture of the same face; reconstructions read that picture where the decoder reads references."""

from __future__ import annotations

import numpy as np
import torch

from ae_helpers import randomize_fusions
from ar_helpers import ae_config
from avatarlm.autoencoder.model import DCAutoencoder
from avatarlm.data.render_sampler import RenderedClipSampler
from avatarlm.eval.probe_batches import ProbeBatches, reconstruct, render_batch


def test_worker_processes_render_the_same_batches_as_this_one():
    ids = [3, 5, 8]
    with ProbeBatches(ids, 32, 4, seed=7) as here, ProbeBatches(ids, 32, 4, seed=7, workers=2) as pool:
        local, remote = list(here.iterate(3)), list(pool.iterate(3))
    assert len(remote) == 3
    for a, b in zip(local, remote, strict=True):
        np.testing.assert_array_equal(a.frames, b.frames)
        np.testing.assert_array_equal(a.states, b.states)
        np.testing.assert_array_equal(a.references, b.references)
    assert not np.array_equal(local[0].frames, local[1].frames)  # each batch its own seed


def test_references_show_the_same_face_in_another_state():
    sampler = RenderedClipSampler([11], size=32)
    b = render_batch(sampler, 0, 0, 6)
    assert b.frames.shape == b.references.shape == (6, 32, 32, 3) and b.states.shape[0] == 6
    assert not np.array_equal(b.frames, b.references)
    other = render_batch(RenderedClipSampler([12], size=32), 0, 0, 6).references
    # the same identity's reference is nearer its frame than another identity's is
    near = np.abs(b.frames.astype(int) - b.references).mean()
    assert near < np.abs(b.frames.astype(int) - other).mean()


def test_only_the_references_read_are_rendered_and_they_are_the_same_pictures():
    sampler = RenderedClipSampler([11, 14], size=32)
    every = render_batch(sampler, 3, 1, 5)
    halves = render_batch(sampler, 3, 1, 5, reference_stride=2)
    none = render_batch(sampler, 3, 1, 5, reference_stride=None)
    np.testing.assert_array_equal(halves.references, every.references[::2])
    assert len(none.references) == 0
    for b in (halves, none):
        np.testing.assert_array_equal(b.frames, every.frames)
        np.testing.assert_array_equal(b.states, every.states)
    with ProbeBatches([11, 14], 32, 5, seed=3, workers=1, reference_stride=2) as pool:
        np.testing.assert_array_equal(list(pool.iterate(2))[1].references, halves.references)


def test_reconstructions_read_the_reference_where_the_decoder_does():
    torch.manual_seed(0)
    frames = np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    refs = np.random.default_rng(1).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    plain = DCAutoencoder(ae_config()).eval()
    np.testing.assert_array_equal(reconstruct(plain, frames, refs), reconstruct(plain, frames, refs[::-1]))
    reading = DCAutoencoder(ae_config(reference_levels=2)).eval()
    randomize_fusions(reading)
    out = reconstruct(reading, frames, refs, chunk=2)
    assert out.shape == frames.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out[:1], reconstruct(reading, frames[:1], refs[:1]))  # per frame, own ref
    assert not np.array_equal(out, reconstruct(reading, frames, refs[::-1]))
