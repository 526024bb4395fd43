"""Small AR configs and a 64x64 autoencoder with cached latents, shared by the AR trainer tests."""

from __future__ import annotations

from pathlib import Path

from ae_helpers import small_config
from avatarlm.ar_config import ARConfig
from avatarlm.autoencoder.latent_cache import encode_dataset
from avatarlm.autoencoder.model import DCAutoencoder
from avatarlm.backbone import BackboneConfig
from avatarlm.conditions.config import ConditionConfig
from avatarlm.head import HeadConfig
from avatarlm.trainer.ar_config import ARTrainConfig

C, T, D = 8, 16, 64  # latent channels, tokens per frame (4x4), backbone width
TAG = "ar-test"


def ae_config(**overrides):
    """64x64 -> 4x4x8 (f16), no temporal layers."""
    return small_config(
        **overrides,
        image_height=64,
        image_width=64,
        widths=(8, 16, 32, 32),
        encoder_depths=(1, 1, 1, 1),
        decoder_depths=(1, 1, 1, 1),
        temporal=False,
        temporal_levels=0,
        temporal_attention_levels=0,
    )


def ar_config(**overrides) -> ARConfig:
    return ARConfig(
        backbone=BackboneConfig(
            hidden_size=D, num_layers=2, num_heads=4, num_kv_heads=2, intermediate_size=128
        ),
        head=HeadConfig(in_channels=C, tokens_per_frame=T, cond_dim=D, width=64, depth=2, loss_repeat=2),
        conditions=ConditionConfig(
            d_model=D, audio_channels=16, audio_frame_channels=32, pose_hidden=32, text_width=32
        ),
        latent_channels=C,
        tokens_per_frame=T,
        **overrides,
    )


def train_config(**overrides) -> ARTrainConfig:
    values = dict(
        model=ar_config(),
        window_frames=8,
        batch_size=4,
        micro_batch=2,
        warmup_steps=2,
        checkpoint_every=2,
        log_every=1,
        val_every=2,
        val_windows=4,
    )
    values.update(overrides)
    return ARTrainConfig(**values)  # type: ignore[arg-type]


def encoded_dataset(root: Path) -> Path:
    """Encode the dataset's latents with a fixed random 64x64 autoencoder (saved to ROOT/ae-test)."""
    folder = root / "ae-test"
    if not (folder / "config.json").exists():
        import torch

        torch.manual_seed(0)
        ae = DCAutoencoder(ae_config())
        ae.save_pretrained(folder)
        encode_dataset(ae, root, TAG, show_progress=False)
    return folder


def open_head(model, std: float = 0.5):
    """Randomise the parameters that start at exactly zero (the head's output layer, adaLN gates), so an
    untrained model's frames depend on its conditions; returns the model."""
    import torch

    with torch.no_grad():
        for p in model.head.parameters():
            if not p.any():
                p.normal_(0.0, std)
    return model


def random_pipeline_folder(
    root: Path,
    audio_streams: int = 1,
    chunk_size: int = 1,
    modalities: tuple[str, ...] | None = None,
    num_actions: int = 5,
    mouth_channels: int = 0,
    pose_delta: bool = False,
) -> Path:
    """A 64x64 pipeline with random weights (delta target, head opened) saved under ``root``; two audio
    streams make it a duplex model, ``chunk_size`` n > 1 the paper's layout, ``modalities`` e.g.
    ("action",) a world model (of ``num_actions`` actions), ``mouth_channels`` K an autoencoder whose first
    K channels are declared the mouth's (as ``train ae --mouth-channels`` makes them), ``pose_delta`` a pose
    encoder that also reads the change of pose (its branch drawn at random, not at zero)."""
    from dataclasses import replace

    import torch

    from avatarlm.model import ARModel
    from avatarlm.pipeline.folder import save_pipeline

    torch.manual_seed(0)
    ae = DCAutoencoder(ae_config(mouth_channels=mouth_channels)).save_pretrained(
        root / f"ae-{mouth_channels}"
    )
    config = ar_config(target="delta", chunk_size=chunk_size)
    cond = replace(config.conditions, audio_streams=audio_streams)
    if modalities is not None:
        cond = replace(cond, modalities=modalities, num_actions=num_actions)
    config = replace(config, conditions=replace(cond, pose_delta=pose_delta))
    model = ARModel(config)
    if pose_delta:
        torch.nn.init.normal_(model.conditions.encoders["pose"].delta.weight)
    name = f"pipeline-{audio_streams}-{chunk_size}-{'-'.join(cond.modalities)}-{mouth_channels}-{int(pose_delta)}"
    return save_pipeline(root / name, ae, open_head(model, 0.05), "test")
