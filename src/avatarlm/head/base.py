"""The head interface: ``loss(target, cond)`` for training, ``sample(cond)`` for generation."""

from __future__ import annotations

import torch
from torch import nn

from .config import HeadConfig
from .flow import euler_timesteps, interpolate, sample_train_timesteps, velocity_target
from .layers import FinalLayer, SplitModulation, TimestepEmbedding, init_linear_xavier

Context = tuple[torch.Tensor, ...]
_TimeTableKey = tuple[object, ...]


class FlowHead(nn.Module):
    """Rectified-flow head: denoises a frame's latent tokens x (B, T, C) given hidden states (B, T, D).

    Row b of ``cond`` conditions row b of the target, token i -> token i. B may be batch x frames.
    Subclasses set ``self.modulation`` and implement :meth:`encode_cond` (work done once per frame) and
    :meth:`denoise` (per Euler step).
    """

    modulation: SplitModulation

    def __init__(self, config: HeadConfig) -> None:
        super().__init__()
        self.config = config
        self.time_embed = TimestepEmbedding(config.width, config.frequency_dim)
        self._time_table: tuple[_TimeTableKey, torch.Tensor] | None = None

    def _initialize(self) -> None:
        """DiT/MAR init: Xavier linears, N(0, 0.02) timestep MLP, zero modulation and output layers."""
        init_linear_xavier(self)
        for layer in (self.time_embed.fc1, self.time_embed.fc2):
            nn.init.normal_(layer.weight, std=0.02)
        for m in self.modules():
            if isinstance(m, SplitModulation | FinalLayer):
                m.zero_init()

    # -- subclass hooks ------------------------------------------------------------------------------
    def encode_cond(self, cond: torch.Tensor) -> Context:
        """Everything that depends on the condition only, as a tuple of (B, T, ...) tensors."""
        raise NotImplementedError

    def denoise(self, x_t: torch.Tensor, time_mod: torch.Tensor, context: Context) -> torch.Tensor:
        """Velocity (B, T, C) from noisy latents, the time part of the modulation (B or 1, M), the context."""
        raise NotImplementedError

    def time_modulation(self, t: torch.Tensor) -> torch.Tensor:
        """Time part of every AdaLN modulation: (N,) -> (N, M)."""
        return self.modulation.time_part(self.time_embed(t))

    def velocity(self, x_t: torch.Tensor, t: torch.Tensor, context: Context) -> torch.Tensor:
        """Predicted velocity (B, T, C) at noisy latents ``x_t`` and times ``t`` of shape (B,) or (1,)."""
        return self.denoise(x_t, self.time_modulation(t), context)

    def _sampling_time_table(self, grid: list[float], like: torch.Tensor) -> torch.Tensor:
        """Time modulations for every Euler step, (steps, M); cached until the time weights change."""
        params = [*self.time_embed.parameters(), *self.modulation.time_linear.parameters()]
        key = (tuple(grid), like.dtype, like.device, tuple((p.data_ptr(), p._version) for p in params))
        if self._time_table is None or self._time_table[0] != key:
            times = torch.tensor(grid[:-1], dtype=like.dtype, device=like.device)
            self._time_table = (key, self.time_modulation(times))
        return self._time_table[1]

    # -- validation ----------------------------------------------------------------------------------
    def _check_tokens(self, t: int) -> None:
        """Raise if this head cannot handle ``t`` tokens per frame (the transformer needs exactly T)."""

    def _check_cond(self, cond: torch.Tensor) -> None:
        d = self.config.cond_dim
        if cond.ndim != 3 or cond.shape[-1] != d or cond.shape[0] < 1 or cond.shape[1] < 1:
            raise ValueError(f"cond must have shape (B, T, {d}), got {tuple(cond.shape)}")
        self._check_tokens(cond.shape[1])

    def _check_latents(self, name: str, x: torch.Tensor, cond: torch.Tensor) -> None:
        b, t = cond.shape[:2]
        c = self.config.in_channels
        if tuple(x.shape) != (b, t, c):
            raise ValueError(
                f"{name} must have shape (B, T, C) = ({b}, {t}, {c}) to match cond {tuple(cond.shape)}, "
                f"got {tuple(x.shape)}"
            )

    # -- public API ----------------------------------------------------------------------------------
    def loss(
        self,
        target: torch.Tensor,
        cond: torch.Tensor,
        repeat: int | None = None,
        mask: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        channel_weight: torch.Tensor | None = None,
        directions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Mean squared velocity error (a scalar) over ``repeat`` noise/timestep draws per row.

        The condition is encoded once and repeated, so extra draws cost only the head. ``mask`` (B,) or
        (B, T), bool or float, weights rows or tokens (e.g. to skip padding); ``channel_weight`` (C,)
        weights the latent channels (normalised by its mean); ``generator`` seeds the draws.
        ``directions`` (K, T, C): the squared projection of each row's error on each direction is added to
        its squared error, so orthonormal directions scaled by sqrt(w) weigh the error in their span 1 + w
        times (``trainer/pose_loss.py``).
        """
        self._check_cond(cond)
        self._check_latents("target", target, cond)
        r = self.config.loss_repeat if repeat is None else repeat
        if r < 1:
            raise ValueError(f"repeat must be >= 1, got {repeat}")
        b, t = cond.shape[:2]
        weight = self._mask_weight(mask, b, t, target)

        context = tuple(c.repeat(r, *([1] * (c.ndim - 1))) for c in self.encode_cond(cond))
        x0 = target.repeat(r, 1, 1)
        eps = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        cfg = self.config
        times = sample_train_timesteps(
            b * r,
            schedule=cfg.train_timesteps,
            logit_mean=cfg.logit_mean,
            logit_std=cfg.logit_std,
            shift=cfg.train_shift,
            generator=generator,
            device=x0.device,
        )
        pred = self.velocity(interpolate(x0, eps, times), times.to(x0.dtype), context)
        error = pred - velocity_target(x0, eps)
        sq = error.pow(2)
        if channel_weight is not None:
            if channel_weight.shape != (sq.shape[-1],) or bool((channel_weight < 0).any()):
                raise ValueError(
                    f"channel_weight must be ({sq.shape[-1]},) and >= 0, got {tuple(channel_weight.shape)}"
                )
            cw = channel_weight.to(sq.device, sq.dtype)
            sq = sq * (cw / cw.mean().clamp_min(1e-8))
        err = sq.mean(dim=-1)  # (B r, T)
        if directions is not None:
            if directions.ndim != 3 or tuple(directions.shape[1:]) != tuple(error.shape[1:]):
                raise ValueError(
                    f"directions must be (K, {t}, {error.shape[-1]}), got {tuple(directions.shape)}"
                )
            along = torch.einsum("btc,ktc->bk", error, directions.to(error.device, error.dtype))
            err = err + along.pow(2).sum(dim=-1, keepdim=True) / error[0].numel()  # the row's mean grows
        if weight is None:
            return err.mean()
        w = weight.repeat(r, 1)
        return (err * w).sum() / w.sum().clamp_min(1e-8)

    @staticmethod
    def _mask_weight(mask: torch.Tensor | None, b: int, t: int, like: torch.Tensor) -> torch.Tensor | None:
        if mask is None:
            return None
        if tuple(mask.shape) not in ((b,), (b, t)):
            raise ValueError(f"mask must have shape ({b},) or ({b}, {t}), got {tuple(mask.shape)}")
        w = mask.to(device=like.device, dtype=like.dtype)
        return w[:, None].expand(b, t) if w.ndim == 1 else w

    @torch.no_grad()
    def sample(
        self,
        cond: torch.Tensor,
        steps: int | None = None,
        generator: torch.Generator | None = None,
        noise: torch.Tensor | None = None,
        temperature: float = 1.0,
        shift: float | None = None,
        unconditional: torch.Tensor | None = None,
        guidance: float = 1.0,
    ) -> torch.Tensor:
        """Latents (B, T, C) by Euler integration from noise (t=1) to data (t=0).

        ``steps`` and ``shift`` default to the config's; ``noise`` (B, T, C) replaces the draw from
        ``generator``; ``temperature`` scales the starting noise (0 gives the deterministic mean path).
        Classifier-free guidance: with ``unconditional`` (B, T, D), a condition lacking what is guided (e.g.
        the hidden states with null audio), each step follows ``v_u + guidance * (v_c - v_u)``.
        """
        self._check_cond(cond)
        if unconditional is not None:
            self._check_cond(unconditional)
            if unconditional.shape != cond.shape:
                raise ValueError(
                    f"unconditional must match cond {tuple(cond.shape)}, got {tuple(unconditional.shape)}"
                )
        steps = self.config.sample_steps if steps is None else steps
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        grid = euler_timesteps(steps, self.config.sample_shift if shift is None else shift)
        b, t = cond.shape[:2]
        dtype = self.time_embed.fc1.weight.dtype
        if noise is None:
            shape = (b, t, self.config.in_channels)
            x = torch.randn(shape, generator=generator, device=cond.device, dtype=dtype)
        else:
            self._check_latents("noise", noise, cond)
            x = noise.to(dtype)
        if temperature != 1.0:
            x = x * temperature
        context = self.encode_cond(cond.to(dtype))
        free = None if unconditional is None else self.encode_cond(unconditional.to(dtype))
        table = self._sampling_time_table(grid, x)
        for i in range(steps):
            v = self.denoise(x, table[i : i + 1], context)
            if free is not None:
                v_u = self.denoise(x, table[i : i + 1], free)
                v = torch.lerp(v_u, v, guidance)
            x = torch.add(x, v, alpha=grid[i + 1] - grid[i])
        return x

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
