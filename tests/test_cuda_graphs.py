"""CUDA graphs: the head's sampling (``head/graphed.py``) and the backbone's steps on a cache in fixed
buffers (``backbone_graphs.py``) replay to the same results as the plain code. The CUDA tests run where a GPU
is (``benchmarks/bench_gpu.py``'s machines); on the CPU the model keeps the plain loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ar_helpers import ar_config, random_pipeline_folder
from avatarlm.backbone import Backbone
from avatarlm.backbone_graphs import StaticKVCache
from avatarlm.head import HeadConfig, build_head
from avatarlm.head.graphed import GraphedSampler
from avatarlm.model import ARModel
from avatarlm.pipeline.folder import load_pipeline
from avatarlm.pipeline.session import SessionConfig, StreamingSession
from test_backbone_graphs import CFG, _step

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_cpu_steps_ignore_cuda_graphs():
    torch.manual_seed(0)
    model = ARModel(ar_config()).eval()
    cfg = model.config
    reference = torch.randn(1, cfg.tokens_per_frame, cfg.latent_channels)
    cond = torch.randn(1, 1, cfg.cond_tokens_per_frame, cfg.hidden_size)
    plain = model.step(model.start(reference, seed=3), cond)
    model.use_cuda_graphs()
    assert torch.equal(model.step(model.start(reference, seed=3), cond), plain)
    with pytest.raises(ValueError, match="CUDA graphs need CUDA tensors"):
        GraphedSampler(model.head)(torch.randn(1, 16, 64), torch.randn(1, 16, 8))


@cuda
@pytest.mark.parametrize("architecture", ["mlp", "transformer"])
def test_graphed_sampling_equals_the_loop(architecture):
    torch.manual_seed(0)
    cfg = HeadConfig(
        architecture=architecture, in_channels=8, tokens_per_frame=16, cond_dim=64, width=64, depth=2
    )
    head = build_head(cfg).cuda().eval()
    sampler = GraphedSampler(head)
    for guidance in (1.0, 2.5):
        for _ in range(3):  # recorded once, replayed with new inputs
            cond, noise = torch.randn(2, 16, 64, device="cuda"), torch.randn(2, 16, 8, device="cuda")
            free = torch.randn(2, 16, 64, device="cuda") if guidance != 1.0 else None
            want = head.sample(cond, noise=noise, unconditional=free, guidance=guidance)
            got = sampler(cond, noise, free, guidance)
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert len(sampler) == 2


@cuda
def test_session_on_cuda_with_graphs_equals_without(tmp_path):
    pipe = load_pipeline(random_pipeline_folder(tmp_path), "cuda")
    audio = (0.1 * np.sin(np.arange(32000) / 16000 * 2 * np.pi * 200)).astype(np.float32)  # 2 window rolls
    frames = {}
    for graphs in (False, True):
        session = StreamingSession(pipe, identity_seed=2, config=SessionConfig(cuda_graphs=graphs))
        session.push_audio(audio)
        session.flush()
        frames[graphs] = np.stack([f for _, f in session.frames()]).astype(int)
    assert pipe.model.uses_cuda_graphs and isinstance(session._state.cache, StaticKVCache)
    diff = np.abs(frames[True] - frames[False])
    assert len(frames[True]) == 51 and diff.mean() < 0.1 and diff.max() <= 4, (diff.mean(), diff.max())


@cuda
def test_graphed_backbone_steps_equal_the_growing_cache():
    torch.manual_seed(0)
    backbone = Backbone(CFG).cuda().eval()
    growing, static = backbone.new_cache(), StaticKVCache(CFG.num_layers, capacity=32)
    with torch.no_grad():
        for group in range(14):
            x = torch.randn(2, 7 if group % 3 else 11, CFG.hidden_size, device="cuda")
            want, got = _step(backbone, growing, x, group), _step(backbone, static, x, group)
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
            if group in (6, 11):
                backbone.evict(growing, 5, 19)
                backbone.evict(static, 5, 19)
    assert static.graphs == 2 and all(g.graph is not None for g in static._graphs.values())
