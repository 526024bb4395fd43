"""Action condition encoder (world models): the discrete action taken before a frame -> embedding tokens."""

from __future__ import annotations

import torch
from torch import nn

from avatarlm.conditions.config import ConditionConfig

NO_ACTION = -1


class ActionEncoder(nn.Module):
    """``forward(action)`` with ids (B, F) in [0, num_actions) or -1 (none) -> tokens and presence."""

    def __init__(self, cfg: ConditionConfig) -> None:
        super().__init__()
        self.num_actions = cfg.num_actions
        self.tokens = cfg.action_tokens
        self.d_model = cfg.d_model
        self.embedding = nn.Embedding(cfg.num_actions, cfg.action_tokens * cfg.d_model)
        nn.init.normal_(self.embedding.weight, std=0.02)

    def forward(self, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokens (B, F, action_tokens, d) and a (B, F) mask of frames that have an action."""
        ids = torch.as_tensor(action, device=self.embedding.weight.device)
        if ids.ndim != 2 or ids.dtype.is_floating_point or ids.dtype == torch.bool:
            raise ValueError(
                f"action must be integer ids of shape (batch, frames), got {ids.dtype} {tuple(ids.shape)}"
            )
        if ids.numel() and (int(ids.min()) < NO_ACTION or int(ids.max()) >= self.num_actions):
            raise ValueError(
                f"action ids must be in [0, {self.num_actions}) or {NO_ACTION} for none, "
                f"got range [{int(ids.min())}, {int(ids.max())}]"
            )
        present = ids != NO_ACTION
        tokens = self.embedding(ids.clamp(min=0).long()).unflatten(-1, (self.tokens, self.d_model))
        return tokens, present
