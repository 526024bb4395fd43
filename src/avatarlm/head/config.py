"""Configuration of the flow-matching diffusion head."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ..config import ComponentConfig, register_config
from .flow import TIMESTEP_SCHEDULES

HEAD_ARCHITECTURES = ("mlp", "transformer")

_HEAD_PRESETS: dict[str, dict[str, Any]] = {
    # Tiny autoencoder (4x4x32 = 16 tokens), 256-wide backbone; ~2-3 ms per frame on 2 cores.
    "tiny": dict(
        in_channels=32, tokens_per_frame=16, cond_dim=256, width=256, depth=3, num_heads=4, mlp_ratio=2.0
    ),
    # small_f64 autoencoder (4x4x64 = 16 tokens), 384-wide backbone.
    "small": dict(
        in_channels=64, tokens_per_frame=16, cond_dim=384, width=384, depth=4, num_heads=6, mlp_ratio=2.0
    ),
    # The paper's scale: 60 tokens of 128 channels, Qwen2.5-3B hidden size, a PixArt-like frame transformer.
    "paper": dict(
        architecture="transformer",
        in_channels=128,
        tokens_per_frame=60,
        cond_dim=2048,
        width=1024,
        depth=16,
        num_heads=16,
        mlp_ratio=4.0,
    ),
}


@register_config
@dataclass
class HeadConfig(ComponentConfig):
    """Flow-matching head that denoises one frame's latent tokens from the backbone's hidden states.

    ``architecture``: ``"mlp"`` (each token alone, MAR-style AdaLN residual MLP) or ``"transformer"`` (the
    tokens of a frame attend to each other). ``width``/``depth``/``mlp_ratio`` size either one;
    ``num_heads`` is used by the transformer only.
    """

    kind: ClassVar[str] = "head"
    _presets: ClassVar[dict[str, dict[str, Any]]] = _HEAD_PRESETS

    architecture: str = "mlp"
    in_channels: int = 32  # latent channels per token (C)
    tokens_per_frame: int = 16  # T; the transformer's position table has this many slots
    cond_dim: int = 256  # backbone hidden size (D)
    width: int = 256
    depth: int = 3
    num_heads: int = 4
    mlp_ratio: float = 2.0
    frequency_dim: int = 256  # sinusoidal timestep features before the timestep MLP
    # Training: `loss_repeat` noise/timestep draws per backbone pass; t ~ schedule, then shifted.
    loss_repeat: int = 4
    train_timesteps: str = "logit_normal"
    logit_mean: float = 0.0
    logit_std: float = 1.0
    train_shift: float = 3.0  # matches sample_shift: training mass where the 4 Euler steps query
    # Sampling: Euler steps on a uniform grid shifted by `sample_shift`.
    sample_steps: int = 4
    sample_shift: float = 3.0

    def validate(self) -> None:
        if self.architecture not in HEAD_ARCHITECTURES:
            raise ValueError(
                f"head architecture must be one of {HEAD_ARCHITECTURES}, got {self.architecture!r}"
            )
        for name in ("in_channels", "tokens_per_frame", "cond_dim", "width", "depth", "num_heads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.frequency_dim < 2 or self.frequency_dim % 2:
            raise ValueError(f"frequency_dim must be even and >= 2, got {self.frequency_dim}")
        if self.mlp_ratio <= 0 or int(self.width * self.mlp_ratio) < 1:
            raise ValueError(f"mlp_ratio must be positive, got {self.mlp_ratio}")
        if self.architecture == "transformer" and self.width % self.num_heads:
            raise ValueError(f"width={self.width} must be divisible by num_heads={self.num_heads}")
        if self.loss_repeat < 1 or self.sample_steps < 1:
            raise ValueError(
                f"loss_repeat={self.loss_repeat} and sample_steps={self.sample_steps} must be >= 1"
            )
        if self.train_timesteps not in TIMESTEP_SCHEDULES:
            raise ValueError(
                f"train_timesteps must be one of {TIMESTEP_SCHEDULES}, got {self.train_timesteps!r}"
            )
        if self.logit_std <= 0 or self.train_shift <= 0 or self.sample_shift <= 0:
            raise ValueError(
                f"logit_std={self.logit_std}, train_shift={self.train_shift} and "
                f"sample_shift={self.sample_shift} must be positive"
            )

    @property
    def hidden_width(self) -> int:
        """Hidden size of the feed-forward layers."""
        return int(self.width * self.mlp_ratio)
