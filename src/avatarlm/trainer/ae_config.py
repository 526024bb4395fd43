"""Configuration of an autoencoder training run (the autoencoder's config nested), with named presets."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from avatarlm.config import AutoencoderConfig, ComponentConfig, register_config

AE_STAGES = ("spatial", "temporal", "joint", "decoder")


@register_config
@dataclass
class AETrainConfig(ComponentConfig):
    """Autoencoder training run. ``stage``: spatial (image-only), temporal (only the temporal layers
    train, spatial ones frozen), joint (everything trains), decoder (only the decoder trains, from
    ``init_from``: the encoder and the latent normalisation stay, so latents and AR models made for the
    init model still fit; how `train character` teaches the decoder one person's face)."""

    kind: ClassVar[str] = "ae_train"
    _presets: ClassVar[dict[str, dict[str, Any]]] = {
        name: {"autoencoder": AutoencoderConfig.preset(name).to_dict()}
        for name in ("tiny", "world64", "small_f32", "small_f64")
    }

    autoencoder: AutoencoderConfig = field(default_factory=AutoencoderConfig)
    stage: str = "spatial"
    init_from: str | None = None  # model folder of the previous stage
    lr: float = 3e-4
    warmup_steps: int = 100
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.99)
    grad_clip: float = 1.0
    l1_weight: float = 1.0
    ssim_weight: float = 0.5
    temporal_weight: float = 0.5  # L1 on frame differences (flicker), used when clips have T > 1
    gan_weight: float = 0.0  # 0 disables the patch discriminator
    gan_start_step: int = 2000
    disc_lr: float = 2e-4
    disc_width: int = 32
    # Mouth swap (when autoencoder.mouth_channels > 0; batches are (face, target, donor) triples):
    # weight of the swapped decode's loss, and of the non-mouth channels' invariance to the mouth.
    mouth_swap_weight: float = 1.0
    mouth_invariance_weight: float = 1.0
    # weight of the L1 over the mouth's pixels counted again (mouth_swap.mouth_l1; 0 = not counted again)
    mouth_weight: float = 0.0
    # Reference-conditioned models: the share of batches decoded without their reference frame, and (for a
    # talking-head model, one with mouth channels, trained on single frames) the share of each batch's
    # pairs rendered as one face with two mouths, so the decoder takes the mouth from the latent.
    reference_dropout: float = 0.1
    reference_mouth_share: float = 0.5
    # Weight of the L1 over pixels where the frame differs from its reference (reference.changed_l1).
    reference_change_weight: float = 2.0
    checkpoint_every: int = 500
    log_every: int = 10  # steps between rows of the loss curve (OUT/loss.csv, loss.png)
    keep_checkpoints: int = 2
    latent_stats_batches: int = 4
    seed: int = 0

    def validate(self) -> None:
        if isinstance(self.autoencoder, dict):
            self.autoencoder = AutoencoderConfig.from_dict(self.autoencoder)
        if self.stage not in AE_STAGES:
            raise ValueError(f"stage must be one of {AE_STAGES}, got {self.stage!r}")
        if self.lr <= 0 or self.disc_lr <= 0:
            raise ValueError(f"learning rates must be positive, got lr={self.lr}, disc_lr={self.disc_lr}")
        if self.log_every < 1:
            raise ValueError(f"log_every must be >= 1, got {self.log_every}")
        if self.checkpoint_every < 1 or self.keep_checkpoints < 1:
            raise ValueError(
                f"checkpoint_every={self.checkpoint_every} and keep_checkpoints={self.keep_checkpoints} "
                "must be >= 1"
            )
        weights = (self.l1_weight, self.ssim_weight, self.temporal_weight, self.gan_weight)
        if min(*weights, self.mouth_swap_weight, self.mouth_invariance_weight, self.mouth_weight) < 0:
            raise ValueError("loss weights must be non-negative")
        for name in ("reference_dropout", "reference_mouth_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.reference_change_weight < 0:
            raise ValueError(f"reference_change_weight must be >= 0, got {self.reference_change_weight}")
        if self.warmup_steps < 0 or self.gan_start_step < 0 or self.latent_stats_batches < 1:
            raise ValueError(
                f"warmup_steps={self.warmup_steps}, gan_start_step={self.gan_start_step} must be >= 0 and "
                f"latent_stats_batches={self.latent_stats_batches} >= 1"
            )
