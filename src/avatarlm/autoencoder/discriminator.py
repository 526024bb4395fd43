"""Small patch discriminator for the autoencoder's adversarial (hinge) loss."""

from __future__ import annotations

import torch
from torch import nn


class PatchDiscriminator(nn.Module):
    """Images (N, 3, H, W) -> patch logits (N, 1, H/8, W/8): three stride-2 convs and a 3x3 logit conv."""

    def __init__(self, in_channels: int = 3, width: int = 32) -> None:
        super().__init__()
        if width < 4 or width % 4:
            raise ValueError(f"discriminator width must be a positive multiple of 4, got {width}")
        layers: list[nn.Module] = [nn.Conv2d(in_channels, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
        c = width
        for _ in range(2):
            layers += [
                nn.Conv2d(c, 2 * c, 4, stride=2, padding=1),
                nn.GroupNorm(4, 2 * c),
                nn.LeakyReLU(0.2),
            ]
            c *= 2
        layers.append(nn.Conv2d(c, 1, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)
