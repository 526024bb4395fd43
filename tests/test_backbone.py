import pytest
import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from avatarlm.backbone import Backbone, BackboneConfig
from avatarlm.config import config_from_dict
from avatarlm.sequence import build_layout, frame_causal_mask

TOL = 1e-5
T, K = 4, 2  # latent tokens per frame, condition tokens per frame (kept small for speed)


@pytest.fixture(scope="module")
def backbone():
    torch.manual_seed(0)
    cfg = BackboneConfig(hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2, intermediate_size=128)
    bb = Backbone(cfg).eval()
    with torch.no_grad():  # sharper attention than the 0.02-std init, so positions and masks matter visibly
        for name, param in bb.named_parameters():
            if name.endswith(("q_proj.weight", "k_proj.weight")):
                param.mul_(10)
    return bb


def _run(backbone, layout, embeds, positions=None):
    pos = layout.position_ids if positions is None else positions
    with torch.no_grad():
        return backbone(embeds, pos, layout.attention_mask())[0]


def _setup(backbone, n, frames):
    layout = build_layout(num_frames=frames, chunk_size=n, tokens_per_frame=T, cond_tokens_per_frame=K)
    embeds = torch.randn(
        1, layout.length, backbone.config.hidden_size, generator=torch.Generator().manual_seed(n)
    )
    return layout, embeds


@pytest.mark.parametrize("n", [1, 6])
def test_group_outputs_ignore_later_groups(backbone, n):
    layout, x = _setup(backbone, n, frames=2 * n)
    base = _run(backbone, layout, x)
    for g in range(layout.num_groups - 1):
        sl = layout.group_slice(g)
        changed = x.clone()
        changed[:, sl.stop :] += torch.randn_like(changed[:, sl.stop :])
        out = _run(backbone, layout, changed)
        torch.testing.assert_close(out[: sl.stop], base[: sl.stop], atol=TOL, rtol=0)
        assert not torch.allclose(out[sl.stop :], base[sl.stop :], atol=1e-3)


@pytest.mark.parametrize("n", [1, 6])
def test_full_attention_inside_a_group(backbone, n):
    layout, x = _setup(backbone, n, frames=n + 1)
    base = _run(backbone, layout, x)
    for g in range(layout.num_groups):
        sl = layout.group_slice(g)
        changed = x.clone()
        changed[:, sl.stop - 1] += 1.0
        out = _run(backbone, layout, changed)
        assert (out[sl.start] - base[sl.start]).abs().max() > 1e-3
        torch.testing.assert_close(out[: sl.start], base[: sl.start], atol=TOL, rtol=0)


@pytest.mark.parametrize("n", [1, 6])
def test_condition_group_visible_to_all_later_groups(backbone, n):
    layout, x = _setup(backbone, n, frames=3 * n)
    base = _run(backbone, layout, x)
    cond_group = layout.group_ids[layout.cond_index[n, 0]].item()  # condition group of chunk 1
    sl = layout.group_slice(cond_group)
    changed = x.clone()
    changed[:, sl] += 1.0
    out = _run(backbone, layout, changed)
    per_token_change = (out - base).abs().amax(dim=-1)
    assert (per_token_change[sl.start :] > 1e-4).all()
    assert (per_token_change[: sl.start] < TOL).all()


@pytest.mark.parametrize("n", [1, 6])
@pytest.mark.parametrize("by", ["group", "chunk"])
def test_cached_steps_equal_full_forward(backbone, n, by):
    layout, x = _setup(backbone, n, frames=2 * n + 1)
    full = _run(backbone, layout, x)
    if by == "group":
        bounds = [layout.group_slice(g) for g in range(layout.num_groups)]
    else:  # a chunk is its condition group plus its frame groups
        cond_starts = [int(i) for i in layout.cond_index[::n, 0]] + [layout.length]
        bounds = [slice(a, b) for a, b in zip(cond_starts[:-1], cond_starts[1:], strict=True)]
    cache = backbone.new_cache()
    outs = []
    with torch.no_grad():
        for sl in bounds:
            mask = frame_causal_mask(layout.group_ids[sl], layout.group_ids[: sl.stop])
            outs.append(backbone.step(x[:, sl], layout.position_ids[sl], cache, mask)[0])
    assert cache.length == layout.length
    torch.testing.assert_close(torch.cat(outs), full, atol=TOL, rtol=0)


