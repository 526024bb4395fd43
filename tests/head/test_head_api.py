import pytest
import torch

from avatarlm.config import config_from_dict
from avatarlm.head import FlowHead, FrameTransformerHead, HeadConfig, MLPHead, build_head

ARCHS = ["mlp", "transformer"]


def small_head(arch: str, seed: int = 0) -> FlowHead:
    """A small head with every parameter randomised (fresh heads output exactly zero by design)."""
    torch.manual_seed(seed)
    cfg = HeadConfig(
        architecture=arch, in_channels=6, tokens_per_frame=5, cond_dim=12, width=32, depth=2, num_heads=4
    )
    head = build_head(cfg)
    with torch.no_grad():
        for p in head.parameters():
            p.copy_(torch.randn_like(p) * 0.2)
    return head


def inputs(b: int = 3, t: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(b, t, 6, generator=g), torch.randn(b, t, 12, generator=g)


def test_presets_build_both_architectures_and_round_trip():
    for name in HeadConfig.preset_names():
        cfg = HeadConfig.preset(name)
        assert config_from_dict(cfg.to_dict()) == cfg
    tiny = HeadConfig.preset("tiny")
    assert isinstance(build_head(tiny), MLPHead)
    assert isinstance(build_head(tiny.replace(architecture="transformer")), FrameTransformerHead)


@pytest.mark.parametrize(
    "bad",
    [
        dict(architecture="cnn"),
        dict(width=30, num_heads=4, architecture="transformer"),
        dict(depth=0),
        dict(train_timesteps="cosine"),
        dict(sample_shift=0.0),
        dict(loss_repeat=0),
    ],
)
def test_config_rejects_bad_values(bad):
    name = next(iter(bad))
    with pytest.raises(ValueError, match=name):
        HeadConfig(**bad)


def test_fresh_head_predicts_zero_velocity():
    head = build_head(HeadConfig(in_channels=6, tokens_per_frame=5, cond_dim=12, width=32, depth=2))
    x, cond = inputs()
    assert torch.equal(head.sample(cond, steps=2, noise=x), x)


@pytest.mark.parametrize("arch", ARCHS)
def test_loss_is_scalar_and_reaches_every_parameter(arch):
    head = small_head(arch)
    x, cond = inputs()
    loss = head.loss(x, cond, repeat=2)
    assert loss.ndim == 0 and loss.item() > 0
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in head.parameters())


@pytest.mark.parametrize("arch", ARCHS)
def test_loss_is_seedable_and_repeat_draws_more_noise(arch):
    head = small_head(arch)
    x, cond = inputs()

    def loss(repeat: int, seed: int = 0) -> float:
        return head.loss(x, cond, repeat=repeat, generator=torch.Generator().manual_seed(seed)).item()

    assert loss(1) == loss(1)
    assert loss(1) != loss(1, seed=1)
    assert loss(4) != loss(1)


@pytest.mark.parametrize("arch", ARCHS)
def test_mask_ignores_masked_rows(arch):
    head = small_head(arch)
    x, cond = inputs()
    mask = torch.tensor([True, True, False])
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    a = head.loss(x, cond, repeat=1, mask=mask, generator=g())
    x2 = x.clone()
    x2[2] += 100.0
    b = head.loss(x2, cond, repeat=1, mask=mask, generator=g())
    assert torch.allclose(a, b)
    with pytest.raises(ValueError, match=r"mask must have shape \(3,\)"):
        head.loss(x, cond, mask=torch.ones(4))


@pytest.mark.parametrize("arch", ARCHS)
def test_channel_weight_splits_the_loss_by_channel(arch):
    head = small_head(arch)
    x, cond = inputs()
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    plain = head.loss(x, cond, repeat=2, generator=g())
    per_channel = [
        head.loss(x, cond, repeat=2, generator=g(), channel_weight=torch.eye(6)[c]) for c in range(6)
    ]
    assert torch.allclose(torch.stack(per_channel).mean(), plain, rtol=1e-5)  # the mean of one-hot losses
    assert torch.allclose(
        head.loss(x, cond, repeat=2, generator=g(), channel_weight=torch.full((6,), 3.0)), plain
    )
    assert len({round(float(v.detach()), 6) for v in per_channel}) == 6  # the channels' errors differ
    with pytest.raises(ValueError, match="channel_weight must be"):
        head.loss(x, cond, channel_weight=-torch.ones(6))
    with pytest.raises(ValueError, match="channel_weight must be"):
        head.loss(x, cond, channel_weight=torch.ones(5))


@pytest.mark.parametrize("arch", ARCHS)
def test_directions_weigh_the_error_in_their_span(arch):
    head = small_head(arch)
    x, cond = inputs()  # rows of 5 tokens x 6 channels
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    plain = head.loss(x, cond, repeat=2, generator=g())
    every = torch.eye(30).reshape(30, 5, 6)  # an orthonormal basis of the whole row: every error counts twice
    assert torch.allclose(head.loss(x, cond, repeat=2, generator=g(), directions=every), 2 * plain, rtol=1e-5)
    rotation = torch.linalg.qr(torch.randn(30, 30, generator=torch.Generator().manual_seed(1)))[0]
    rotated = 3.0**0.5 * rotation.T.reshape(30, 5, 6)  # another basis, weight 3: the same loss, four times
    assert torch.allclose(
        head.loss(x, cond, repeat=2, generator=g(), directions=rotated), 4 * plain, rtol=1e-4
    )
    one = head.loss(x, cond, repeat=2, generator=g(), directions=torch.eye(30)[:1].reshape(1, 5, 6))
    assert plain < one < 2 * plain  # one direction adds a share of the error
    with pytest.raises(ValueError, match="directions must be"):
        head.loss(x, cond, directions=torch.ones(2, 5, 5))


