"""What ingestion reads off a MediaPipe face mesh (468 points): the synthetic world's named keypoints, the
head's rotation, how far the lips part, and where the face is.

The mesh index of each name in :data:`avatarlm.data.render.KEYPOINT_NAMES` was chosen by rendering 40
synthetic faces in varied poses, running the face mesh on them, taking for every name the mesh point
nearest the renderer's own keypoint on average, and keeping left/right picks mirror pairs of the mesh
(mean distance 1.5–10% of the face's width; the jaw, drawn rounder by the renderer, is the loosest).
So a model trained on the synthetic world reads the same names from real video. "left"/"right" are image
sides, as in the renderer.
"""

from __future__ import annotations

import numpy as np

from avatarlm.data.render import KEYPOINT_NAMES

POINTS = 468
MESH_INDEX: dict[str, int] = {
    **{f"contour_{i}": m for i, m in enumerate((93, 58, 136, 176, 152, 400, 365, 288, 323))},
    "brow_left_inner": 55,
    "brow_left_middle": 65,
    "brow_left_outer": 53,
    "brow_right_inner": 285,
    "brow_right_middle": 295,
    "brow_right_outer": 283,
    "nose_bridge": 6,
    "nose_tip": 19,
    "nose_left": 79,
    "nose_right": 309,
    "eye_left_outer": 33,
    "eye_left_inner": 244,
    "eye_right_inner": 464,
    "eye_right_outer": 263,
}
KEYPOINT_MESH: tuple[int, ...] = tuple(MESH_INDEX[name] for name in KEYPOINT_NAMES)
FOREHEAD, CHIN = 10, 152
CHEEK_LEFT, CHEEK_RIGHT = 234, 454
UPPER_LIP_INNER, LOWER_LIP_INNER = 13, 14
EYE_OUTER = (33, 263)


def to_pixels(landmarks: np.ndarray, height: int, width: int) -> np.ndarray:
    """(..., 468, 3) normalised mesh -> the same in pixels (z, in units of the width, scaled as x)."""
    return np.asarray(landmarks, np.float64) * np.array([width, height, width])


def named_keypoints(points: np.ndarray) -> np.ndarray:
    """(..., 468, >=2) mesh -> (..., K, 2) in KEYPOINT_NAMES order (same units as the input)."""
    return np.asarray(points)[..., KEYPOINT_MESH, :2]


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-9)


def head_rotation(points: np.ndarray) -> np.ndarray:
    """(N, 468, 3) mesh in pixels -> (N, 3) yaw, pitch, roll in degrees, as the synthetic world's
    :class:`~avatarlm.data.face.FaceState` means them: yaw > 0 turns the face to the viewer's right, pitch > 0
    tilts it up, roll > 0 turns it clockwise in the image.

    The head's frame is read off the mesh: x from the right eye's outer corner to the left's, y from the chin
    to the forehead (made orthogonal to x), z their cross product (towards the camera for a frontal face).
    Exact for a turn about one axis; a turn about several is read within a few degrees (the angles of a
    combined turn depend on their order)."""
    p = np.asarray(points, np.float64)
    x = _unit(p[:, EYE_OUTER[1]] - p[:, EYE_OUTER[0]])
    up = p[:, FOREHEAD] - p[:, CHIN]
    up = up * np.array([1.0, -1.0, -1.0])  # image y and mesh z point down and away; make them up and near
    x = x * np.array([1.0, -1.0, -1.0])
    y = _unit(up - (up * x).sum(-1, keepdims=True) * x)
    z = np.cross(x, y)
    yaw = np.degrees(np.arcsin(np.clip(z[:, 0], -1.0, 1.0)))
    pitch = np.degrees(np.arctan2(z[:, 1], z[:, 2]))
    roll = np.degrees(np.arctan2(-x[:, 1], x[:, 0]))
    return np.stack([yaw, pitch, roll], axis=1).astype(np.float32)


def lip_gap(points: np.ndarray) -> np.ndarray:
    """(N, 468, >=2) mesh in pixels -> (N,) distance between the inner lips over the forehead-chin height."""
    p = np.asarray(points, np.float64)[..., :2]
    gap = np.linalg.norm(p[:, UPPER_LIP_INNER] - p[:, LOWER_LIP_INNER], axis=-1)
    return (gap / np.maximum(np.linalg.norm(p[:, FOREHEAD] - p[:, CHIN], axis=-1), 1e-9)).astype(np.float32)


def face_width(points: np.ndarray) -> np.ndarray:
    """(N, 468, >=2) mesh in pixels -> (N,) cheek-to-cheek width in pixels."""
    p = np.asarray(points, np.float64)[..., :2]
    return np.linalg.norm(p[:, CHEEK_RIGHT] - p[:, CHEEK_LEFT], axis=-1)
