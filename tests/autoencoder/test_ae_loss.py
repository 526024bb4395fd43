import numpy as np
import pytest
import torch

from ae_helpers import shapes_batch, small_config, to_frames
from avatarlm.autoencoder import AutoencoderLoss, DCAutoencoder, PatchDiscriminator, ssim


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return to_frames(shapes_batch(np.random.default_rng(1), 3, 1, 32))[:, 0]


def test_ssim_is_one_for_identical_images(images: torch.Tensor) -> None:
    assert ssim(images, images).item() == pytest.approx(1.0, abs=1e-6)


def test_ssim_decreases_with_noise(images: torch.Tensor) -> None:
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(images.shape, generator=g)
    values = [ssim(images + s * noise, images).item() for s in (0.02, 0.1, 0.3)]
    assert 1.0 > values[0] > values[1] > values[2]
    per_image = ssim(images + 0.1 * noise, images, reduction="none")
    assert per_image.shape == (3,)


def test_ssim_rejects_bad_input(images: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="same shape"):
        ssim(images, images[:, :, :16])
    with pytest.raises(ValueError, match="smaller than the SSIM window"):
        ssim(images[..., :8, :8], images[..., :8, :8])


def test_loss_parts_and_flicker_term(images: torch.Tensor) -> None:
    target = images[None].repeat(2, 1, 1, 1, 1)  # (2, 3, 3, H, W)
    loss_fn = AutoencoderLoss(temporal_weight=1.0)
    zero, parts = loss_fn(target, target)
    assert zero.item() == pytest.approx(0.0, abs=1e-6) and parts["flicker"] == 0.0
    flickery = target.clone()
    flickery[:, 1] += 0.2  # a constant offset on one frame: L1 and flicker both see it
    loss, parts = loss_fn(flickery, target)
    assert parts["l1"] > 0 and parts["flicker"] > 0 and loss.item() > 0


def test_gan_term_switches_on_after_warmup(images: torch.Tensor) -> None:
    torch.manual_seed(0)
    loss_fn = AutoencoderLoss(gan_weight=0.1, gan_start_step=5, disc_width=8)
    target = images[:, None]
    recon = (target + 0.1).requires_grad_(True)
    _, before = loss_fn(recon, target, step=4)
    _, after = loss_fn(recon, target, step=5)
    assert "gan_g" not in before and "gan_g" in after
    d_loss = loss_fn.discriminator_loss(recon, target)
    d_loss.backward()
    assert recon.grad is None  # the discriminator step does not reach the autoencoder
    assert loss_fn.discriminator is not None
    assert all(p.grad is not None for p in loss_fn.discriminator.parameters())
    assert PatchDiscriminator(width=8)(images).shape == (3, 1, 4, 4)


def test_discriminator_loss_needs_gan() -> None:
    with pytest.raises(ValueError, match="gan_weight"):
        AutoencoderLoss().discriminator_loss(torch.zeros(1, 1, 3, 32, 32), torch.zeros(1, 1, 3, 32, 32))


def test_training_steps_reduce_loss() -> None:
    torch.manual_seed(0)
    model = DCAutoencoder(small_config())
    loss_fn = AutoencoderLoss()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    x = to_frames(shapes_batch(np.random.default_rng(2), 6, 1, 32))
    losses = []
    for _ in range(30):
        loss, _ = loss_fn(model.reconstruct(x), x)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < 0.65 * np.mean(losses[:3]), losses
