"""Deep-compression autoencoder with causal temporal layers and frame-by-frame streaming."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..config import AutoencoderConfig
from ..io import check_state_dict, load_model_folder, save_model_folder
from .blocks import DownBlock, LatentProjection, PatchHead, PatchStem, ResBlock, SpatialAttention, UpBlock
from .reference import ReferenceBlend, ReferenceFeatures, ReferenceFusion, ReferenceWarp, fusion_blocks, warp
from .temporal import TemporalBlock, TemporalCache

TEMPORAL_KEY = ".temporal."


@dataclass
class AutoencoderCache:
    """Streaming state of one video stream: separate feature caches for encoding and decoding, and the
    reference frame's features the decoder reads (reference-conditioned models; kept by ``reset``)."""

    encoder: TemporalCache = field(default_factory=TemporalCache)
    decoder: TemporalCache = field(default_factory=TemporalCache)
    reference: ReferenceFeatures | None = None

    def reset(self) -> None:
        self.encoder.reset()
        self.decoder.reset()


def _temporal_blocks(cfg: AutoencoderConfig, prefix: str) -> nn.ModuleDict:
    blocks = nn.ModuleDict()
    if not cfg.temporal or (prefix == "enc" and not cfg.temporal_encoder):
        return blocks
    n = cfg.num_levels
    for i in range(n - cfg.temporal_levels, n):
        blocks[str(i)] = TemporalBlock(
            name=f"{prefix}{i}",
            channels=cfg.widths[i],
            kernel=cfg.temporal_kernel,
            window=cfg.temporal_window,
            attention=i >= n - cfg.temporal_attention_levels,
            head_dim=cfg.attention_head_dim,
            spatial_kernel=cfg.temporal_spatial_kernel,
        )
    return blocks


def _apply_temporal(
    blocks: nn.ModuleDict, level: int, h: torch.Tensor, batch: int, cache: TemporalCache | None
) -> torch.Tensor:
    key = str(level)
    if key not in blocks:
        return h
    return blocks[key](h.view(batch, -1, *h.shape[1:]), cache).flatten(0, 1)


class Encoder(nn.Module):
    """Frames (B, T, 3, H, W) -> raw latents (B, T, C, h, w)."""

    def __init__(self, cfg: AutoencoderConfig) -> None:
        super().__init__()
        w, n = cfg.widths, cfg.num_levels
        self.stem = PatchStem(cfg.in_channels, w[0], cfg.patch_size)
        levels = []
        for i in range(n):
            blocks: list[nn.Module] = [ResBlock(w[i]) for _ in range(cfg.encoder_depths[i])]
            if i == n - 1 and cfg.bottleneck_attention:
                blocks.append(SpatialAttention(w[i], cfg.attention_head_dim))
            levels.append(nn.Sequential(*blocks))
        self.levels = nn.ModuleList(levels)
        self.downs = nn.ModuleList(DownBlock(w[i], w[i + 1]) for i in range(n - 1))
        self.temporal = _temporal_blocks(cfg, "enc")
        self.out = LatentProjection(w[-1], cfg.latent_channels)

    def forward(self, frames: torch.Tensor, cache: TemporalCache | None = None) -> torch.Tensor:
        b, t = frames.shape[:2]
        h = self.stem(frames.flatten(0, 1))
        for i, level in enumerate(self.levels):
            h = _apply_temporal(self.temporal, i, level(h), b, cache)
            if i < len(self.downs):
                h = self.downs[i](h)
        z = self.out(h)
        return z.view(b, t, *z.shape[1:])

    def level_features(self, images: torch.Tensor, levels: int) -> list[torch.Tensor]:
        """Images (B, 3, H, W), each on its own (no history) -> the outputs of the first ``levels`` levels."""
        h, out = self.stem(images), []
        for i in range(levels):
            h = _apply_temporal(self.temporal, i, self.levels[i](h), images.shape[0], None)
            out.append(h)
            if i < len(self.downs):
                h = self.downs[i](h)
        return out


