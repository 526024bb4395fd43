"""The exploration policy of world rollouts: random actions held for a while, mixed with scripted walks.

The policy is open-loop (it never looks at the frames), so an episode's actions are a pure function of its
seed. It plays segments: with probability ``scripted_fraction`` a scripted one (one of the environment's
``walk`` actions held for a while, then one of its ``turn`` actions held for a shorter while), else a random
one (any action, held for 1 .. ``max_hold`` steps: "random with persistence").
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from avatarlm.data.world_envs import ExploreActions


@dataclass(frozen=True)
class ExplorationConfig:
    scripted_fraction: float = 0.5
    max_hold: int = 8  # random segments: steps one action is held, uniform in 1 .. max_hold
    walk_steps: tuple[int, int] = (4, 24)  # scripted: steps of walking (inclusive range)
    turn_steps: tuple[int, int] = (1, 6)  # scripted: steps of turning that follow

    def validate(self) -> None:
        if not 0 <= self.scripted_fraction <= 1:
            raise ValueError(f"scripted_fraction must be in [0, 1], got {self.scripted_fraction}")
        for name, (lo, hi) in (("walk_steps", self.walk_steps), ("turn_steps", self.turn_steps)):
            if not 1 <= lo <= hi:
                raise ValueError(f"{name} must be a range 1 <= lo <= hi, got {(lo, hi)}")
        if self.max_hold < 1:
            raise ValueError(f"max_hold must be at least 1, got {self.max_hold}")


def exploration_actions(
    cfg: ExplorationConfig, action_names: tuple[str, ...], explore: ExploreActions, seed: int
) -> Iterator[int]:
    """An endless stream of action ids for the episode of ``seed``."""
    rng = np.random.default_rng([seed, 0xE7])
    walk = [action_names.index(a) for a in explore.walk]
    turn = [action_names.index(a) for a in explore.turn]
    while True:
        if rng.random() < cfg.scripted_fraction:
            segments = [
                (
                    walk[int(rng.integers(len(walk)))],
                    int(rng.integers(cfg.walk_steps[0], cfg.walk_steps[1] + 1)),
                ),
                (
                    turn[int(rng.integers(len(turn)))],
                    int(rng.integers(cfg.turn_steps[0], cfg.turn_steps[1] + 1)),
                ),
            ]
        else:
            segments = [(int(rng.integers(len(action_names))), int(rng.integers(1, cfg.max_hold + 1)))]
        for action, steps in segments:
            for _ in range(steps):
                yield action
