"""Tile equally sized frames into one grid image with thin borders (for contact sheets and demos)."""

from __future__ import annotations

import numpy as np


def contact_sheet(
    images: list[np.ndarray], columns: int, border: int = 2, colour: tuple[int, int, int] = (255, 255, 255)
) -> np.ndarray:
    """Grid of H x W x 3 uint8 images, `columns` per row, separated and framed by `border` pixels."""
    if not images:
        raise ValueError("contact_sheet needs at least one image, got an empty list")
    if isinstance(columns, bool) or not isinstance(columns, int) or columns < 1:
        raise ValueError(f"columns must be a positive int, got {columns!r}")
    if border < 0:
        raise ValueError(f"border must be >= 0, got {border!r}")
    h, w = images[0].shape[:2]
    for i, im in enumerate(images):
        if im.shape != (h, w, 3) or im.dtype != np.uint8:
            raise ValueError(f"image {i} has shape {im.shape} / {im.dtype}; expected ({h}, {w}, 3) uint8")
    cols = min(columns, len(images))
    rows = -(-len(images) // cols)
    sheet = np.empty((rows * (h + border) + border, cols * (w + border) + border, 3), np.uint8)
    sheet[:] = colour
    for i, im in enumerate(images):
        r, c = divmod(i, cols)
        y, x = border + r * (h + border), border + c * (w + border)
        sheet[y : y + h, x : x + w] = im
    return sheet
