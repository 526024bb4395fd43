"""Training loops and checkpoints."""

from .ae import train_autoencoder
from .checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint

__all__ = ["latest_checkpoint", "load_checkpoint", "save_checkpoint", "train_autoencoder"]