class Decoder(nn.Module):
    """Raw latents (B, T, C, h, w) -> frames (B, T, 3, H, W)."""

    def __init__(self, cfg: AutoencoderConfig) -> None:
        super().__init__()
        w, n = cfg.widths, cfg.num_levels
        self.inp = LatentProjection(cfg.latent_channels, w[-1])
        levels = []
        for i in range(n):
            blocks: list[nn.Module] = [ResBlock(w[i]) for _ in range(cfg.decoder_depths[i])]
            if i == n - 1 and cfg.bottleneck_attention:
                blocks.insert(0, SpatialAttention(w[i], cfg.attention_head_dim))
            levels.append(nn.Sequential(*blocks))
        self.levels = nn.ModuleList(levels)  # indexed by level, run from n-1 down to 0
        self.ups = nn.ModuleList(UpBlock(w[i + 1], w[i], cfg.upsample_kernel) for i in range(n - 1))
        self.temporal = _temporal_blocks(cfg, "dec")
        self.fusions = fusion_blocks(w, cfg.reference_levels)  # finest levels first
        self.head = PatchHead(w[0], cfg.in_channels, cfg.patch_size)
        fused = cfg.reference_levels
        self.warp = ReferenceWarp(w[fused - 1]) if fused else None  # at the coarsest fused level
        self.blend = ReferenceBlend(w[0], cfg.in_channels, cfg.patch_size) if fused else None

    def forward(
        self,
        latents: torch.Tensor,
        cache: TemporalCache | None = None,
        reference: ReferenceFeatures | None = None,
    ) -> torch.Tensor:
        b, t = latents.shape[:2]
        h = self.inp(latents.flatten(0, 1))
        flow: torch.Tensor | None = None  # the reference's warp to each frame, read at the first fused level
        for i in reversed(range(len(self.levels))):
            if reference is not None and i < len(self.fusions):
                if flow is None:
                    assert self.warp is not None
                    flow = self.warp(h, reference.levels[i])
                h = self.fusions[i](h, warp(reference.levels[i], flow))
            h = _apply_temporal(self.temporal, i, self.levels[i](h), b, cache)
            if i > 0:
                h = self.ups[i - 1](h)
        x = self.head(h)
        if reference is not None and self.blend is not None and flow is not None:
            x = self.blend(h, x, warp(reference.image, flow))
        return x.view(b, t, *x.shape[1:])


