"""Rectified-flow schedule: the noising path, training timesteps and the Euler sampling grid.

Convention: ``t = 0`` is data and ``t = 1`` is noise, ``x_t = (1 - t) * x0 + t * eps``; the network predicts
the velocity ``dx_t/dt = eps - x0`` and sampling integrates from ``t = 1`` down to ``t = 0``.
A timestep shift ``s`` maps ``t -> s t / (1 + (s - 1) t)`` (as diffusers' FlowMatchEulerDiscreteScheduler);
``s > 1`` spends more of the few sampling steps (and training samples) at high noise.
"""

from __future__ import annotations

import torch

TIMESTEP_SCHEDULES = ("logit_normal", "uniform")


def shift_timesteps(t: torch.Tensor, shift: float) -> torch.Tensor:
    """Apply the timestep shift; ``shift = 1`` is the identity and 0 and 1 stay fixed."""
    if shift <= 0:
        raise ValueError(f"timestep shift must be positive, got {shift}")
    if shift == 1.0:
        return t
    return shift * t / (1.0 + (shift - 1.0) * t)


def sample_train_timesteps(
    n: int,
    *,
    schedule: str = "logit_normal",
    logit_mean: float = 0.0,
    logit_std: float = 1.0,
    shift: float = 1.0,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """``n`` training timesteps in (0, 1): logit-normal or uniform, then shifted."""
    if schedule == "logit_normal":
        u = torch.randn(n, generator=generator, device=device) * logit_std + logit_mean
        t = torch.sigmoid(u)
    elif schedule == "uniform":
        t = torch.rand(n, generator=generator, device=device)
    else:
        raise ValueError(f"unknown timestep schedule {schedule!r}; known: {', '.join(TIMESTEP_SCHEDULES)}")
    return shift_timesteps(t, shift)


def euler_timesteps(steps: int, shift: float = 1.0) -> list[float]:
    """``steps + 1`` decreasing timesteps from 1 to 0: a uniform grid, shifted."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    grid = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)
    return [float(v) for v in shift_timesteps(grid, shift)]


def interpolate(x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Point ``x_t`` on the straight path from data ``x0`` (t=0) to noise ``eps`` (t=1); ``t`` is (B,)."""
    tt = t.view(-1, *([1] * (x0.ndim - 1))).to(x0.dtype)
    return (1.0 - tt) * x0 + tt * eps


def velocity_target(x0: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """The velocity the head learns to predict."""
    return eps - x0
