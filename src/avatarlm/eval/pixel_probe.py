"""The pixel probe: a small CNN that reads a face's state from one frame, to measure generated video.

It predicts the continuous controls of :class:`~avatarlm.data.face.FaceState` that a viewer sees — mouth
opening, width and rounding, head yaw / pitch / roll, blink — each scaled to [-1, 1] by the renderer's limits,
and the expression class (an expression shown at strength below ``NEUTRAL_BELOW`` counts as neutral). It is
trained on frames rendered on the fly from identities of the ``val`` split only: disjoint from every model's
training identities, and from the ``test`` identities it is scored on (``pixel_probe_train.py``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from avatarlm.config import ComponentConfig, register_config
from avatarlm.data.face import EXPRESSIONS, FACE_STATE_FIELDS, POSE_FIELDS
from avatarlm.data.render_sampler import LIMITS
from avatarlm.io import load_pretrained, save_model_folder

PROBED = ("mouth_open", "mouth_width", "mouth_round", "yaw", "pitch", "roll", "blink")
NEUTRAL_BELOW = 0.3  # expression strength under which a face reads as neutral


@register_config
@dataclass
class PixelProbeConfig(ComponentConfig):
    kind: ClassVar[str] = "pixel_probe"
    # full_res reads 128x128 frames without resizing them (the bundled probe's)
    _presets: ClassVar[dict[str, dict[str, Any]]] = {
        "tiny": {},
        "full_res": {"size": 128},
        "small": {"size": 128, "width": 48},
    }

    size: int = 96  # frames are resized to size x size
    width: int = 32  # channels of the first stage (doubling per stage, 4 stages)

    def validate(self) -> None:
        if self.size < 32 or self.size % 16:
            raise ValueError(f"size must be a multiple of 16 and >= 32, got {self.size}")
        if self.width < 4:
            raise ValueError(f"width must be >= 4, got {self.width}")


def state_targets(states: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Face-state vectors (N, n_fields) -> (scaled controls (N, len(PROBED)) in [-1, 1], expression class (N,))."""
    cols = []
    for name in PROBED:
        lo, hi = LIMITS[name]
        cols.append(2.0 * (states[:, FACE_STATE_FIELDS.index(name)] - lo) / (hi - lo) - 1.0)
    expression = states[:, FACE_STATE_FIELDS.index("expression")].round().astype(np.int64)
    strength = states[:, FACE_STATE_FIELDS.index("expression_strength")]
    expression = np.where(strength < NEUTRAL_BELOW, 0, expression)
    return np.stack(cols, axis=1).astype(np.float32), expression


def unscale(values: np.ndarray, name: str) -> np.ndarray:
    """A probed column back in the control's own units (degrees for the head pose)."""
    lo, hi = LIMITS[name]
    return (np.asarray(values) + 1.0) / 2.0 * (hi - lo) + lo


def probed_pose(controls: np.ndarray) -> np.ndarray:
    """The probe's controls (N, len(PROBED)) -> (N, 3) head yaw / pitch / roll in degrees."""
    return np.stack([unscale(controls[:, PROBED.index(f)], f) for f in POSE_FIELDS], axis=1)


class PixelProbe(nn.Module):
    """uint8 frames (N, H, W, 3) -> controls (N, len(PROBED)) and expression logits (N, len(EXPRESSIONS))."""

    def __init__(self, config: PixelProbeConfig) -> None:
        super().__init__()
        self.config = config
        w = config.width
        layers: list[nn.Module] = []
        c_in = 3
        for i in range(4):
            c = w * 2**i
            layers += [nn.Conv2d(c_in, c, 3, stride=2, padding=1), nn.GroupNorm(4, c), nn.SiLU()]
            layers += [nn.Conv2d(c, c, 3, padding=1), nn.GroupNorm(4, c), nn.SiLU()]
            c_in = c
        self.features = nn.Sequential(*layers)
        cells = (config.size // 16) ** 2  # the final map is flattened: where things are tells the pose
        self.neck = nn.Sequential(nn.Flatten(), nn.Linear(c_in * cells, 256), nn.SiLU())
        self.controls = nn.Linear(256, len(PROBED))
        self.expression = nn.Linear(256, len(EXPRESSIONS))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` float (N, 3, size, size) in [-1, 1]."""
        h = self.neck(self.features(x))
        return self.controls(h), self.expression(h)

    def prepare(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 (N, H, W, 3) -> float (N, 3, size, size) in [-1, 1] on the probe's device."""
        x = torch.as_tensor(np.asarray(frames), device=self.controls.weight.device)
        if x.dim() != 4 or x.shape[-1] != 3 or x.dtype != torch.uint8:
            raise ValueError(f"frames must be uint8 (N, H, W, 3), got {tuple(x.shape)} {x.dtype}")
        x = x.permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
        s = self.config.size
        if x.shape[-2:] != (s, s):
            x = nn.functional.interpolate(
                x, size=(s, s), mode="bilinear", antialias=True, align_corners=False
            )
        return x

    @torch.no_grad()
    def look(self, frames: np.ndarray, batch: int = 64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One pass over uint8 frames (N, H, W, 3): controls (N, len(PROBED)) scaled to [-1, 1], expression
        class (N,) and the 256-d features (N, 256) the heads read (what the Fréchet distance compares)."""
        was = self.training
        self.eval()
        controls, classes, features = [], [], []
        for i in range(0, len(frames), batch):
            h = self.neck(self.features(self.prepare(frames[i : i + batch])))
            controls.append(self.controls(h).cpu().numpy())
            classes.append(self.expression(h).argmax(dim=1).cpu().numpy())
            features.append(h.cpu().numpy())
        self.train(was)
        return np.concatenate(controls), np.concatenate(classes), np.concatenate(features).astype(np.float64)

    def read(self, frames: np.ndarray, batch: int = 64) -> tuple[np.ndarray, np.ndarray]:
        """Probe uint8 frames (N, H, W, 3): (controls (N, len(PROBED)) scaled to [-1, 1], expression (N,))."""
        controls, classes, _ = self.look(frames, batch)
        return controls, classes

    def embed(self, frames: np.ndarray, batch: int = 64) -> np.ndarray:
        """The probe's 256-d features of uint8 frames (N, H, W, 3)."""
        return self.look(frames, batch)[2]

    def save_pretrained(self, folder: str | os.PathLike[str]) -> Path:
        """``config.json`` + fp16 ``model.safetensors`` (upcast to fp32 on load)."""
        return save_model_folder(folder, self.config.to_dict(), self.state_dict(), dtype=torch.float16)

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike[str]) -> PixelProbe:
        return load_pretrained(folder, PixelProbeConfig.kind, lambda c: cls(PixelProbeConfig.from_dict(c)))
