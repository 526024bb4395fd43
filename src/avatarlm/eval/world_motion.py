"""Which way the view moved: the image shift between two frames, and the one the game's state says.

A world model follows an action when its next frame moves the way the real game's does. In ViZDoom a turn
changes the view angle and slides the picture sideways (turning left moves the scene right); in Crafter a
step moves the player one tile and slides the map the other way. ``image_shift`` finds the whole-pixel
shift that best maps one frame onto the next, and ``expected_shift`` the direction the player's recorded
state asks for, so "right" is measured against the environment's own state, not against another model.
"""

from __future__ import annotations

import numpy as np

# Steps whose view angle changes less than this (degrees) are not turns (ViZDoom).
MIN_TURN_DEGREES = 1.0


def image_shift(a: np.ndarray, b: np.ndarray, max_shift: int = 8, vertical: bool = False) -> tuple[int, int]:
    """The integer (dx, dy) with ``b[y, x] ~ a[y - dy, x - dx]`` that minimises the mean absolute
    difference over the overlap of the two uint8 frames (H, W, 3); (0, 0) wins ties, so a frame that does
    not move reports no shift. ``vertical=False`` searches dx only."""
    if a.shape != b.shape or a.ndim != 3:
        raise ValueError(f"image_shift needs two frames (H, W, 3) of one shape, got {a.shape} and {b.shape}")
    h, w = a.shape[:2]
    if not 0 < max_shift < min(h, w) // 2:
        raise ValueError(f"max_shift must be in 1..{min(h, w) // 2 - 1}, got {max_shift}")
    x, y = a.astype(np.float32).mean(-1), b.astype(np.float32).mean(-1)
    best, best_cost = (0, 0), float(np.abs(x - y).mean()) - 1e-6
    for dy in range(-max_shift, max_shift + 1) if vertical else (0,):
        for dx in range(-max_shift, max_shift + 1):
            if (dx, dy) == (0, 0):
                continue
            src = x[max(0, -dy) : h - max(0, dy), max(0, -dx) : w - max(0, dx)]
            dst = y[max(0, dy) : h - max(0, -dy), max(0, dx) : w - max(0, -dx)]
            cost = float(np.abs(src - dst).mean())
            if cost < best_cost:
                best, best_cost = (dx, dy), cost
    return best


def expected_shift(env: str, before: np.ndarray, after: np.ndarray) -> tuple[int, int] | None:
    """The direction (sign of dx, sign of dy) the view should slide between two frames given the player's
    state ``before`` and ``after`` (the dataset's ``player`` rows), or None where the state says the view
    did not move (no turn in ViZDoom, no step in Crafter)."""
    if env == "vizdoom":  # fields x, y, z, angle (degrees, counter-clockwise)
        turn = (float(after[3]) - float(before[3]) + 180.0) % 360.0 - 180.0
        if abs(turn) < MIN_TURN_DEGREES:
            return None
        return (1 if turn > 0 else -1), 0  # turning left (angle up) slides the scene right
    if env == "crafter":  # fields x, y (grid), facing_x, facing_y
        dx, dy = int(round(after[0] - before[0])), int(round(after[1] - before[1]))
        if dx == 0 and dy == 0:
            return None
        return -int(np.sign(dx)), -int(np.sign(dy))  # the player steps right: the map slides left
    raise ValueError(f"unknown environment {env!r}: crafter or vizdoom")


def follows(shift: tuple[int, int], expected: tuple[int, int]) -> bool:
    """Does a measured shift go the expected way on every axis the state says moved (and stay put on the
    others' sign where the state says so)? A frame that did not move never follows a move."""
    return all(np.sign(s) == e for s, e in zip(shift, expected, strict=True) if e != 0)
