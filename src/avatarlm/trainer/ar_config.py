"""Configuration of an AR training run (model config nested), with named presets."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from avatarlm.ar_config import ARConfig
from avatarlm.config import ComponentConfig, register_config
from avatarlm.trainer.own_history import MODES as OWN_HISTORY_MODES
from avatarlm.trainer.schedule import warmup_cosine_lr


@register_config
@dataclass
class ARTrainConfig(ComponentConfig):
    """One AR training run.

    ``batch_size`` windows per optimizer step (the global batch, over all processes), processed in micro
    batches of ``micro_batch`` windows; every micro batch draws its noise from a generator seeded by (seed,
    step, micro batch index), so 1 process with gradient accumulation and N data-parallel processes compute
    the same update. The learning rate warms up linearly for ``warmup_steps`` and then follows a cosine to
    ``min_lr_ratio * lr``. ``ema_decay`` weights are what the final model folder holds.
    """

    kind: ClassVar[str] = "ar_train"
    _presets: ClassVar[dict[str, dict[str, Any]]] = {
        "tiny": {
            "model": ARConfig.preset("tiny").to_dict(),
            "lr": 6e-4,
            "warmup_steps": 100,
            "ema_decay": 0.995,
            "checkpoint_every": 250,
        },
        # `small` on the `small_f64` autoencoder (256x256 -> 16 tokens of 64 channels)
        "small": {
            "model": ARConfig.preset("small").to_dict(),
            "batch_size": 32,
            "warmup_steps": 500,
        },
        # The MIDAS setting (ARConfig "paper": Qwen2.5-3B backbone, chunks of 6) for GPUs under torchrun: FSDP2
        # shards the 64 GB of training state, the backbone recomputes its activations, and a step is 256
        # windows. Start the backbone from Qwen2.5-3B with --backbone-weights DIR. The batch, learning rate
        # and schedule are this project's choices; the paper does not give its own.
        "paper": {
            "model": ARConfig.preset(
                "paper",
                backbone={**ARConfig.preset("paper").backbone.to_dict(), "gradient_checkpointing": True},
            ).to_dict(),
            "batch_size": 256,
            "micro_batch": 4,
            "lr": 1e-4,
            "warmup_steps": 1000,
            "checkpoint_every": 500,
            "sharding": "fsdp",
        },
        # `tiny` training of the action-conditioned world model (see ARConfig's "world" preset: num_actions
        # must cover the env's action count, e.g. `--set model.conditions.num_actions=11` for ViZDoom).
        "world": {
            "model": ARConfig.preset("world").to_dict(),
            "lr": 6e-4,
            "warmup_steps": 100,
            "ema_decay": 0.995,
            "checkpoint_every": 250,
        },
    }

    model: ARConfig = field(default_factory=ARConfig)
    window_frames: int = 32  # f_0 + 31 predicted frames
    batch_size: int = 8
    micro_batch: int = 8
    contiguous_reference: float = 0.5
    audio_history_frames: int | None = None  # None: the audio encoder's receptive field
    lr: float = 3e-4
    min_lr_ratio: float = 0.1
    warmup_steps: int = 200
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    log_every: int = 10
    val_every: int = 250
    val_windows: int = 16
    seed: int = 0
    # Share of the history the model reads from its own frames instead of the truth (`own_history.py`):
    # single frames (mode "step") or whole windows (mode "rollout"). Teaches it to undo its own errors,
    # the cause of drift in free-running sessions.
    own_history: float = 0.0
    own_history_mode: str = "step"  # "step": single frames, one-step predictions; "rollout": whole windows
    # the share of an own frame's error its "delta" target undoes (ARModel.loss's history_pull): rollouts
    # drift far, and undoing all of it in one step makes targets too large to learn from
    own_history_pull: float = 1.0
    # yaw, pitch, roll: the error along the latent pattern of each angle's change counts 1 + this many times
    # (`pose_loss.py`); a turn is ~1% of a frame's latent change, so the plain loss barely sees it
    pose_loss_weights: tuple[float, float, float] = (0.0, 0.0, 0.0)
    # Under torchrun: "replicate" keeps the whole model on every process and all-reduces the gradients;
    # "fsdp" shards the backbone's decoder layers and the head's blocks with FSDP2 (`trainer/sharding.py`),
    # for presets whose weights and optimizer state do not fit one device (`paper`). One process trains the
    # same either way.
    sharding: str = "replicate"

    def validate(self) -> None:
        if isinstance(self.model, dict):
            self.model = ARConfig.from_dict(self.model)
        if self.window_frames < 2:
            raise ValueError(f"window_frames must be >= 2, got {self.window_frames}")
        if self.batch_size < 1 or self.micro_batch < 1 or self.batch_size % self.micro_batch:
            raise ValueError(
                f"batch_size={self.batch_size} must be a positive multiple of micro_batch={self.micro_batch}"
            )
        if self.lr <= 0 or not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValueError(f"need lr > 0 and 0 <= min_lr_ratio <= 1, got {self.lr}, {self.min_lr_ratio}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if not 0.0 <= self.own_history <= 1.0:
            raise ValueError(f"own_history must be in [0, 1], got {self.own_history}")
        if not 0.0 < self.own_history_pull <= 1.0:
            raise ValueError(f"own_history_pull must be in (0, 1], got {self.own_history_pull}")
        if len(self.pose_loss_weights) != 3 or min(self.pose_loss_weights) < 0:
            raise ValueError(
                f"pose_loss_weights must be 3 values >= 0 (yaw, pitch, roll), got {self.pose_loss_weights}"
            )
        if self.own_history_mode not in OWN_HISTORY_MODES:
            raise ValueError(
                f"own_history_mode must be one of {OWN_HISTORY_MODES}, got {self.own_history_mode!r}"
            )
        if self.sharding not in ("replicate", "fsdp"):
            raise ValueError(f"sharding must be 'replicate' or 'fsdp', got {self.sharding!r}")
        if not 0.0 <= self.contiguous_reference <= 1.0:
            raise ValueError(f"contiguous_reference must be in [0, 1], got {self.contiguous_reference}")
        if self.audio_history_frames is not None and self.audio_history_frames < 0:
            raise ValueError(f"audio_history_frames must be >= 0 or None, got {self.audio_history_frames}")
        for name in ("checkpoint_every", "keep_checkpoints", "log_every", "val_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.warmup_steps < 0 or self.val_windows < 0 or self.grad_clip < 0:
            raise ValueError("warmup_steps, val_windows and grad_clip must be >= 0")

    def lr_at(self, step: int, total_steps: int) -> float:
        """Learning rate of optimizer step ``step`` (0-based) in a run of ``total_steps``."""
        return warmup_cosine_lr(step, total_steps, self.lr, self.warmup_steps, self.min_lr_ratio)
