"""Head rotation read off a face mesh: exact for a rigid head turned by known angles, with the synthetic
world's signs (yaw > 0 turns to the viewer's right, pitch > 0 tilts up, roll > 0 turns clockwise)."""

from __future__ import annotations

import numpy as np
import pytest

from avatarlm.data import face_landmarks as fl


def rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Camera frame: X right, Y up, Z towards the camera. Yaw turns the face's normal to +X, pitch to +Y,
    roll turns the eye line clockwise as seen by the camera; applied yaw, then pitch, then roll."""
    y, p, r = np.radians([yaw, pitch, roll])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rx = np.array([[1, 0, 0], [0, np.cos(p), np.sin(p)], [0, -np.sin(p), np.cos(p)]])
    rz = np.array([[np.cos(r), np.sin(r), 0], [-np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return rz @ rx @ ry


def mesh_of(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """A rigid head's eye corners, forehead and chin, turned, in the mesh's pixel convention (y down, z away)."""
    head = {33: (-30.0, 20.0, 0.0), 263: (30.0, 20.0, 0.0), 10: (0.0, 60.0, 0.0), 152: (0.0, -60.0, 0.0)}
    points = np.zeros((1, fl.POINTS, 3))
    for index, xyz in head.items():
        x, y, z = rotation(yaw, pitch, roll) @ np.array(xyz)
        points[0, index] = (200 + x, 200 - y, -z)
    return points


@pytest.mark.parametrize("angles", [(0, 0, 0), (25, 0, 0), (-25, 0, 0), (0, 15, 0), (0, -15, 0), (0, 0, 20),
                                    (0, 0, -20)])  # fmt: skip
def test_head_rotation_recovers_single_turns_exactly_with_the_worlds_signs(angles):
    got = fl.head_rotation(mesh_of(*angles))[0]
    np.testing.assert_allclose(got, angles, atol=0.05)


def test_combined_turns_are_read_within_a_few_degrees():
    got = fl.head_rotation(mesh_of(20, 10, -8))[0]  # the three angles are not independent of the order
    np.testing.assert_allclose(got, (20, 10, -8), atol=4.0)
    assert np.all(np.sign(got) == (1, 1, -1))


def test_named_keypoints_follow_the_worlds_names():
    from avatarlm.data.render import KEYPOINT_NAMES

    assert len(fl.KEYPOINT_MESH) == len(KEYPOINT_NAMES) == 23
    points = np.arange(fl.POINTS * 3, dtype=float).reshape(1, fl.POINTS, 3)
    kp = fl.named_keypoints(points)
    assert kp.shape == (1, 23, 2) and kp[0, KEYPOINT_NAMES.index("nose_bridge"), 0] == 6 * 3
