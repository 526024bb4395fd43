"""Flow-matching diffusion head: ``loss(target, cond)`` for training, ``sample(cond, steps)`` to generate.

Two architectures behind one interface, picked by ``HeadConfig.architecture``: a per-token AdaLN residual
MLP (:class:`MLPHead`) and a transformer over one frame's tokens (:class:`FrameTransformerHead`).
"""

from .base import FlowHead
from .config import HEAD_ARCHITECTURES, HeadConfig
from .flow import euler_timesteps, sample_train_timesteps, shift_timesteps
from .mlp import MLPHead
from .transformer import FrameTransformerHead


def build_head(config: HeadConfig) -> FlowHead:
    """The head ``config.architecture`` names."""
    if config.architecture == "mlp":
        return MLPHead(config)
    if config.architecture == "transformer":
        return FrameTransformerHead(config)
    raise ValueError(f"unknown head architecture {config.architecture!r}; known: {HEAD_ARCHITECTURES}")


__all__ = [
    "HEAD_ARCHITECTURES",
    "FlowHead",
    "FrameTransformerHead",
    "HeadConfig",
    "MLPHead",
    "build_head",
    "euler_timesteps",
    "sample_train_timesteps",
    "shift_timesteps",
]
