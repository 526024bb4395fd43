import pytest
import torch

from avatarlm.backbone import BackboneConfig
from avatarlm.conditions.config import ConditionConfig
from avatarlm.config import config_from_dict
from avatarlm.head import HeadConfig
from avatarlm.model import ARConfig, ARModel

C, T, D = 8, 4, 64


def small_config(**overrides) -> ARConfig:
    return ARConfig(
        backbone=BackboneConfig(
            hidden_size=D, num_layers=2, num_heads=4, num_kv_heads=2, intermediate_size=128
        ),
        head=HeadConfig(in_channels=C, tokens_per_frame=T, cond_dim=D, width=64, depth=2, loss_repeat=2),
        conditions=ConditionConfig(d_model=D, modalities=("audio", "pose")),
        latent_channels=C,
        tokens_per_frame=T,
        **overrides,
    )


def make_model(**overrides) -> ARModel:
    torch.manual_seed(0)
    return ARModel(small_config(**overrides))


def toy_batch(b: int = 2, f: int = 4, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    k = 2  # audio + pose
    return torch.randn(b, f, T, C, generator=g), torch.randn(b, f, k, D, generator=g)


def test_config_presets_round_trip_and_validate():
    cfg = ARConfig.preset("tiny")
    assert (cfg.latent_channels, cfg.tokens_per_frame, cfg.chunk_size) == (32, 16, 1)
    assert config_from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="head.in_channels"):
        cfg.replace(latent_channels=16)
    with pytest.raises(ValueError, match="sigma_inf"):
        cfg.replace(sigma_inf=0.5)


def test_loss_is_finite_and_backpropagates():
    model = make_model()
    latents, cond = toy_batch()
    loss = model.loss(latents, cond, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(loss)
    loss.backward()
    # the head's output layer starts at zero, so only it gets a gradient on the first step
    for p in (model.latent_proj.weight, model.slot_embedding, model.sigma_embedding.fc2.weight):
        assert p.grad is not None
    head_grads = [p.grad for p in model.head.parameters() if p.grad is not None]
    assert sum(float(g.abs().sum()) for g in head_grads) > 0
    # conditions of F-1 frames (cond(1..F-1)) give the same loss as F frames indexed by frame
    g = torch.Generator
    assert torch.equal(
        model.loss(latents, cond, generator=g().manual_seed(3)),
        model.loss(latents, cond[:, 1:], generator=g().manual_seed(3)),
    )
    with pytest.raises(ValueError, match="cond_tokens"):
        model.loss(latents, cond[:, 2:])


def test_loss_decreases_on_a_toy_batch():
    model = make_model()
    latents, cond = toy_batch()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    proj = model.latent_proj.weight.detach().clone()
    losses = []
    for _ in range(30):
        loss = model.loss(latents, cond, generator=torch.Generator().manual_seed(0))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]
    assert not torch.allclose(model.latent_proj.weight, proj)  # gradients reached the latent projection


@pytest.mark.parametrize("noise_injection", [True, False])
def test_history_noise_switch(noise_injection):
    model = make_model(noise_injection=noise_injection)
    latents, cond = toy_batch(b=3, f=5)
    history, sigmas = model.corrupt_history(latents, torch.Generator().manual_seed(0))
    assert torch.all(sigmas[:, 0] == 0) and torch.equal(history[:, 0], latents[:, 0])
    if noise_injection:
        assert torch.all(sigmas[:, 1:] > 0) and torch.all(sigmas <= model.config.sigma_max)
        assert not torch.allclose(history[:, 1:], latents[:, 1:])
    else:
        assert torch.all(sigmas == 0) and torch.equal(history, latents)
        assert model.config.inference_sigma == 0.0
    a = model.loss(latents, cond, generator=torch.Generator().manual_seed(5))
    b = model.loss(latents, cond, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


@pytest.mark.parametrize("chunk_size", [1, 2])
def test_backbone_is_causal_across_frames(chunk_size):
    model = make_model(chunk_size=chunk_size).eval()
    latents, cond = toy_batch(b=1, f=5)
    sigmas = torch.zeros(1, 5)
    with torch.no_grad():
        base, layout = model.hidden_states(latents, sigmas, cond[:, 1:])
        for j in (1, 3):
            changed = latents.clone()
            changed[:, j] += 1.0
            out, _ = model.hidden_states(changed, sigmas, cond[:, 1:])
            first = int(layout.latent_index[j, 0])
            torch.testing.assert_close(out[:, :first], base[:, :first], atol=1e-6, rtol=0)
            assert not torch.allclose(out[:, first], base[:, first], atol=1e-4)


def run_generation(model: ARModel, ref: torch.Tensor, cond: torch.Tensor, seed: int, steps: int = 4):
    state = model.start(ref, seed=seed)
    frames, hiddens = [ref], []
    for k in range(steps):
        frames.append(model.step(state, cond[:, k]))
        hiddens.append(state.hidden)
    return frames, hiddens


def test_cached_generation_equals_full_forward():
    model = make_model().eval()
    latents, cond = toy_batch(b=2, f=4)  # cond[:, k] is cond(k+1)
    seed = 7
    frames, hiddens = run_generation(model, latents[:, 0], cond, seed)
    history, sigmas = [], []
    for k in range(4):
        x, s = model.history_latent(frames[k], k, seed)
        history.append(x)
        sigmas.append(s)
    assert sigmas == [0.0] + [model.config.sigma_inf] * 3
    hist = torch.stack(history, dim=1)
    with torch.no_grad():
        full, layout = model.hidden_states(hist, torch.tensor(sigmas).expand(2, 4), cond)
    for k in range(4):
        torch.testing.assert_close(hiddens[k], full[:, layout.latent_index[k]], atol=1e-4, rtol=0)


def test_seeded_generation_is_reproducible():
    model = make_model().eval()
    latents, cond = toy_batch(b=1, f=4)
    a, _ = run_generation(model, latents[:, 0], cond, seed=3)
    b, _ = run_generation(model, latents[:, 0], cond, seed=3)
    c, _ = run_generation(model, latents[:, 0], cond, seed=4)
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x, y)
    assert not torch.equal(a[-1], c[-1])
    assert a[-1].shape == (1, T, C) and torch.isfinite(a[-1]).all()