def test_cache_crop_allows_replaying_a_group(backbone):
    layout, x = _setup(backbone, 1, frames=3)
    sl = layout.group_slice(layout.num_groups - 1)
    mask = frame_causal_mask(layout.group_ids[sl], layout.group_ids[: sl.stop])
    cache = backbone.new_cache()
    with torch.no_grad():
        backbone.step(
            x[:, : sl.start],
            layout.position_ids[: sl.start],
            cache,
            layout.attention_mask()[..., : sl.start, : sl.start],
        )
        first = backbone.step(x[:, sl], layout.position_ids[sl], cache, mask)
        cache.crop(sl.start)
        again = backbone.step(x[:, sl], layout.position_ids[sl], cache, mask)
    torch.testing.assert_close(first, again, atol=0, rtol=0)


def test_positions_are_used_and_only_relative(backbone):
    layout, x = _setup(backbone, 1, frames=3)
    base = _run(backbone, layout, x)
    shifted = _run(backbone, layout, x, layout.position_ids + 37)
    torch.testing.assert_close(shifted, base, atol=1e-4, rtol=0)  # RoPE is relative
    swapped = layout.position_ids.clone()
    a, b = layout.group_slice(1), layout.group_slice(3)  # frames 0 and 1 (same size)
    swapped[a], swapped[b] = layout.position_ids[b], layout.position_ids[a]
    out = _run(backbone, layout, x, swapped)
    assert (out[b] - base[b]).abs().max() > 1e-3


def test_batched_step_matches_single(backbone):
    layout, x = _setup(backbone, 1, frames=2)
    xb = torch.cat([x, x.flip(1)])
    with torch.no_grad():
        cache = backbone.new_cache()
        out = backbone.step(xb, layout.position_ids, cache, layout.attention_mask())
    torch.testing.assert_close(out[0], _run(backbone, layout, x), atol=TOL, rtol=0)


def test_forward_trains(backbone):
    layout, x = _setup(backbone, 1, frames=2)
    bb = Backbone(backbone.config)
    bb(x, layout.position_ids, layout.attention_mask()).square().mean().backward()
    grad = dict(bb.named_parameters())["model.layers.0.self_attn.q_proj.weight"].grad
    assert grad is not None and grad.abs().sum() > 0


def test_bad_inputs_raise(backbone):
    layout, x = _setup(backbone, 1, frames=2)
    mask = layout.attention_mask()
    with pytest.raises(ValueError, match="embeds"):
        backbone(x[..., :10], layout.position_ids, mask)
    with pytest.raises(ValueError, match="position_ids"):
        backbone(x, layout.position_ids[:-1], mask)
    with pytest.raises(ValueError, match="mask"):
        backbone.step(x, layout.position_ids, backbone.new_cache(), mask[..., :-1])
    with pytest.raises(ValueError, match="bool"):
        backbone(x, layout.position_ids, mask == 0)
    with pytest.raises(ValueError, match="num_kv_heads"):
        BackboneConfig(hidden_size=64, num_heads=4, num_kv_heads=3)


def test_presets_and_config_round_trip():
    assert BackboneConfig.preset_names() == ["tiny", "small", "paper"]
    cfg = BackboneConfig.preset("small")
    assert config_from_dict(cfg.to_dict()) == cfg
    assert Backbone.on_meta(BackboneConfig.preset("tiny")).num_parameters() < 5e6


