import pytest
import torch

from avatarlm.sequence import TOKEN_COND, TOKEN_LATENT, build_layout, frame_causal_mask


def _groups(layout):
    """(kind, sorted set of frames) per group, in order."""
    out = []
    for g in range(layout.num_groups):
        sl = layout.group_slice(g)
        kinds = set(layout.kind[sl].tolist())
        assert len(kinds) == 1
        out.append((kinds.pop(), sorted(set(layout.frame_index[sl].tolist()))))
    return out


def test_n1_layout_interleaves_cond_then_frame():
    layout = build_layout(num_frames=3, chunk_size=1, tokens_per_frame=4, cond_tokens_per_frame=2)
    assert _groups(layout) == [
        (TOKEN_COND, [1]),
        (TOKEN_LATENT, [0]),
        (TOKEN_COND, [2]),
        (TOKEN_LATENT, [1]),
        (TOKEN_COND, [3]),
        (TOKEN_LATENT, [2]),
    ]
    assert layout.length == 3 * (4 + 2)
    assert layout.position_ids.tolist() == list(range(18))
    assert layout.group_ids.tolist() == [0, 0, 1, 1, 1, 1, 2, 2, 3, 3, 3, 3, 4, 4, 5, 5, 5, 5]


def test_n6_layout_matches_design():
    n, t, k = 6, 16, 2
    layout = build_layout(num_frames=12, chunk_size=n, tokens_per_frame=t, cond_tokens_per_frame=k)
    expected = [(TOKEN_COND, list(range(1, 7)))] + [(TOKEN_LATENT, [f]) for f in range(6)]
    expected += [(TOKEN_COND, list(range(7, 13)))] + [(TOKEN_LATENT, [f]) for f in range(6, 12)]
    assert _groups(layout) == expected
    assert layout.length == 2 * (n * k + n * t)
    first_cond = layout.group_slice(0)
    assert layout.frame_index[first_cond].tolist() == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6]
    assert layout.latent_frames.tolist() == list(range(12))
    assert layout.cond_frames.tolist() == list(range(1, 13))
    assert layout.latent_index.shape == (12, t) and layout.cond_index.shape == (12, k)
    assert (layout.kind[layout.latent_index] == TOKEN_LATENT).all()
    assert (layout.frame_index[layout.cond_index] == layout.cond_frames[:, None]).all()


def test_partial_last_chunk_keeps_a_full_condition_group():
    layout = build_layout(num_frames=8, chunk_size=6, tokens_per_frame=2, cond_tokens_per_frame=1)
    groups = _groups(layout)
    assert groups[7] == (TOKEN_COND, list(range(7, 13)))
    assert groups[8:] == [(TOKEN_LATENT, [6]), (TOKEN_LATENT, [7])]


def test_no_condition_tokens_gives_frame_groups_only():
    layout = build_layout(num_frames=3, chunk_size=2, tokens_per_frame=2, cond_tokens_per_frame=0)
    assert _groups(layout) == [(TOKEN_LATENT, [0]), (TOKEN_LATENT, [1]), (TOKEN_LATENT, [2])]
    assert layout.cond_index.numel() == 0


@pytest.mark.parametrize("n", [1, 6])
def test_prediction_index_maps_frame_k_tokens_to_frame_k_plus_1(n):
    t = 3
    layout = build_layout(num_frames=2 * n + 1, chunk_size=n, tokens_per_frame=t, cond_tokens_per_frame=1)
    source, targets = layout.prediction_index()
    assert targets.tolist() == list(range(1, 2 * n + 1))
    for row, target in zip(source, targets, strict=True):
        assert (layout.frame_index[row] == target - 1).all()
        assert (layout.kind[row] == TOKEN_LATENT).all()
        assert row.tolist() == layout.latent_index[int(target) - 1].tolist()  # token i -> token i, in order


def test_window_layout_puts_reference_first_and_it_predicts_nothing():
    layout = build_layout(
        num_frames=4,
        chunk_size=2,
        tokens_per_frame=2,
        cond_tokens_per_frame=1,
        first_chunk=3,
        position_offset=5,
    )
    assert _groups(layout) == [
        (TOKEN_LATENT, [0]),
        (TOKEN_COND, [7, 8]),
        (TOKEN_LATENT, [6]),
        (TOKEN_LATENT, [7]),
        (TOKEN_COND, [9, 10]),
        (TOKEN_LATENT, [8]),
        (TOKEN_LATENT, [9]),
    ]
    assert layout.position_ids.tolist() == list(range(5, 5 + layout.length))
    _, targets = layout.prediction_index()
    assert targets.tolist() == [7, 8, 9]


def test_mask_sees_earlier_and_own_group_only():
    layout = build_layout(num_frames=4, chunk_size=2, tokens_per_frame=3, cond_tokens_per_frame=2)
    mask = layout.attention_mask()
    assert mask.shape == (1, 1, layout.length, layout.length) and mask.dtype == torch.float32
    g = layout.group_ids
    for i in range(layout.length):
        for j in range(layout.length):
            expected = 0.0 if g[j] <= g[i] else float("-inf")
            assert mask[0, 0, i, j].item() == expected
    # The condition group of chunk 1 is visible to both frame groups of chunk 1, not to chunk 0.
    cond1 = layout.group_slice(3)
    assert (mask[0, 0, layout.group_slice(4), cond1] == 0).all()
    assert (mask[0, 0, layout.group_slice(2), cond1] == float("-inf")).all()


def test_incremental_mask_is_rows_of_full_mask():
    layout = build_layout(num_frames=5, chunk_size=1, tokens_per_frame=4, cond_tokens_per_frame=1)
    full = layout.attention_mask()
    sl = layout.group_slice(5)
    step = frame_causal_mask(layout.group_ids[sl], layout.group_ids[: sl.stop])
    assert torch.equal(step, full[:, :, sl, : sl.stop])


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(num_frames=0, chunk_size=1, tokens_per_frame=1, cond_tokens_per_frame=1),
        dict(num_frames=1, chunk_size=0, tokens_per_frame=1, cond_tokens_per_frame=1),
        dict(num_frames=1, chunk_size=1, tokens_per_frame=0, cond_tokens_per_frame=1),
        dict(num_frames=1, chunk_size=1, tokens_per_frame=1, cond_tokens_per_frame=-1),
        dict(num_frames=1.5, chunk_size=1, tokens_per_frame=1, cond_tokens_per_frame=1),
    ],
)
def test_bad_layout_arguments_raise(kwargs):
    with pytest.raises(ValueError):
        build_layout(**kwargs)


def test_mask_rejects_2d_group_ids():
    with pytest.raises(ValueError, match="1-D"):
        frame_causal_mask(torch.zeros(2, 3, dtype=torch.long))
