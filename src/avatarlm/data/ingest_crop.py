"""The stabilised face crop of ingestion: real video framed the way the synthetic world frames its faces.

In a synthetic frame the forehead-to-chin length (mesh points 10 and 152, in 3D so that a nodding head does
not zoom) is 0.41 of the frame's side and the midpoint of the outer eye corners sits at (0.50, 0.41)
(measured on 40 renders in varied poses). A clip's crop keeps one size (the median over the clip, so the
face does not pump) and follows the eyes with a centred moving average of ``smooth_s`` seconds, so the
face is steady in the crop while the head still moves in it, as the renderer's heads do.
"""

from __future__ import annotations

import numpy as np

from avatarlm.data.face_landmarks import CHIN, EYE_OUTER, FOREHEAD

FACE_LENGTH = 0.41  # forehead-chin length / frame side, synthetic world
EYES_AT = np.array([0.50, 0.41])  # eye midpoint / frame side, synthetic world


def face_length(points: np.ndarray) -> np.ndarray:
    """(N, 468, 3) mesh in pixels -> (N,) forehead-chin length in pixels (3D)."""
    p = np.asarray(points, np.float64)
    return np.linalg.norm(p[:, FOREHEAD] - p[:, CHIN], axis=-1)


def _moving_average(x: np.ndarray, window: int) -> np.ndarray:
    if window <= 1 or len(x) < 2:
        return x
    pad = window // 2
    padded = np.pad(x, ((pad, window - 1 - pad), (0, 0)), mode="edge")
    kernel = np.ones(window) / window
    return np.stack([np.convolve(padded[:, j], kernel, mode="valid") for j in range(x.shape[1])], axis=1)


def crop_boxes(points: np.ndarray, fps: float, smooth_s: float = 0.5) -> np.ndarray:
    """(N, 468, 3) mesh in source pixels -> (N, 3) crop boxes ``(x0, y0, side)`` in source pixels."""
    p = np.asarray(points, np.float64)
    side = float(np.median(face_length(p))) / FACE_LENGTH
    eyes = 0.5 * (p[:, EYE_OUTER[0], :2] + p[:, EYE_OUTER[1], :2])
    eyes = _moving_average(eyes, max(1, int(round(smooth_s * fps))))
    top_left = eyes - EYES_AT * side
    return np.concatenate([top_left, np.full((len(p), 1), side)], axis=1)


def crop(image: np.ndarray, box: np.ndarray, size: int) -> np.ndarray:
    """The ``size`` x ``size`` crop of ``box`` (which may reach outside the image: edges are repeated),
    resized by pixel-area averaging (no aliasing when a large face is brought down to a small frame)."""
    import cv2

    x0, y0, side = (float(v) for v in box)
    h, w = image.shape[:2]
    n = max(1, int(round(side)))
    left, top = int(round(x0)), int(round(y0))
    pad = [max(0, -top), max(0, top + n - h), max(0, -left), max(0, left + n - w)]
    region = image[max(0, top) : min(h, top + n), max(0, left) : min(w, left + n)]
    if region.size == 0:
        raise ValueError("the crop lies outside the image")
    if any(pad):
        region = cv2.copyMakeBorder(region, pad[0], pad[1], pad[2], pad[3], cv2.BORDER_REPLICATE)
    interpolation = cv2.INTER_AREA if n > size else cv2.INTER_LINEAR
    return cv2.resize(region, (size, size), interpolation=interpolation)


def in_crop(xy: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """(N, K, 2) source pixels -> (N, K, 2) fractions of each frame's crop (the renderer's keypoint units)."""
    b = np.asarray(boxes, np.float64)
    return ((np.asarray(xy, np.float64) - b[:, None, :2]) / b[:, None, 2:3]).astype(np.float32)