def test_paper_preset_is_qwen25_3b_size_on_meta():
    bb = Backbone.on_meta(BackboneConfig.preset("paper"))
    assert 2.7e9 <= bb.num_parameters() <= 3.1e9
    assert next(bb.parameters()).device.type == "meta"


def test_from_pretrained_qwen_loads_saved_qwen2(tmp_path):
    torch.manual_seed(1)
    qcfg = Qwen2Config(
        vocab_size=50,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        rope_parameters={"rope_type": "default", "rope_theta": 1000.0},
    )
    reference = Qwen2ForCausalLM(qcfg).eval()
    with torch.no_grad():  # random biases, so a loader that drops them fails
        for name, param in reference.named_parameters():
            if name.endswith(("q_proj.bias", "k_proj.bias")):
                param.normal_()
    reference.save_pretrained(tmp_path)
    loaded = Backbone.from_pretrained_qwen(tmp_path).eval()
    assert loaded.config.rope_theta == 1000.0 and loaded.config.num_kv_heads == 2
    layout = build_layout(num_frames=2, chunk_size=1, tokens_per_frame=T, cond_tokens_per_frame=K)
    x = torch.randn(1, layout.length, 32)
    mask = layout.attention_mask()
    with torch.no_grad():
        expected = reference.model(
            inputs_embeds=x, position_ids=layout.position_ids[None], attention_mask=mask
        )
        got = loaded(x, layout.position_ids, mask)
        stepped = loaded.step(x, layout.position_ids, loaded.new_cache(), mask)
    torch.testing.assert_close(got, expected.last_hidden_state, atol=TOL, rtol=0)
    torch.testing.assert_close(stepped, expected.last_hidden_state, atol=TOL, rtol=0)
    assert not any(p.device.type == "meta" for p in loaded.parameters())


def test_from_pretrained_qwen_missing_folder_or_weights(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        Backbone.from_pretrained_qwen(tmp_path / "nope")
    Qwen2Config(hidden_size=32, num_attention_heads=4, num_hidden_layers=1).save_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match="safetensors"):
        Backbone.from_pretrained_qwen(tmp_path)


@pytest.mark.parametrize("layers", [1, 2])
def test_evicting_tokens_re_rotates_the_rest_like_a_fresh_encoding(layers):
    """One layer: drop a middle stretch and re-rotate == encoding the sequence without it (its keys and values
    depend only on the embeddings). Deeper layers: the first layer still equals it; above, the kept tokens
    remember what they attended to in the dropped stretch."""
    torch.manual_seed(0)
    cfg = BackboneConfig(
        hidden_size=64, num_layers=layers, num_heads=4, num_kv_heads=2, intermediate_size=128
    )
    bb = Backbone(cfg).eval()
    x = torch.randn(1, 30, 64)
    keep = torch.cat([torch.arange(0, 6), torch.arange(16, 30)])

    def causal(n, past=0):
        return torch.triu(torch.full((n, past + n), float("-inf")), diagonal=past + 1)[None, None]

    with torch.no_grad():
        rolled = bb.new_cache()
        bb.step(x, torch.arange(30), rolled, causal(30))
        bb.evict(rolled, 6, 16)
        fresh = bb.new_cache()
        bb.step(x[:, keep], torch.arange(20), fresh, causal(20))
        nxt = torch.randn(1, 3, 64)
        after_roll = bb.step(nxt, torch.arange(20, 23), rolled, causal(3, 20))
        after_fresh = bb.step(nxt, torch.arange(20, 23), fresh, causal(3, 20))
    assert rolled.length == fresh.length == 23
    torch.testing.assert_close(rolled.keys[0], fresh.keys[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(rolled.values[0], fresh.values[0], atol=1e-5, rtol=0)
    if layers == 1:
        torch.testing.assert_close(after_roll, after_fresh, atol=1e-5, rtol=0)
    else:
        assert (after_roll - after_fresh).abs().max() > 1e-4
    with pytest.raises(ValueError, match="cannot remove"):
        rolled.remove(10, 40)
