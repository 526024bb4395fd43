"""``benchmarks/scaling_count.py``'s counting (what ``docs/scaling.md`` is made of) against real runs at
``tiny``."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

from avatarlm.autoencoder.model import DCAutoencoder
from avatarlm.backbone import Backbone, BackboneConfig
from avatarlm.config import AutoencoderConfig
from avatarlm.head import HeadConfig, build_head


def _load_scaling_count() -> ModuleType:
    """``benchmarks/`` is not a package and its scaling modules import each other by name: put the folder on
    the path (as ``benchmarks/scaling.py`` does), whatever the working directory, and import by name."""
    folder = str(Path(__file__).resolve().parents[1] / "benchmarks")
    if folder not in sys.path:
        sys.path.insert(0, folder)
    return importlib.import_module("scaling_count")


scaling_count = _load_scaling_count()


@pytest.mark.parametrize(("context", "new_tokens"), [(0, 19), (589, 19), (589, 16)])
def test_backbone_step_flops_match_flop_counter_on_a_real_step(context: int, new_tokens: int) -> None:
    """The closed form of one KV-cached step against FlopCounterMode on a real ``tiny`` step; 589 cached
    tokens is the streaming window's f_0 and 30 frames of 3 + 16 tokens."""
    torch.manual_seed(0)
    cfg = BackboneConfig.preset("tiny")
    backbone = Backbone(cfg).eval()
    cache = backbone.new_cache()
    if context:
        backbone.step(
            torch.randn(1, context, cfg.hidden_size),
            torch.arange(context),
            cache,
            torch.zeros(1, 1, context, context),
        )
    counter = scaling_count.flop_counter()
    with torch.no_grad(), counter:
        backbone.step(
            torch.randn(1, new_tokens, cfg.hidden_size),
            torch.arange(context, context + new_tokens),
            cache,
            torch.zeros(1, 1, new_tokens, context + new_tokens),
        )
    measured = counter.get_total_flops()
    counted = scaling_count.backbone_step(cfg, new_tokens, context).flops
    assert measured > 0
    assert counted == pytest.approx(measured, rel=0.10)
    # attention over the cache is part of it: without it the count would be off by more than 10 % here
    attention = 4.0 * cfg.num_layers * new_tokens * (context + new_tokens) * cfg.hidden_size
    if context:
        assert abs(counted - attention - measured) > 0.10 * measured


def test_parameter_counts_match_the_models() -> None:
    for preset in ("tiny", "paper"):
        cfg = BackboneConfig.preset(preset)
        assert scaling_count.backbone_parameters(cfg) == Backbone.on_meta(cfg).num_parameters()
    paper = scaling_count.backbone_parameters(BackboneConfig.preset("paper"))
    assert 2.7e9 <= paper <= 3.1e9


def test_head_count_matches_a_real_sample() -> None:
    """Encode once + ``sample_steps`` denoising passes, counted on the meta device, against FlopCounterMode
    over a real ``sample`` (the second one: the first builds the cached time table)."""
    torch.manual_seed(0)
    cfg = HeadConfig.preset("tiny")
    head = build_head(cfg).eval()
    cond = torch.randn(1, cfg.tokens_per_frame, cfg.cond_dim)
    head.sample(cond)
    counter = scaling_count.flop_counter()
    with torch.no_grad(), counter:
        head.sample(cond)
    encode, denoise = scaling_count.head_costs(cfg)
    counted = encode.flops + cfg.sample_steps * denoise.flops
    assert counted == pytest.approx(counter.get_total_flops(), rel=0.10)
    assert counted == pytest.approx(encode.checked + cfg.sample_steps * denoise.checked, rel=1e-6)


def test_decoder_count_matches_a_real_streaming_frame() -> None:
    """The meta-device hook count of one streaming decode (full temporal caches) against FlopCounterMode
    on a real ``tiny`` decoder at the same point of its stream."""
    torch.manual_seed(0)
    cfg = AutoencoderConfig.preset("tiny", temporal=True)
    ae = DCAutoencoder(cfg).eval()
    cache = ae.new_cache()
    latent = torch.randn(1, *ae.latent_shape)
    with torch.no_grad():
        for _ in range(cfg.temporal_window):
            ae.decode_step(latent, cache)
    counter = scaling_count.flop_counter()
    with torch.no_grad(), counter:
        ae.decode_step(latent, cache)
    costs = scaling_count.autoencoder_costs(cfg)
    assert costs.decode.flops == pytest.approx(counter.get_total_flops(), rel=0.10)
    assert costs.decoder_parameters == sum(p.numel() for p in ae.decoder.parameters())
