"""Several independent generation runs stepped together (a server's sessions in one pass) give each run the
frame its own step gives, advance only their own state, and refuse what cannot be batched."""

import copy

import pytest
import torch

from test_model import C, D, T, make_model

K = 2  # condition tokens per frame (audio + pose)


def cond(b: int, n: int, seed: int) -> torch.Tensor:
    return torch.randn(b, n, K, D, generator=torch.Generator().manual_seed(seed))


def started(model, rows: int, seed: int, frames: int):
    """A run of ``rows`` rows that has already generated ``frames`` frames (so the runs' caches differ)."""
    ref = torch.randn(1, T, C, generator=torch.Generator().manual_seed(100 + seed)).expand(rows, -1, -1)
    state = model.start(ref, seed=seed)
    n = model.config.chunk_size
    for k in range(frames):
        model.step(state, cond(rows, n, 10 * seed + k) if k % n == 0 else None)
    return state


@pytest.mark.parametrize("chunk_size", [1, 2])
def test_step_many_equals_each_run_stepped_alone(chunk_size):
    model = make_model(chunk_size=chunk_size).eval()
    n = chunk_size
    runs = [(1, 0, None), (2, 3, 2.5), (1, 5, None), (2, 1, 1.5), (1, 2, None)]  # rows, frames done, guidance
    states = [started(model, rows, seed, frames) for seed, (rows, frames, _) in enumerate(runs)]
    alone = copy.deepcopy(states)
    for rounds in range(3):  # runs at different points of their chunks, then again after each round
        conds = [cond(rows, n, 1000 * rounds + i) if s.frame % n == 0 else None
                 for i, ((rows, _, _), s) in enumerate(zip(runs, states, strict=True))]  # fmt: skip
        guidance = [g for _, _, g in runs]
        together = model.step_many(states, conds, guidance)
        for i, state in enumerate(alone):
            expected = model.step(state, conds[i], guidance=guidance[i])
            torch.testing.assert_close(together[i], expected, atol=1e-5, rtol=1e-5)
            assert states[i].frame == state.frame and states[i].num_groups == state.num_groups
            assert states[i].cache.length == state.cache.length
            for a, b in zip(states[i].cache.keys, state.cache.keys, strict=True):
                torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_step_many_of_one_run_is_step():
    model = make_model().eval()
    state = started(model, 1, 0, 3)
    other = copy.deepcopy(state)
    c = cond(1, 1, 7)
    torch.testing.assert_close(model.step_many([state], [c])[0], model.step(other, c), atol=1e-6, rtol=1e-6)


def test_step_many_refuses_what_it_cannot_batch():
    model = make_model().eval()
    a, b = started(model, 1, 0, 1), started(model, 1, 1, 2)
    with pytest.raises(ValueError, match="one condition and one guidance per state"):
        model.step_many([a, b], [cond(1, 1, 0)])
    with pytest.raises(ValueError, match="a guided step takes 2 rows"):
        model.step_many([a, b], [cond(1, 1, 0), cond(1, 1, 1)], [None, 2.0])
    with pytest.raises(ValueError, match="step_many needs, per run"):
        model.backbone.step_many([], [], [], [])
    assert (a.frame, b.frame) == (1, 2)  # a refused call advances nothing
