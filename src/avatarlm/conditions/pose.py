"""Pose condition encoder: head yaw/pitch/roll + K named 2D face keypoints per frame -> MLP -> tokens.

With ``ConditionConfig.pose_delta`` the encoder also reads each frame's change since the frame before: an
AR model with a delta target predicts how a frame differs from the last one, and a head told to turn moves
by the change of its pose, which the absolute pose alone leaves the backbone to work out across two frames.
"""

from __future__ import annotations

import torch
from torch import nn

from avatarlm.conditions.config import ConditionConfig
from avatarlm.data.render import KEYPOINT_NAMES

ANGLE_SCALE_DEG = 30.0  # yaw/pitch/roll are divided by this
NUM_KEYPOINTS = len(KEYPOINT_NAMES)
POSE_FEATURES = 3 + 2 * NUM_KEYPOINTS
DELTA_GAIN = 10.0  # a 3 degree turn in one frame reads as 1.0


def pose_features(pose: torch.Tensor, keypoints: torch.Tensor) -> torch.Tensor:
    """(B, F, 3) degrees + (B, F, K, 2) in [0, 1] -> (B, F, 3 + 2K), all roughly in [-1, 1]."""
    if pose.ndim != 3 or pose.shape[-1] != 3:
        raise ValueError(
            f"pose must be (batch, frames, 3) yaw/pitch/roll in degrees, got {tuple(pose.shape)}"
        )
    if keypoints.shape != (*pose.shape[:2], NUM_KEYPOINTS, 2):
        raise ValueError(
            f"keypoints must be (batch, frames, {NUM_KEYPOINTS}, 2) matching pose {tuple(pose.shape)}, "
            f"got {tuple(keypoints.shape)}"
        )
    points = (keypoints.float() - 0.5) * 2.0
    return torch.cat([pose.float() / ANGLE_SCALE_DEG, points.flatten(2)], dim=-1)


class PoseEncoder(nn.Module):
    """``forward(pose, keypoints, previous)`` -> (B, F, pose_tokens, d_model); keypoints in KEYPOINT_NAMES
    order; ``previous``: the (pose (B, 3), keypoints (B, K, 2)) of the frame before the first, for the
    change of the first frame (without it, that frame reads no change)."""

    def __init__(self, cfg: ConditionConfig) -> None:
        super().__init__()
        self.tokens = cfg.pose_tokens
        self.d_model = cfg.d_model
        self.mlp = nn.Sequential(
            nn.Linear(POSE_FEATURES, cfg.pose_hidden),
            nn.SiLU(),
            nn.Linear(cfg.pose_hidden, cfg.pose_hidden),
            nn.SiLU(),
            nn.Linear(cfg.pose_hidden, cfg.pose_tokens * cfg.d_model),
        )
        self.delta: nn.Linear | None = None
        if cfg.pose_delta:
            self.delta = nn.Linear(POSE_FEATURES, cfg.pose_hidden)
            nn.init.zeros_(self.delta.weight)
            nn.init.zeros_(self.delta.bias)

    def forward(
        self,
        pose: torch.Tensor,
        keypoints: torch.Tensor,
        previous: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        device = next(self.parameters()).device
        x = pose_features(torch.as_tensor(pose, device=device), torch.as_tensor(keypoints, device=device))
        h = self.mlp[0](x)
        if self.delta is not None:
            before = x[:, :1]
            if previous is not None:
                p, k = (torch.as_tensor(v, device=device) for v in previous)
                if p.shape != (x.shape[0], 3) or k.shape != (x.shape[0], NUM_KEYPOINTS, 2):
                    raise ValueError(
                        f"the previous pose must be ({x.shape[0]}, 3) and its keypoints "
                        f"({x.shape[0]}, {NUM_KEYPOINTS}, 2), got {tuple(p.shape)} and {tuple(k.shape)}"
                    )
                before = pose_features(p[:, None], k[:, None])
            change = x - torch.cat([before, x[:, :-1]], dim=1)
            h = h + self.delta(DELTA_GAIN * change)
        return self.mlp[1:](h).unflatten(-1, (self.tokens, self.d_model))
