"""Per-frame face controls of the synthetic avatar: what the renderer draws and what ground truth stores."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np

EXPRESSIONS: tuple[str, ...] = ("neutral", "smile", "surprise", "sad", "angry")


@dataclass
class FaceState:
    """One frame's controls. Angles in degrees; other values in the ranges noted.

    yaw > 0 turns the head to the viewer's right, pitch > 0 tilts it up, roll > 0 tilts it clockwise.
    gaze_x/gaze_y in [-1, 1] (right / up), blink in [0, 1] (1 = lids closed), brow_raise in [-1, 1]
    (-1 = frown), mouth_open in [0, 1], mouth_width in [-1, 1] (-1 = narrow/puckered, 1 = spread),
    mouth_round in [0, 1], expression an index into EXPRESSIONS with expression_strength in [0, 1].
    """

    yaw: float = 0.0
    pitch: float = 0.0
    roll: float = 0.0
    gaze_x: float = 0.0
    gaze_y: float = 0.0
    blink: float = 0.0
    brow_raise: float = 0.0
    mouth_open: float = 0.0
    mouth_width: float = 0.0
    mouth_round: float = 0.0
    expression: int = 0
    expression_strength: float = 0.0

    def to_vector(self) -> np.ndarray:
        return np.array([getattr(self, f.name) for f in fields(self)], dtype=np.float32)

    @classmethod
    def from_vector(cls, v: np.ndarray) -> FaceState:
        values = {f.name: float(x) for f, x in zip(fields(cls), v, strict=True)}
        values["expression"] = int(round(values["expression"]))
        return cls(**values)  # type: ignore[arg-type]

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


FACE_STATE_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(FaceState))
POSE_FIELDS: tuple[str, ...] = ("yaw", "pitch", "roll")  # the head's rotation: what the pose condition takes
