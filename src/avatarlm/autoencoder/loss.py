"""Autoencoder training loss: L1 + (1 - SSIM) + frame-difference L1 + optional patch-GAN hinge term."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .discriminator import PatchDiscriminator


def gaussian_window(size: int, sigma: float, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Normalised 1-D gaussian of ``size`` taps."""
    x = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def ssim(
    x: torch.Tensor,
    y: torch.Tensor,
    data_range: float = 2.0,
    window_size: int = 11,
    sigma: float = 1.5,
    reduction: str = "mean",
) -> torch.Tensor:
    """Structural similarity of images (..., C, H, W) with a gaussian window ('valid' filtering).

    ``data_range`` is 2 for images in [-1, 1]. ``reduction``: "mean" (scalar) or "none" (one value per
    image, shape x.shape[:-3]).
    """
    if x.shape != y.shape or x.dim() < 3:
        raise ValueError(
            f"ssim needs two images of the same shape (..., C, H, W), got {x.shape} and {y.shape}"
        )
    if min(x.shape[-2:]) < window_size:
        raise ValueError(f"images {tuple(x.shape[-2:])} are smaller than the SSIM window {window_size}")
    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    lead, (c, h, w) = x.shape[:-3], x.shape[-3:]
    x = x.reshape(-1, c, h, w)
    y = y.reshape(-1, c, h, w)
    g = gaussian_window(window_size, sigma, x.device, x.dtype)
    gh = g.view(1, 1, 1, -1).expand(5 * c, 1, 1, window_size)
    gv = g.view(1, 1, -1, 1).expand(5 * c, 1, window_size, 1)
    stack = torch.cat([x, y, x * x, y * y, x * y], dim=1)
    filtered = F.conv2d(F.conv2d(stack, gh, groups=5 * c), gv, groups=5 * c)
    mu_x, mu_y, xx, yy, xy = filtered.split(c, dim=1)
    var_x, var_y, cov = xx - mu_x**2, yy - mu_y**2, xy - mu_x * mu_y
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    num = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    den = (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    per_image = (num / den).flatten(1).mean(dim=1)
    return per_image.mean() if reduction == "mean" else per_image.view(lead)


class AutoencoderLoss(nn.Module):
    """Reconstruction loss on clips (B, T, 3, H, W); holds the patch discriminator when ``gan_weight > 0``."""

    def __init__(
        self,
        l1_weight: float = 1.0,
        ssim_weight: float = 0.5,
        temporal_weight: float = 0.5,
        gan_weight: float = 0.0,
        gan_start_step: int = 0,
        disc_width: int = 32,
    ) -> None:
        super().__init__()
        self.l1_weight, self.ssim_weight, self.temporal_weight = l1_weight, ssim_weight, temporal_weight
        self.gan_weight, self.gan_start_step = gan_weight, gan_start_step
        self.discriminator = PatchDiscriminator(width=disc_width) if gan_weight > 0 else None

    def gan_active(self, step: int) -> bool:
        return self.discriminator is not None and step >= self.gan_start_step

    def forward(
        self, recon: torch.Tensor, target: torch.Tensor, step: int = 0
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Generator-side loss and its parts (as floats, for logging)."""
        if recon.shape != target.shape or recon.dim() != 5:
            raise ValueError(
                f"recon and target must be clips (B, T, 3, H, W), got {recon.shape}, {target.shape}"
            )
        l1 = (recon - target).abs().mean()
        loss = self.l1_weight * l1
        parts = {"l1": float(l1.detach())}
        if self.ssim_weight > 0:
            s = ssim(recon, target)
            loss = loss + self.ssim_weight * (1 - s)
            parts["ssim"] = float(s.detach())
        if self.temporal_weight > 0 and recon.shape[1] > 1:
            flicker = ((recon[:, 1:] - recon[:, :-1]) - (target[:, 1:] - target[:, :-1])).abs().mean()
            loss = loss + self.temporal_weight * flicker
            parts["flicker"] = float(flicker.detach())
        if self.gan_active(step):
            assert self.discriminator is not None
            self.discriminator.requires_grad_(False)
            g = -self.discriminator(recon.flatten(0, 1)).mean()
            self.discriminator.requires_grad_(True)
            loss = loss + self.gan_weight * g
            parts["gan_g"] = float(g.detach())
        parts["loss"] = float(loss.detach())
        return loss, parts

    def discriminator_loss(self, recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Hinge loss of the discriminator on real clips vs detached reconstructions."""
        if self.discriminator is None:
            raise ValueError("discriminator_loss needs gan_weight > 0")
        real = self.discriminator(target.flatten(0, 1))
        fake = self.discriminator(recon.detach().flatten(0, 1))
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()