@pytest.mark.parametrize("arch", ARCHS)
def test_seeded_sampling_is_deterministic(arch):
    head = small_head(arch)
    _, cond = inputs()
    a = head.sample(cond, generator=torch.Generator().manual_seed(7))
    b = head.sample(cond, generator=torch.Generator().manual_seed(7))
    c = head.sample(cond, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    noise = torch.randn(3, 5, 6, generator=torch.Generator().manual_seed(7))
    assert torch.equal(head.sample(cond, noise=noise), a)


@pytest.mark.parametrize("arch", ARCHS)
def test_steps_temperature_and_shift_change_the_path(arch):
    head = small_head(arch)
    _, cond = inputs()
    noise = torch.randn(3, 5, 6)
    one, four = head.sample(cond, steps=1, noise=noise), head.sample(cond, steps=4, noise=noise)
    assert one.shape == four.shape == (3, 5, 6)
    assert torch.isfinite(one).all() and torch.isfinite(four).all()
    assert not torch.allclose(one, four)
    cold = head.sample(cond, temperature=0.0, generator=torch.Generator().manual_seed(0))
    assert torch.equal(cold, head.sample(cond, temperature=0.0, generator=torch.Generator().manual_seed(1)))
    assert not torch.allclose(four, head.sample(cond, steps=4, noise=noise, shift=1.0))


def test_mlp_head_treats_tokens_independently_and_transformer_does_not():
    x, cond = inputs()
    cond2 = cond.clone()
    cond2[:, -1] += 1.0  # change only the last token's condition
    for arch, independent in (("mlp", True), ("transformer", False)):
        head = small_head(arch)
        a = head.sample(cond, noise=x)
        b = head.sample(cond2, noise=x)
        assert torch.equal(a[:, :-1], b[:, :-1]) is independent, arch
        assert not torch.allclose(a[:, -1], b[:, -1])


def test_mlp_head_accepts_any_token_count():
    head = small_head("mlp")
    assert head.sample(torch.randn(2, 9, 12)).shape == (2, 9, 6)


@pytest.mark.parametrize("arch", ARCHS)
def test_bad_shapes_raise_naming_them(arch):
    head = small_head(arch)
    x, cond = inputs()
    with pytest.raises(ValueError, match=r"cond must have shape \(B, T, 12\), got \(3, 5, 11\)"):
        head.sample(cond[..., :11])
    with pytest.raises(ValueError, match=r"target must have shape .*\(3, 5, 6\).*got \(3, 5, 7\)"):
        head.loss(torch.randn(3, 5, 7), cond)
    with pytest.raises(ValueError, match=r"noise must have shape .*got \(2, 5, 6\)"):
        head.sample(cond, noise=x[:2])
    with pytest.raises(ValueError, match=r"cond must have shape"):
        head.sample(cond[0])
    with pytest.raises(ValueError, match="steps"):
        head.sample(cond, steps=0)
    with pytest.raises(ValueError, match="temperature"):
        head.sample(cond, temperature=-1.0)
    with pytest.raises(ValueError, match="repeat"):
        head.loss(x, cond, repeat=0)


def test_transformer_head_refuses_wrong_token_count():
    head = small_head("transformer")
    with pytest.raises(ValueError, match="tokens_per_frame=5 tokens, got T=4"):
        head.sample(torch.randn(2, 4, 12))


@pytest.mark.parametrize("arch", ARCHS)
def test_sample_is_euler_on_velocity_and_follows_weight_updates(arch):
    head = small_head(arch)
    _, cond = inputs()
    noise = torch.randn(3, 5, 6)

    def manual_euler() -> torch.Tensor:
        grid = [1.0, 0.9, 0.75, 0.5, 0.0]  # 4 steps, shift 3
        x, context = noise, head.encode_cond(cond)
        with torch.no_grad():
            for a, b in zip(grid[:-1], grid[1:], strict=True):
                x = x + (b - a) * head.velocity(x, torch.tensor([a]), context)
        return x

    assert torch.allclose(head.sample(cond, noise=noise), manual_euler(), atol=1e-5)
    with torch.no_grad():  # the cached time modulations must notice changed weights
        head.time_embed.fc2.bias.add_(0.5)
    assert torch.allclose(head.sample(cond, noise=noise), manual_euler(), atol=1e-5)


@pytest.mark.parametrize("arch", ARCHS)
def test_guidance_interpolates_and_extrapolates_the_velocity(arch):
    """Classifier-free guidance: 1 is the conditional sample, 0 the unconditional one, 2 goes as far past the
    conditional path as the unconditional one lies before it (one Euler step: linear in the velocity)."""
    head = small_head(arch)
    _, cond = inputs()
    free = torch.randn(cond.shape, generator=torch.Generator().manual_seed(3))
    noise = torch.randn(3, 5, 6)
    plain = head.sample(cond, noise=noise)
    assert torch.equal(head.sample(cond, noise=noise, unconditional=free, guidance=1.0), plain)
    torch.testing.assert_close(head.sample(cond, noise=noise, unconditional=free, guidance=0.0),
                               head.sample(free, noise=noise))  # fmt: skip
    c, u = head.sample(cond, steps=1, noise=noise), head.sample(free, steps=1, noise=noise)
    torch.testing.assert_close(
        head.sample(cond, steps=1, noise=noise, unconditional=free, guidance=2.0), 2 * c - u
    )
    with pytest.raises(ValueError, match="unconditional must match"):
        head.sample(cond, unconditional=free[:2])
