"""Small configs and synthetic images shared by the autoencoder tests."""

from __future__ import annotations

import numpy as np
import torch

from avatarlm.autoencoder.model import DCAutoencoder
from avatarlm.config import AutoencoderConfig


def small_config(**overrides: object) -> AutoencoderConfig:
    """32x32 -> 4x4x8 (f8), three levels, temporal conv + attention at the two lowest levels."""
    values: dict[str, object] = dict(
        image_height=32,
        image_width=32,
        latent_channels=8,
        patch_size=2,
        widths=(8, 16, 32),
        encoder_depths=(1, 1, 1),
        decoder_depths=(1, 1, 1),
        attention_head_dim=8,
        temporal_levels=3,
        temporal_attention_levels=2,
        temporal_window=3,
        temporal_kernel=3,
    )
    values.update(overrides)
    return AutoencoderConfig.from_dict(values)


def randomize_temporal(model: DCAutoencoder, seed: int = 0) -> None:
    """Give the (zero-initialised) temporal layers random weights so they actually mix frames."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.temporal_parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)


def randomize_fusions(model: DCAutoencoder, seed: int = 0) -> None:
    """Give the (zero-initialised) fusions' output convs and the flow random weights and open the blend's
    gate, so the reference is read and warped."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for fusion in model.decoder.fusions:
            fusion.out.weight.copy_(torch.randn(fusion.out.weight.shape, generator=g) * 0.2)
        model.decoder.blend.gate.fill_(0.05)  # times GATE_SCALE: half way
        flow = model.decoder.warp.conv2.weight
        flow.copy_(torch.randn(flow.shape, generator=g) * 0.01)  # a small warp


def shapes_batch(rng: np.random.Generator, batch: int, frames: int, size: int) -> np.ndarray:
    """uint8 (B, T, H, W, 3): a coloured rectangle and disc on a coloured background, drifting over time."""
    out = np.empty((batch, frames, size, size, 3), dtype=np.uint8)
    yy, xx = np.mgrid[:size, :size]
    for b in range(batch):
        bg, c1, c2 = rng.integers(0, 256, size=(3, 3))
        x0, y0 = rng.integers(0, size // 2, size=2)
        w, h = rng.integers(size // 4, size // 2, size=2)
        cx, cy = rng.integers(size // 4, 3 * size // 4, size=2)
        r = rng.integers(size // 8, size // 4)
        vx, vy = rng.integers(-1, 2, size=2)
        for t in range(frames):
            img = np.empty((size, size, 3), dtype=np.uint8)
            img[:] = bg
            img[(yy >= y0) & (yy < y0 + h) & (xx >= x0 + t * vx) & (xx < x0 + w + t * vx)] = c1
            img[(yy - cy - t * vy) ** 2 + (xx - cx) ** 2 < r * r] = c2
            out[b, t] = img
    return out


def to_frames(batch: np.ndarray) -> torch.Tensor:
    """uint8 (B, T, H, W, 3) -> float (B, T, 3, H, W) in [-1, 1]."""
    return torch.from_numpy(batch).permute(0, 1, 4, 2, 3).float() / 127.5 - 1
