"""Configuration of the autoregressive model: nested backbone, head and condition configs, sequence facts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from avatarlm.backbone import BackboneConfig
from avatarlm.conditions.config import ConditionConfig
from avatarlm.config import ComponentConfig, register_config
from avatarlm.head import HeadConfig

TARGETS = ("frame", "delta")


def composed(preset: str, ae_preset: str, chunk_size: int = 1, audio_streams: int = 1) -> dict[str, Any]:
    """An AR config (as a dict) from the backbone / head / condition presets named ``preset``, sized to an
    autoencoder preset: the head gets the backbone width and the latent shape."""
    from avatarlm.config import AutoencoderConfig

    backbone = BackboneConfig.preset(preset)
    ae = AutoencoderConfig.preset(ae_preset)
    head = HeadConfig.preset(
        preset,
        cond_dim=backbone.hidden_size,
        in_channels=ae.latent_channels,
        tokens_per_frame=ae.tokens_per_frame,
    )
    return dict(
        backbone=backbone.to_dict(),
        head=head.to_dict(),
        conditions=ConditionConfig.preset(preset, audio_streams=audio_streams).to_dict(),
        latent_channels=ae.latent_channels,
        tokens_per_frame=ae.tokens_per_frame,
        chunk_size=chunk_size,
    )


@register_config
@dataclass
class ARConfig(ComponentConfig):
    """The whole autoregressive model: nested backbone, head and condition configs plus the sequence facts.

    ``latent_channels`` (C) and ``tokens_per_frame`` (T) are the autoencoder's; ``chunk_size`` is n.
    History latents are corrupted with sigma ~ U[0, sigma_max] per frame in training; at inference every
    history frame but the reference gets ``sigma_inf`` = 0.05: small enough to keep detail, non-zero so
    the model sees the same kind of input as in training. ``noise_injection=False`` is the ablation
    without any history noise (sigma = 0 in training and at inference).
    """

    kind: ClassVar[str] = "ar_model"
    _presets: ClassVar[dict[str, dict[str, Any]]] = {
        # Tiny autoencoder (4x4x32 = 16 tokens), 256-wide backbone, n = 1. One noise draw per backbone
        # pass: on CPUs the head costs as much as the backbone, so extra draws would halve the steps.
        "tiny": dict(
            backbone=BackboneConfig.preset("tiny").to_dict(),
            head=HeadConfig.preset("tiny", loss_repeat=1).to_dict(),
            conditions=ConditionConfig.preset("tiny").to_dict(),
            latent_channels=32,
            tokens_per_frame=16,
            target="delta",
        ),
        # An action-conditioned world model (`avatarlm data world` rollouts) at tiny sizes: one action token
        # per frame, no audio, pose or text. num_actions must cover the env's action count: 17 is
        # Crafter's; ViZDoom has 11 (`--set model.conditions.num_actions=11`). fps is the rollouts' (15).
        "world": dict(
            backbone=BackboneConfig.preset("tiny").to_dict(),
            head=HeadConfig.preset("tiny", loss_repeat=1).to_dict(),
            conditions=ConditionConfig.preset(
                "tiny", modalities=("action",), num_actions=17, fps=15
            ).to_dict(),
            latent_channels=32,
            tokens_per_frame=16,
            target="delta",
            # A game's view slides whole: consecutive ViZDoom latents (world64) differ by 0.7 std where the
            # latents themselves have 0.8, so the change needs no 10x magnification (talking heads: 0.1).
            delta_scale=1.0,
        ),
        # Composed from the component presets of that name, sized to an autoencoder preset: `small` (8x512
        # backbone) on the `small_f64` autoencoder (256x256 -> 4x4x64), and `paper`, the MIDAS setting:
        # Qwen2.5-3B dimensions (load its weights with `avatarlm train ar --backbone-weights DIR`), a 16x1024
        # transformer head, the `paper` autoencoder (384x640 -> 6x10x128 = 60 tokens) and chunks of 6 frames.
        "small": composed("small", "small_f64"),
        "paper": composed("paper", "paper", chunk_size=6),
    }

    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    conditions: ConditionConfig = field(default_factory=ConditionConfig)
    latent_channels: int = 32
    tokens_per_frame: int = 16
    chunk_size: int = 1
    sigma_max: float = 0.3
    sigma_inf: float = 0.05
    noise_injection: bool = True
    sigma_frequency_dim: int = 64
    # What the head denoises: "frame" = the next frame's latent; "delta" = its change from the current
    # frame divided by delta_scale (next = current + delta_scale * sample). Consecutive frames differ little,
    # so "delta" spends the head's capacity on the motion (mouth, head) instead of re-drawing the face.
    target: str = "frame"
    delta_scale: float = 0.1
    # Auxiliary face-state supervision (0 = off): a linear probe reads the hidden states that predict frame
    # k+1 and regresses that frame's face state (these fields of the data's per-frame truth); its MSE, times
    # face_probe_weight, joins the loss. The next mouth shape is not in the history, only in the audio, so
    # the probe pushes the backbone to carry what the audio says to where the head reads it.
    face_probe_fields: tuple[str, ...] = ("mouth_open", "mouth_width", "mouth_round")
    face_probe_weight: float = 0.0
    # The first mouth_channels latent channels hold the mouth (an autoencoder trained with the mouth swap,
    # `avatarlm train ae --mouth-channels K`); their share of the head loss is multiplied by
    # mouth_loss_weight. The mouth is a few percent of a latent's variance, and it is the part the audio
    # decides: weighting it keeps the head from spending its loss on everything else.
    mouth_channels: int = 0
    mouth_loss_weight: float = 1.0

    @property
    def hidden_size(self) -> int:
        return self.backbone.hidden_size

    @property
    def cond_tokens_per_frame(self) -> int:
        return self.conditions.tokens_per_frame

    @property
    def inference_sigma(self) -> float:
        """Noise level of history frames at inference (0 without noise injection)."""
        return self.sigma_inf if self.noise_injection else 0.0

    def validate(self) -> None:
        for name in ("latent_channels", "tokens_per_frame", "chunk_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        d = self.backbone.hidden_size
        if self.head.cond_dim != d or self.conditions.d_model != d:
            raise ValueError(
                f"head.cond_dim={self.head.cond_dim} and conditions.d_model={self.conditions.d_model} "
                f"must equal backbone.hidden_size={d}"
            )
        if self.head.in_channels != self.latent_channels:
            raise ValueError(
                f"head.in_channels={self.head.in_channels} must equal latent_channels={self.latent_channels}"
            )
        if self.head.tokens_per_frame != self.tokens_per_frame:
            raise ValueError(
                f"head.tokens_per_frame={self.head.tokens_per_frame} must equal "
                f"tokens_per_frame={self.tokens_per_frame}"
            )
        if not 0.0 <= self.sigma_max < 1.0:
            raise ValueError(f"sigma_max must be in [0, 1), got {self.sigma_max}")
        if not 0.0 <= self.sigma_inf <= self.sigma_max:
            raise ValueError(f"sigma_inf must be in [0, sigma_max={self.sigma_max}], got {self.sigma_inf}")
        if self.target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, got {self.target!r}")
        if self.delta_scale <= 0:
            raise ValueError(f"delta_scale must be positive, got {self.delta_scale}")
        if self.face_probe_weight < 0:
            raise ValueError(f"face_probe_weight must be >= 0, got {self.face_probe_weight}")
        if self.face_probe_weight > 0 and not self.face_probe_fields:
            raise ValueError("face_probe_weight > 0 needs at least one face_probe_fields entry")
        self.face_probe_fields = tuple(self.face_probe_fields)
        if not 0 <= self.mouth_channels < self.latent_channels:
            raise ValueError(
                f"mouth_channels must be in 0..{self.latent_channels - 1}, got {self.mouth_channels}"
            )
        if self.mouth_loss_weight <= 0:
            raise ValueError(f"mouth_loss_weight must be positive, got {self.mouth_loss_weight}")
        if self.mouth_loss_weight != 1.0 and self.mouth_channels == 0:
            raise ValueError(
                "mouth_loss_weight needs mouth_channels > 0 (an autoencoder with mouth channels)"
            )
        if self.sigma_frequency_dim < 2 or self.sigma_frequency_dim % 2:
            raise ValueError(f"sigma_frequency_dim must be even and >= 2, got {self.sigma_frequency_dim}")

    def channel_weight(self) -> torch.Tensor | None:
        """(C,) loss weight of the latent channels, or None when they all weigh the same."""
        if self.mouth_loss_weight == 1.0:
            return None
        w = torch.ones(self.latent_channels)
        w[: self.mouth_channels] = self.mouth_loss_weight
        return w