class DCAutoencoder(nn.Module):
    """DC-AE residual autoencoder. ``encode``/``decode`` take clips and return *normalised* latents
    ((z - shift) / scale from the config); ``*_step`` process one frame with a streaming cache."""

    def __init__(self, config: AutoencoderConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)

    @property
    def tokens_per_frame(self) -> int:
        return self.config.tokens_per_frame

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        """(C, h, w) of one frame's latent."""
        c = self.config
        return (c.latent_channels, c.latent_height, c.latent_width)

    def new_cache(self, reference_image: torch.Tensor | None = None) -> AutoencoderCache:
        """An empty stream state; ``reference_image`` (B, 3, H, W) in [-1, 1] gives a reference-conditioned
        model the picture its decoder reads (ignored by other models)."""
        return AutoencoderCache(reference=self.reference_features(reference_image))

    def reference_features(self, image: torch.Tensor | None) -> ReferenceFeatures | None:
        """Reference image (B, 3, H, W) in [-1, 1] -> what the decoder reads of it; None for a model
        without reference levels or without an image."""
        c = self.config
        if image is None or not c.reference_levels:
            return None
        if image.dim() != 4 or tuple(image.shape[1:]) != (c.in_channels, c.image_height, c.image_width):
            raise ValueError(
                f"reference image must have shape (B, {c.in_channels}, {c.image_height}, {c.image_width}), "
                f"got {tuple(image.shape)}"
            )
        features = self.encoder.level_features(image, c.reference_levels)
        fusions: list[ReferenceFusion] = list(self.decoder.fusions)  # type: ignore[arg-type]
        prepared = [f.prepare(x) for f, x in zip(fusions, features, strict=True)]
        return ReferenceFeatures(prepared, image)

    # -- shape checks and latent normalisation -------------------------------------------------------

    def _check(self, x: torch.Tensor, expected: tuple[int, int, int], what: str) -> None:
        if x.dim() != 5 or tuple(x.shape[2:]) != expected:
            raise ValueError(
                f"{what} must have shape (B, T, {', '.join(map(str, expected))}), got {tuple(x.shape)}"
            )

    def _stats(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        c = self.config
        if not c.latent_shift and not c.latent_scale:
            return None
        n = c.latent_channels
        shift = torch.tensor(c.latent_shift or (0.0,) * n, dtype=like.dtype, device=like.device)
        scale = torch.tensor(c.latent_scale or (1.0,) * n, dtype=like.dtype, device=like.device)
        return shift.view(1, 1, n, 1, 1), scale.view(1, 1, n, 1, 1)

    def set_latent_stats(self, shift: torch.Tensor, scale: torch.Tensor) -> None:
        """Store per-channel latent normalisation (computed on raw latents) in the config."""
        self.config = self.config.replace(
            latent_shift=tuple(float(v) for v in shift.flatten()),
            latent_scale=tuple(float(v) for v in scale.flatten()),
        )

    # -- clips -----------------------------------------------------------------------------------------

    def encode_raw(self, frames: torch.Tensor, cache: TemporalCache | None = None) -> torch.Tensor:
        """Frames (B, T, 3, H, W) in [-1, 1] -> unnormalised latents (B, T, C, h, w)."""
        c = self.config
        self._check(frames, (c.in_channels, c.image_height, c.image_width), "frames")
        return self.encoder(frames, cache)

    def decode_raw(
        self,
        latents: torch.Tensor,
        cache: TemporalCache | None = None,
        reference: ReferenceFeatures | None = None,
    ) -> torch.Tensor:
        """Unnormalised latents (B, T, C, h, w) -> frames (B, T, 3, H, W), roughly in [-1, 1]."""
        self._check(latents, self.latent_shape, "latents")
        if reference is not None and reference.batch != latents.shape[0]:
            raise ValueError(f"reference features for batch {reference.batch}, latents of {latents.shape[0]}")
        return self.decoder(latents, cache, reference)

    def encode(self, frames: torch.Tensor, cache: AutoencoderCache | None = None) -> torch.Tensor:
        """Frames (B, T, 3, H, W) -> normalised latents (B, T, C, h, w); ``cache`` continues a stream."""
        z = self.encode_raw(frames, cache.encoder if cache is not None else None)
        if cache is not None:
            cache.encoder.frames_seen += frames.shape[1]
        stats = self._stats(z)
        return z if stats is None else (z - stats[0]) / stats[1]

    def decode(
        self,
        latents: torch.Tensor,
        cache: AutoencoderCache | None = None,
        reference: ReferenceFeatures | None = None,
    ) -> torch.Tensor:
        """Normalised latents (B, T, C, h, w) -> frames (B, T, 3, H, W); ``cache`` continues a stream (and
        gives its reference features unless ``reference`` is passed)."""
        stats = self._stats(latents)
        z = latents if stats is None else latents * stats[1] + stats[0]
        if reference is None and cache is not None:
            reference = cache.reference
        x = self.decode_raw(z, cache.decoder if cache is not None else None, reference)
        if cache is not None:
            cache.decoder.frames_seen += latents.shape[1]
        return x

    def reconstruct(self, frames: torch.Tensor, reference_image: torch.Tensor | None = None) -> torch.Tensor:
        """Encode and decode a clip from an empty history (the training path); ``reference_image``
        (B, 3, H, W) is what a reference-conditioned decoder reads."""
        return self.decode_raw(self.encode_raw(frames), reference=self.reference_features(reference_image))

    # -- streaming ---------------------------------------------------------------------------------------

    def encode_step(self, frame: torch.Tensor, cache: AutoencoderCache) -> torch.Tensor:
        """One frame (B, 3, H, W) -> normalised latent (B, C, h, w), updating ``cache``."""
        if frame.dim() != 4:
            raise ValueError(f"frame must have shape (B, 3, H, W), got {tuple(frame.shape)}")
        return self.encode(frame[:, None], cache)[:, 0]

    def decode_step(self, latent: torch.Tensor, cache: AutoencoderCache) -> torch.Tensor:
        """One normalised latent (B, C, h, w) -> frame (B, 3, H, W), updating ``cache``."""
        if latent.dim() != 4:
            raise ValueError(f"latent must have shape (B, C, h, w), got {tuple(latent.shape)}")
        return self.decode(latent[:, None], cache)[:, 0]

    # -- parameter groups --------------------------------------------------------------------------------

    def temporal_parameters(self) -> list[nn.Parameter]:
        return [p for n, p in self.named_parameters() if TEMPORAL_KEY in f".{n}"]

    def spatial_parameters(self) -> list[nn.Parameter]:
        return [p for n, p in self.named_parameters() if TEMPORAL_KEY not in f".{n}"]

    # -- save / load ---------------------------------------------------------------------------------------

    def save_pretrained(self, folder: str | os.PathLike[str], dtype: torch.dtype | None = None) -> Path:
        """Write ``config.json`` + ``model.safetensors`` (optionally stored as fp16)."""
        return save_model_folder(folder, self.config.to_dict(), self.state_dict(), dtype=dtype)

    @classmethod
    def from_pretrained(
        cls,
        folder: str | os.PathLike[str],
        temporal: bool | None = None,
        device: str | torch.device = "cpu",
        reference_levels: int | None = None,
        temporal_encoder: bool = True,
    ) -> DCAutoencoder:
        """Load a model folder in fp32. ``temporal=True`` on a spatial (stage-1) folder adds identity-
        initialised temporal layers (to the decoder only when ``temporal_encoder`` is False);
        ``temporal=False`` drops saved temporal layers. ``reference_levels`` > 0 on a model without reference
        levels adds them, zero-initialised (``reference.py``), so the output stays the same; a model that has
        them keeps their number."""
        data, tensors = load_model_folder(folder, AutoencoderConfig.kind)
        config = AutoencoderConfig.from_dict(data)
        saved_temporal, saved_levels = config.temporal, config.reference_levels
        if temporal is not None:
            config = config.replace(temporal=temporal)
        if config.temporal and not saved_temporal:
            config = config.replace(temporal_encoder=temporal_encoder)
        if reference_levels is not None:
            if saved_levels and reference_levels != saved_levels:  # the flow's width depends on it
                raise ValueError(
                    f"{folder} fuses {saved_levels} reference levels: cannot change to {reference_levels}"
                )
            config = config.replace(reference_levels=reference_levels)
        model = cls(config)
        expected = model.state_dict()
        if saved_temporal and not config.temporal:
            tensors = {k: v for k, v in tensors.items() if TEMPORAL_KEY not in f".{k}"}
        if config.temporal and not saved_temporal:
            expected = {k: v for k, v in expected.items() if TEMPORAL_KEY not in f".{k}"}
        added = ("decoder.fusions.", "decoder.blend.", "decoder.warp.") if not saved_levels else ()
        expected = {k: v for k, v in expected.items() if not k.startswith(added)}
        check_state_dict(expected, tensors, folder)
        model.load_state_dict(tensors, strict=False)
        return model.to(device)
