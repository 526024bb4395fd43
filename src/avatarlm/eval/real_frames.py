"""Real photographs that ship inside installed packages (scikit-image's data module), framed like our
avatars, for an honest look at how models trained on the synthetic world do on real pixels."""

from __future__ import annotations

import numpy as np
from PIL import Image


def _skimage_data():
    try:
        import skimage.data
    except ImportError as e:
        raise RuntimeError("real-frame evaluation needs scikit-image (pip install scikit-image)") from e
    return skimage.data


def _resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.LANCZOS))


def real_portraits(height: int, width: int) -> dict[str, np.ndarray]:
    """Named real photos cropped to a head-and-shoulders frame and resized to (height, width, 3)."""
    data = _skimage_data()
    astronaut = data.astronaut()  # 512 x 512, a real portrait
    cat = data.chelsea()  # 300 x 451, a real photo of a cat's face
    return {
        "astronaut": _resize(astronaut[0:300, 100:400], height, width),
        "chelsea": _resize(cat[0:300, 60:360], height, width),
    }


def real_pan_clip(height: int, width: int, frames: int = 16) -> np.ndarray:
    """A short real 'video': a slow pan and zoom over the astronaut portrait (real pixels in motion)."""
    astronaut = _skimage_data().astronaut()
    out = []
    for t in range(frames):
        size = 300 - 3 * t
        y, x = 2 * t, 100 + 3 * t
        out.append(_resize(astronaut[y : y + size, x : x + size], height, width))
    return np.stack(out)
