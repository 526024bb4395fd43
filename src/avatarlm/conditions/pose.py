"""Pose condition encoder: head yaw/pitch/roll + K named 2D face keypoints per frame -> MLP -> tokens."""

from __future__ import annotations

import torch
from torch import nn

from avatarlm.conditions.config import ConditionConfig
from avatarlm.data.render import KEYPOINT_NAMES

ANGLE_SCALE_DEG = 30.0  # yaw/pitch/roll are divided by this
NUM_KEYPOINTS = len(KEYPOINT_NAMES)


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
    """``forward(pose, keypoints)`` -> (B, F, pose_tokens, d_model); keypoints in KEYPOINT_NAMES order."""

    def __init__(self, cfg: ConditionConfig) -> None:
        super().__init__()
        self.tokens = cfg.pose_tokens
        self.d_model = cfg.d_model
        self.mlp = nn.Sequential(
            nn.Linear(3 + 2 * NUM_KEYPOINTS, cfg.pose_hidden),
            nn.SiLU(),
            nn.Linear(cfg.pose_hidden, cfg.pose_hidden),
            nn.SiLU(),
            nn.Linear(cfg.pose_hidden, cfg.pose_tokens * cfg.d_model),
        )

    def forward(self, pose: torch.Tensor, keypoints: torch.Tensor) -> torch.Tensor:
        device = next(self.parameters()).device
        x = pose_features(torch.as_tensor(pose, device=device), torch.as_tensor(keypoints, device=device))
        return self.mlp(x).unflatten(-1, (self.tokens, self.d_model))