@pytest.mark.parametrize("n", [2, 3])
def test_chunked_generation_equals_full_forward(n):
    """The paper's layout (chunks of n frames: one condition group, then n frame groups): cached steps give
    the hidden states of the training forward pass over the frames they made."""
    model = make_model(chunk_size=n).eval()
    f = 7  # f_0 .. f_6: a last, partial chunk
    latents, cond = toy_batch(b=2, f=f)
    cond = torch.cat([cond, torch.zeros(2, n, *cond.shape[2:])], dim=1)  # cond(j) past the clip: zeros
    seed = 5
    state = model.start(latents[:, 0], seed=seed)
    frames, hiddens = [latents[:, 0]], []
    for k in range(f - 1):
        frames.append(model.step(state, cond[:, k : k + n] if k % n == 0 else None))
        hiddens.append(state.hidden)
    history, sigmas = zip(*[model.history_latent(frames[k], k, seed) for k in range(f - 1)], strict=True)
    with torch.no_grad():
        full, layout = model.hidden_states(
            torch.stack(history, dim=1),
            torch.tensor(sigmas).expand(2, f - 1),
            cond[:, : -(-(f - 1) // n) * n],
        )
    for k in range(f - 1):
        torch.testing.assert_close(hiddens[k], full[:, layout.latent_index[k]], atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="opens a chunk"):
        model.step(model.start(latents[:, 0]), None)
    inside = model.start(latents[:, 0])
    model.step(inside, cond[:, :n])
    with pytest.raises(ValueError, match="inside a chunk"):
        model.step(inside, cond[:, 1:2])


def test_offline_generation_feeds_a_chunked_model_a_chunk_at_a_time():
    from avatarlm.pipeline.offline import generate_latents

    model = make_model(chunk_size=3).eval()
    latents, cond = toy_batch(b=1, f=5)
    out = generate_latents(model, latents[0, 0], cond[0], seed=2)  # 5 frames: chunks of 3 and 2 (+ zeros)
    state = model.start(latents[:, 0], seed=2)
    padded = torch.cat([cond, torch.zeros(1, 1, *cond.shape[2:])], dim=1)
    manual = [model.step(state, padded[:, k : k + 3] if k % 3 == 0 else None)[0] for k in range(5)]
    assert out.shape == (6, T, C)
    torch.testing.assert_close(out[1:], torch.stack(manual), atol=0, rtol=0)


def test_generation_refuses_bad_shapes():
    model = make_model()
    with pytest.raises(ValueError, match="reference_latent"):
        model.start(torch.zeros(1, T, C + 1))
    state = model.start(torch.zeros(1, T, C))
    with pytest.raises(ValueError, match="cond_tokens"):
        model.step(state, torch.zeros(1, 3, D))


def test_delta_target_steps_from_the_current_frame():
    """With target="delta" the head's sample is the scaled change: next = current + delta_scale * sample."""
    model = make_model(target="delta", delta_scale=0.1).eval()
    latents, cond = toy_batch(b=1, f=4)
    state = model.start(latents[:, 0], seed=5)
    for k in range(3):
        current = state.latent.clone()
        nxt = model.step(state, cond[:, k], generator=torch.Generator().manual_seed(k))
        sample = model.head.sample(state.hidden, generator=torch.Generator().manual_seed(k))
        torch.testing.assert_close(nxt, current + 0.1 * sample)


def test_frame_weight_skips_frames_in_the_loss():
    model = make_model(target="delta")
    latents, cond = toy_batch(b=2, f=4)
    weight = torch.ones(2, 3)
    weight[:, 0] = 0.0
    changed = latents.clone()
    changed[:, 1] += 5.0  # only f_1's target (and f_2's delta from it) change much ...
    a = model.loss(latents, cond, torch.Generator().manual_seed(0), frame_weight=weight)
    b = model.loss(changed, cond, torch.Generator().manual_seed(0), frame_weight=weight)
    c = model.loss(changed, cond, torch.Generator().manual_seed(0))
    assert torch.isfinite(a) and float(c.detach()) > float(b.detach())
    with pytest.raises(ValueError, match="frame_weight must be"):
        model.loss(latents, cond, frame_weight=torch.ones(2, 4))
    with pytest.raises(ValueError, match="target must be one of"):
        small_config(target="residual")


def test_face_probe_adds_a_supervised_read_out_of_the_hidden_states(tmp_path):
    """The probe's MSE joins the loss: it changes with the face targets only, trains the backbone, needs
    targets, and the model folder keeps it; without the weight there is no probe at all."""
    assert make_model().face_probe is None
    model = make_model(face_probe_weight=1.0, face_probe_fields=("mouth_open", "mouth_width"))
    latents, cond = toy_batch(b=2, f=4)
    face = torch.rand(2, 3, 2, generator=torch.Generator().manual_seed(5))
    g = torch.Generator
    a = model.loss(latents, cond, g().manual_seed(0), face_targets=face)
    b = model.loss(latents, cond, g().manual_seed(0), face_targets=face + 3.0)
    assert float(b.detach()) > float(a.detach()) + 1.0  # the probe starts near zero: far targets cost more
    b.backward()
    backbone_grads = [p.grad for p in model.backbone.parameters() if p.grad is not None]
    assert model.face_probe.weight.grad is not None and sum(float(x.abs().sum()) for x in backbone_grads) > 0
    with pytest.raises(ValueError, match="face_targets of shape"):
        model.loss(latents, cond)
    loaded = ARModel.from_pretrained(model.save_pretrained(tmp_path / "m"))
    torch.testing.assert_close(loaded.face_probe.weight, model.face_probe.weight)
    assert loaded.config.face_probe_fields == ("mouth_open", "mouth_width")
    with pytest.raises(ValueError, match="face_probe_weight"):
        small_config(face_probe_weight=-1.0)


def test_mouth_loss_weight_moves_the_loss_onto_the_mouth_channels():
    """With mouth_loss_weight the head loss weighs the first mouth_channels channels more: a target that
    differs there costs more than under equal weights; the config refuses a weight without mouth channels."""
    latents, cond = toy_batch(b=2, f=4)
    changed = latents.clone()
    changed[:, 1:, :, :2] += 3.0  # the mouth channels of every predicted frame move
    g = torch.Generator
    plain, weighted = make_model(), make_model(mouth_channels=2, mouth_loss_weight=8.0)
    rise_plain = plain.loss(changed, cond, g().manual_seed(0)) - plain.loss(latents, cond, g().manual_seed(0))
    rise_weighted = weighted.loss(changed, cond, g().manual_seed(0)) - weighted.loss(
        latents, cond, g().manual_seed(0)
    )
    assert float(rise_weighted.detach()) > 2.0 * float(rise_plain.detach()) > 0
    assert weighted.config.channel_weight().tolist()[:3] == [8.0, 8.0, 1.0]
    assert plain.config.channel_weight() is None
    with pytest.raises(ValueError, match="needs mouth_channels"):
        small_config(mouth_loss_weight=4.0)
    with pytest.raises(ValueError, match="mouth_channels must be in"):
        small_config(mouth_channels=C)


@pytest.mark.parametrize("dim", [0, 3])
def test_config_refuses_an_odd_or_empty_sigma_embedding(dim):
    with pytest.raises(ValueError, match="sigma_frequency_dim must be even"):
        small_config(sigma_frequency_dim=dim)


def test_composed_presets_build_on_meta_with_the_paper_shape():
    from avatarlm.trainer.ar_config import ARTrainConfig

    counts = {}
    for name in ("small", "paper"):
        with torch.device("meta"):
            counts[name] = sum(p.numel() for p in ARModel(ARConfig.preset(name)).parameters())
    paper = ARConfig.preset("paper")
    assert (paper.chunk_size, paper.tokens_per_frame, paper.latent_channels) == (6, 60, 128)
    assert paper.head.architecture == "transformer" and paper.hidden_size == 2048
    assert 3.20e9 < counts["paper"] < 3.21e9 and 3.9e7 < counts["small"] < 4.1e7
    train = ARTrainConfig.preset("paper")
    assert train.sharding == "fsdp" and train.model.backbone.gradient_checkpointing
