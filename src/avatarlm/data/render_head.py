"""2.5D head geometry: face-plane shapes lifted onto an ellipsoid, turned about the neck, projected to pixels.

Face units: x to the viewer's right with the head half-width = 1, y up with the half-height = `b`, z towards
the viewer with the face depth = `c`. Points drawn on the face get z from the ellipsoid surface; the head
outline is the ellipsoid's silhouette for the current view, so it narrows and shifts with yaw and pitch.
"""

from __future__ import annotations

import math

import numpy as np

FACE_DEPTH = 0.85


def rotation_matrix(yaw_deg: float, pitch_deg: float, roll_deg: float) -> np.ndarray:
    """Head-to-camera rotation. yaw > 0 moves the nose right, pitch > 0 up, roll > 0 turns clockwise."""
    y, p, r = (math.radians(v) for v in (yaw_deg, pitch_deg, roll_deg))
    cy, sy, cp, sp, cr, sr = math.cos(y), math.sin(y), math.cos(p), math.sin(p), math.cos(r), math.sin(r)
    r_yaw = np.array([[cy, 0.0, sy], [0.0, 1.0, 0.0], [-sy, 0.0, cy]])
    r_pitch = np.array([[1.0, 0.0, 0.0], [0.0, cp, sp], [0.0, -sp, cp]])
    r_roll = np.array([[cr, sr, 0.0], [-sr, cr, 0.0], [0.0, 0.0, 1.0]])
    return r_roll @ r_pitch @ r_yaw


def front_outline(theta: np.ndarray, b: float, jaw_square: float, chin_taper: float) -> np.ndarray:
    """Head outline seen from the front at angles theta (radians, 3*pi/2 = chin): N x 2 face units."""
    c, s = np.cos(theta), np.sin(theta)
    lower = s < 0
    n = np.where(lower, jaw_square, 2.0)
    x = np.sign(c) * np.abs(c) ** (2.0 / n)
    y = np.sign(s) * np.abs(s) ** (2.0 / n)
    x = x * np.where(lower, 1.0 - chin_taper * y * y, 1.0)
    return np.stack([x, b * y], axis=1)


def with_lift(xy: np.ndarray, lift: float | np.ndarray) -> np.ndarray:
    """N x 3 rows (x, y, lift): face-plane points waiting for their surface depth."""
    out = np.empty((len(xy), 3))
    out[:, :2] = xy
    out[:, 2] = lift
    return out


def at_depth(xy: np.ndarray, z: float) -> np.ndarray:
    """Face-plane points on the plane at depth z: N x 3."""
    return with_lift(xy, z)


class HeadModel:
    """Maps face-unit points of one identity to pixel coordinates for a given pose."""

    def __init__(self, b: float, scale_px: float, centre_px: tuple[float, float]) -> None:
        self.b = b
        self.c = FACE_DEPTH
        self.scale = scale_px
        self.cx, self.cy = centre_px
        self.pivot = np.array([0.0, -0.8 * b, -0.3])
        self.rot = np.eye(3)
        self.view = np.array([0.0, 0.0, 1.0])

    def set_pose(self, yaw: float, pitch: float, roll: float) -> None:
        self.rot = rotation_matrix(yaw, pitch, roll)
        self.view = self.rot[2].copy()  # the camera's viewing axis expressed in head coordinates

    def depth(self, xy: np.ndarray) -> np.ndarray:
        """Ellipsoid surface depth at face-plane points (N x 2)."""
        q = 1.0 - xy[:, 0] ** 2 - (xy[:, 1] / self.b) ** 2
        return self.c * np.sqrt(np.maximum(q, 0.0))

    def on_surface(self, xy: np.ndarray, lift: float | np.ndarray = 0.0) -> np.ndarray:
        """Face-plane points placed on the face surface, `lift` further towards the viewer: N x 3."""
        out = with_lift(xy, lift)
        out[:, 2] += self.depth(xy)
        return out

    def lift_to_surface(self, xyl: np.ndarray) -> np.ndarray:
        """In place: turn (x, y, lift) rows into (x, y, surface depth + lift)."""
        xyl[:, 2] += self.depth(xyl[:, :2])
        return xyl

    def silhouette(self, xy: np.ndarray, size: float | np.ndarray = 1.0) -> np.ndarray:
        """Front-outline points moved to where an ellipsoid of relative `size` (scalar or per point) has its
        rim in this view."""
        a2, b2, c2 = size * size, (size * self.b) ** 2, (size * self.c) ** 2
        dx, dy, dz = self.view
        ylim = size * self.b
        yc = np.clip(xy[:, 1], -ylim, ylim)
        z = -(c2 / max(dz, 1e-3)) * (xy[:, 0] * dx / a2 + yc * dy / b2)
        s = 1.0 / np.sqrt(1.0 + z * z / c2)
        return np.column_stack([xy * s[:, None], z * s])

    def project(self, pts: np.ndarray) -> np.ndarray:
        """N x 3 face-unit points to N x 2 pixel coordinates (x right, y down)."""
        p = (pts - self.pivot) @ self.rot.T + self.pivot
        out = np.empty((len(pts), 2))
        out[:, 0] = self.cx + self.scale * p[:, 0]
        out[:, 1] = self.cy - self.scale * p[:, 1]
        return out
