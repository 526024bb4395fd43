"""Deep-compression autoencoder with causal temporal layers for frame-by-frame streaming."""

from .discriminator import PatchDiscriminator
from .loss import AutoencoderLoss, ssim
from .model import AutoencoderCache, DCAutoencoder
from .temporal import TemporalCache

__all__ = [
    "AutoencoderCache",
    "AutoencoderLoss",
    "DCAutoencoder",
    "PatchDiscriminator",
    "TemporalCache",
    "ssim",
]
