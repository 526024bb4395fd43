"""Learning-rate schedule shared by the trainers: linear warm-up, then constant or a cosine decay."""

from __future__ import annotations

import math


def warmup_cosine_lr(step: int, total: int, lr: float, warmup: int, final_fraction: float | None) -> float:
    """Learning rate of 0-based ``step`` in a run of ``total`` steps: a linear warm-up to ``lr`` over
    ``warmup`` steps, then constant (``final_fraction=None``) or a cosine down to ``final_fraction * lr``
    at ``total``."""
    if final_fraction is None or step < warmup:
        return lr * min(1.0, (step + 1) / max(warmup, 1))
    progress = min(max(step - warmup, 0) / max(total - warmup, 1), 1.0)
    cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
    return lr * (final_fraction + (1.0 - final_fraction) * cosine)
