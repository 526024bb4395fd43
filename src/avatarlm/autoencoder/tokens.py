"""Latent grids <-> token sequences: (..., C, h, w) <-> (..., h * w, C), tokens in row-major order.

The autoencoder works on grids; the AR model sees one frame as ``h * w`` tokens of ``C`` channels. Token
``i`` is grid cell ``(i // w, i % w)``; the two functions are exact inverses.
"""

from __future__ import annotations

import numpy as np
import torch

Array = torch.Tensor | np.ndarray


def grid_to_tokens(latents: Array) -> Array:
    """(..., C, h, w) -> (..., h * w, C)."""
    if latents.ndim < 3:
        raise ValueError(f"latent grids must be (..., C, h, w), got shape {tuple(latents.shape)}")
    c, h, w = latents.shape[-3:]
    flat = latents.reshape(*latents.shape[:-3], c, h * w)
    return flat.swapaxes(-1, -2)


def tokens_to_grid(tokens: Array, height: int, width: int) -> Array:
    """(..., h * w, C) -> (..., C, h, w) for a grid of ``height`` x ``width`` tokens."""
    if tokens.ndim < 2 or tokens.shape[-2] != height * width:
        raise ValueError(
            f"tokens must be (..., {height * width}, C) for a {height}x{width} grid, got {tuple(tokens.shape)}"
        )
    grid = tokens.swapaxes(-1, -2)
    return grid.reshape(*grid.shape[:-1], height, width)
