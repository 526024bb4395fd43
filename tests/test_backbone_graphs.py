"""``StaticKVCache`` (fixed buffers for CUDA graphs): on the CPU its steps run eagerly and must equal the
growing ``KVCache``'s, through capacity growth and window rolls. The graph replay itself is tested where a GPU
is (``tests/test_cuda_graphs.py``)."""

from __future__ import annotations

import pytest
import torch

from ar_helpers import ar_config
from avatarlm.backbone import Backbone, BackboneConfig
from avatarlm.backbone_graphs import StaticKVCache
from avatarlm.kv_cache import KVCache
from avatarlm.model import ARModel
from avatarlm.pipeline.rolling import evict_frames
from avatarlm.sequence import frame_causal_mask

CFG = BackboneConfig(hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2, intermediate_size=128)


def _step(backbone: Backbone, cache: KVCache, x: torch.Tensor, group: int) -> torch.Tensor:
    past, n = cache.length, x.shape[1]
    new = torch.full((n,), group, device=x.device)
    keys = torch.cat([torch.full((past,), -1, device=x.device), new])
    positions = torch.arange(past, past + n, device=x.device)
    return backbone.step(x, positions, cache, frame_causal_mask(new, keys, dtype=x.dtype))


def test_static_cache_steps_equal_the_growing_cache_through_growth_and_rolls():
    torch.manual_seed(0)
    backbone = Backbone(CFG).eval()
    growing, static = backbone.new_cache(), StaticKVCache(CFG.num_layers, capacity=32)
    with torch.no_grad():
        for group in range(14):
            x = torch.randn(2, 7 if group % 3 else 11, CFG.hidden_size)
            want, got = _step(backbone, growing, x, group), _step(backbone, static, x, group)
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
            assert static.length == growing.length
            if group in (6, 11):  # a window roll: drop tokens in the middle, re-rotate the rest
                backbone.evict(growing, 5, 19)
                backbone.evict(static, 5, 19)
    assert static.capacity == 128  # 32 -> 64 -> 128 as it filled
    assert static.graphs == 2  # one per (rows, new tokens); eager on the CPU
    static.crop(10)
    assert static.length == 10


def test_model_steps_on_a_static_cache_equal_the_default_with_chunks_and_eviction():
    torch.manual_seed(0)
    model = ARModel(ar_config(chunk_size=2, target="delta")).eval()
    cfg = model.config
    reference = torch.randn(1, cfg.tokens_per_frame, cfg.latent_channels)
    conds = torch.randn(1, 12, cfg.cond_tokens_per_frame, cfg.hidden_size)
    states = [model.start(reference, seed=4), model.start(reference, seed=4, static_capacity=16)]
    assert isinstance(states[1].cache, StaticKVCache)
    for j in range(12):
        chunk = conds[:, j : j + 2] if j % 2 == 0 else None
        a, b = (model.step(s, chunk) for s in states)
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)
        if j == 7:
            for s in states:
                evict_frames(model, s, 4)


def test_static_cache_refuses_what_it_cannot_do():
    torch.manual_seed(0)
    backbone = Backbone(CFG).eval()
    cache = StaticKVCache(CFG.num_layers)
    with torch.no_grad():
        _step(backbone, cache, torch.randn(1, 5, CFG.hidden_size), 0)
        with pytest.raises(ValueError, match="holds 1 row"):
            _step(backbone, cache, torch.randn(2, 5, CFG.hidden_size), 1)
        x, other = torch.randn(1, 3, CFG.hidden_size), backbone.new_cache()
        mask = torch.zeros(1, 1, 3, 8)
        with pytest.raises(ValueError, match="one run at a time"):
            backbone.step_many(
                [x, x], [torch.arange(5, 8)] * 2, [cache, other], [mask, torch.zeros(1, 1, 3, 3)]
            )
    with pytest.raises(ValueError, match="filled by its own step"):
        cache.append(0, torch.zeros(1), torch.zeros(1))
    with pytest.raises(ValueError, match="cannot remove"):
        cache.remove(2, 9)


def test_bf16_backbone_and_head_follow_the_fp32_model():
    """``set_inference_dtype(bfloat16)``: fp32 conditions and latents go in, fp32 latents come out, close to
    the fp32 model's (through a static cache and a window roll)."""
    torch.manual_seed(0)
    model = ARModel(ar_config(target="frame")).eval()
    half = ARModel(ar_config(target="frame")).eval()
    half.load_state_dict(model.state_dict())
    half.set_inference_dtype(torch.bfloat16)
    assert half.backbone.dtype == torch.bfloat16 and next(half.conditions.parameters()).dtype == torch.float32
    cfg = model.config
    reference = torch.randn(1, cfg.tokens_per_frame, cfg.latent_channels)
    states = [model.start(reference, seed=1), half.start(reference, seed=1, static_capacity=64)]
    for j in range(6):
        cond = torch.randn(
            1, 1, cfg.cond_tokens_per_frame, cfg.hidden_size, generator=torch.Generator().manual_seed(j)
        )
        a, b = model.step(states[0], cond), half.step(states[1], cond)
        assert b.dtype == torch.float32
        assert (a - b).abs().max() < 0.1 * a.abs().max(), j
        if j == 3:
            evict_frames(model, states[0], 2)
            evict_frames(half, states[1], 2)
    with pytest.raises(ValueError, match="inference dtype"):
        half.set_inference_dtype(torch.int8)
