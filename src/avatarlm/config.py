"""Dataclass configs for each component, with named presets and a JSON round trip.

Every component config subclasses :class:`ComponentConfig`, sets a ``kind`` and a ``_presets`` table, and
gets ``preset(name, **overrides)``, ``to_dict()``, ``from_dict()`` and ``replace()`` for free. New
components register themselves in ``CONFIG_KINDS`` with :func:`register_config`.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

CONFIG_KINDS: dict[str, type[ComponentConfig]] = {}


def register_config(cls: type[ComponentConfig]) -> type[ComponentConfig]:
    """Class decorator: make ``cls`` loadable by its ``kind`` through :func:`config_from_dict`."""
    CONFIG_KINDS[cls.kind] = cls
    return cls


@dataclass
class ComponentConfig:
    """Base of all component configs."""

    kind: ClassVar[str] = "component"
    _presets: ClassVar[dict[str, dict[str, Any]]] = {}

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError on inconsistent values; subclasses extend this."""

    @classmethod
    def preset_names(cls) -> list[str]:
        return list(cls._presets)

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> Self:
        """Build the named preset, optionally overriding fields."""
        if name not in cls._presets:
            raise ValueError(f"unknown {cls.kind} preset {name!r}; known: {', '.join(cls._presets)}")
        values = {**cls._presets[name], **overrides}
        return cls.from_dict(values)

    @classmethod
    def from_preset_or_file(cls, name: str, **overrides: Any) -> Self:
        """A named preset, or a JSON file (``*.json``) holding a config of this kind, e.g. a run's own."""
        if not name.endswith(".json"):
            if name not in cls._presets:
                known = ", ".join(cls._presets)
                raise ValueError(f"unknown preset {name!r}; known: {known}, or a .json config file")
            return cls.preset(name, **overrides)
        import json
        from pathlib import Path

        path = Path(name)
        if not path.is_file():
            raise ValueError(f"{name}: no such file")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{name} is not valid JSON: {e}") from None
        if not isinstance(data, dict) or data.get("kind") != cls.kind:
            raise ValueError(f"{name} does not hold a {cls.kind} config (kind {cls.kind!r})")
        return cls.from_dict({**data, **overrides})

    def replace(self, **changes: Any) -> Self:
        """A validated copy with some fields changed."""
        return type(self).from_dict({**self.to_dict(), **changes})

    def with_overrides(self, overrides: dict[str, Any]) -> Self:
        """``{"lr": 1e-3, "model.backbone.num_layers": 2}`` -> a validated copy; dotted keys reach nested
        configs (what ``--set KEY=VALUE`` gives)."""
        data = self.to_dict()
        for key, value in overrides.items():
            node = data
            *parents, leaf = key.split(".")
            for part in parents:
                if not isinstance(node.get(part), dict):
                    raise ValueError(f"--set {key}: {part!r} is not a nested config")
                node = node[part]
            if leaf not in node:
                raise ValueError(f"--set {key}: unknown field {leaf!r}; known: {', '.join(sorted(node))}")
            node[leaf] = value
        return type(self).from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict including ``kind``; tuples become lists, nested configs nested dicts."""
        out: dict[str, Any] = {"kind": self.kind}
        for f in dataclasses.fields(self):
            out[f.name] = _to_json(getattr(self, f.name))
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Inverse of :meth:`to_dict`; unknown keys or a wrong ``kind`` raise ValueError."""
        data = dict(data)
        kind = data.pop("kind", cls.kind)
        if kind != cls.kind:
            raise ValueError(f"config kind {kind!r} does not match expected {cls.kind!r}")
        hints = typing.get_type_hints(cls)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown {cls.kind} config field(s): {', '.join(unknown)}")
        values = {name: _from_json(hints[name], value) for name, value in data.items()}
        return cls(**values)


def _to_json(value: Any) -> Any:
    if isinstance(value, ComponentConfig):
        return value.to_dict()
    if isinstance(value, tuple | list):
        return [_to_json(v) for v in value]
    return value


def _from_json(hint: Any, value: Any) -> Any:
    if isinstance(hint, type) and issubclass(hint, ComponentConfig) and isinstance(value, dict):
        return hint.from_dict(value)
    if typing.get_origin(hint) is tuple and isinstance(value, list):
        return tuple(value)
    return value


def config_from_dict(data: dict[str, Any]) -> ComponentConfig:
    """Build whichever registered config ``data['kind']`` names."""
    kind = data.get("kind")
    if kind not in CONFIG_KINDS:
        raise ValueError(f"unknown config kind {kind!r}; known: {', '.join(CONFIG_KINDS)}")
    return CONFIG_KINDS[kind].from_dict(data)


# ----------------------------------------------------------------------------------------------------
# Autoencoder
# ----------------------------------------------------------------------------------------------------

_AE_PRESETS: dict[str, dict[str, Any]] = {
    # 128x128 -> 4x4x32 (16 tokens), the CPU real-time preset. Level 0 is 64x64 (patch 2), so the decoder
    # never runs a conv at 128x128; thin high-resolution levels, capacity at 8x8 and 4x4. At 4x4 two
    # 3x3 convs already see the whole map, so the bottleneck attention does not pay here.
    "tiny": dict(
        image_height=128,
        image_width=128,
        latent_channels=32,
        patch_size=2,
        widths=(16, 32, 64, 128, 256),
        encoder_depths=(1, 1, 1, 2, 2),
        decoder_depths=(1, 1, 1, 1, 2),
        bottleneck_attention=False,
        temporal_levels=5,
        temporal_attention_levels=1,
    ),
    # World model frames (`avatarlm data world`, 64x64) -> 4x4x32 (16 tokens, f16): the AR cost of `tiny`.
    "world64": dict(
        image_height=64,
        image_width=64,
        latent_channels=32,
        patch_size=2,
        widths=(32, 64, 128, 256),
        encoder_depths=(1, 1, 2, 2),
        decoder_depths=(1, 1, 2, 2),
        bottleneck_attention=False,
        temporal_levels=4,
        temporal_attention_levels=1,
    ),
    # 256x256 -> 8x8x32 (64 tokens).
    "small_f32": dict(
        image_height=256,
        image_width=256,
        latent_channels=32,
        patch_size=2,
        widths=(16, 32, 64, 128, 256),
        encoder_depths=(1, 1, 1, 2, 2),
        decoder_depths=(1, 1, 1, 2, 2),
        bottleneck_attention=True,
        temporal_levels=5,
        temporal_attention_levels=1,
    ),
    # 256x256 -> 4x4x64 (16 tokens).
    "small_f64": dict(
        image_height=256,
        image_width=256,
        latent_channels=64,
        patch_size=2,
        widths=(16, 32, 64, 128, 256, 256),
        encoder_depths=(1, 1, 1, 1, 2, 2),
        decoder_depths=(1, 1, 1, 1, 2, 2),
        bottleneck_attention=False,
        temporal_levels=6,
        temporal_attention_levels=1,
    ),
    # The paper's setting: 384 wide x 640 tall portrait, f64, 128 channels -> 6x10 = 60 tokens.
    "paper": dict(
        image_height=640,
        image_width=384,
        latent_channels=128,
        patch_size=2,
        widths=(64, 128, 256, 512, 512, 1024),
        encoder_depths=(2, 2, 2, 3, 3, 3),
        decoder_depths=(2, 2, 2, 3, 3, 3),
        upsample_kernel=3,
        bottleneck_attention=True,
        attention_head_dim=64,
        temporal_levels=6,
        temporal_attention_levels=2,
        temporal_spatial_kernel=3,
    ),
}


@register_config
@dataclass
class AutoencoderConfig(ComponentConfig):
    """Deep-compression autoencoder (residual autoencoding) with optional causal temporal layers.

    Level 0 is the image after a ``patch_size`` space-to-channel stem; each further level halves the
    resolution. The total downsampling factor is ``patch_size * 2 ** (len(widths) - 1)``.
    """

    kind: ClassVar[str] = "autoencoder"
    _presets: ClassVar[dict[str, dict[str, Any]]] = _AE_PRESETS

    image_height: int = 128
    image_width: int = 128
    in_channels: int = 3
    latent_channels: int = 32
    patch_size: int = 2
    widths: tuple[int, ...] = (16, 32, 64, 128, 256)
    encoder_depths: tuple[int, ...] = (1, 1, 1, 2, 2)
    decoder_depths: tuple[int, ...] = (1, 1, 1, 1, 2)
    upsample_kernel: int = 1  # kernel of the decoder's conv before pixel shuffle (1 is ~9x cheaper than 3)
    bottleneck_attention: bool = False  # global self-attention over the lowest-resolution level
    attention_head_dim: int = 32
    # Temporal layers (stage 2+): causal temporal conv at `temporal_levels` lowest-resolution levels,
    # RoPE attention over the last `temporal_window` frames at `temporal_attention_levels` of them.
    temporal: bool = False
    temporal_kernel: int = 3
    temporal_spatial_kernel: int = 1  # spatial size of the causal temporal conv kernel (odd)
    temporal_window: int = 8
    temporal_levels: int = 5
    temporal_attention_levels: int = 1
    # False: temporal layers in the decoder only, so a spatial model's encoder (and every latent and AR model
    # made with it) stays as it was when the decoder learns time (`train ae --stage temporal`).
    temporal_encoder: bool = True
    # The first `mouth_channels` latent channels hold the mouth, the same on every face (trained with the
    # mouth-swap objective, `avatarlm.autoencoder.mouth_swap`); 0 = no such channels.
    mouth_channels: int = 0
    # The finest `reference_levels` decoder levels also read the stream's reference frame (its encoder
    # features; `avatarlm.autoencoder.reference`), so detail the latent cannot hold comes from the picture.
    reference_levels: int = 0
    # Latent normalisation: latents seen by users are (z - shift) / scale, per channel; empty = identity.
    latent_shift: tuple[float, ...] = field(default_factory=tuple)
    latent_scale: tuple[float, ...] = field(default_factory=tuple)

    @property
    def num_levels(self) -> int:
        return len(self.widths)

    @property
    def downsample_factor(self) -> int:
        return self.patch_size * 2 ** (self.num_levels - 1)

    @property
    def latent_height(self) -> int:
        return self.image_height // self.downsample_factor

    @property
    def latent_width(self) -> int:
        return self.image_width // self.downsample_factor

    @property
    def tokens_per_frame(self) -> int:
        return self.latent_height * self.latent_width

    def validate(self) -> None:
        n = self.num_levels
        if n < 1 or any(w <= 0 for w in self.widths):
            raise ValueError(f"widths must be a non-empty tuple of positive ints, got {self.widths}")
        for name in ("encoder_depths", "decoder_depths"):
            depths = getattr(self, name)
            if len(depths) != n or any(d < 0 for d in depths):
                raise ValueError(f"{name}={depths} must have {n} non-negative entries (one per width)")
        if self.patch_size < 1:
            raise ValueError(f"patch_size must be >= 1, got {self.patch_size}")
        f = self.downsample_factor
        if self.image_height % f or self.image_width % f or self.image_height <= 0 or self.image_width <= 0:
            raise ValueError(
                f"image size {self.image_width}x{self.image_height} (WxH) is not a positive multiple of "
                f"the downsampling factor {f}"
            )
        for a, b in zip(self.widths[:-1], self.widths[1:], strict=True):
            if (4 * a) % b:
                raise ValueError(f"widths {a}->{b}: 4*{a} must be divisible by {b} for the residual shortcut")
        if not 0 <= self.mouth_channels < self.latent_channels:
            raise ValueError(
                f"mouth_channels={self.mouth_channels} must be in 0..{self.latent_channels - 1} "
                "(some latent channels must hold the rest of the face)"
            )
        if self.widths[-1] % self.latent_channels:
            raise ValueError(
                f"latent_channels={self.latent_channels} must divide the last width {self.widths[-1]}"
            )
        for w in self.widths[
            n - max(self.temporal_attention_levels, 1 if self.bottleneck_attention else 0) :
        ]:
            if w % self.attention_head_dim or self.attention_head_dim % 2:
                raise ValueError(
                    f"attention_head_dim={self.attention_head_dim} must be even and divide width {w}"
                )
        if self.temporal_kernel < 1 or self.temporal_window < 1:
            raise ValueError(
                f"temporal_kernel={self.temporal_kernel} and temporal_window={self.temporal_window} "
                "must be >= 1"
            )
        if self.upsample_kernel < 1 or self.upsample_kernel % 2 == 0:
            raise ValueError(f"upsample_kernel must be odd and >= 1, got {self.upsample_kernel}")
        if self.temporal_spatial_kernel < 1 or self.temporal_spatial_kernel % 2 == 0:
            raise ValueError(
                f"temporal_spatial_kernel must be odd and >= 1, got {self.temporal_spatial_kernel}"
            )
        if not 0 <= self.temporal_attention_levels <= self.temporal_levels <= n:
            raise ValueError(
                f"need 0 <= temporal_attention_levels ({self.temporal_attention_levels}) <= "
                f"temporal_levels ({self.temporal_levels}) <= number of levels ({n})"
            )
        if not 0 <= self.reference_levels < n:
            raise ValueError(
                f"reference_levels must be in 0..{n - 1} (fused decoder levels), got {self.reference_levels}"
            )
        for name in ("latent_shift", "latent_scale"):
            values = getattr(self, name)
            if len(values) not in (0, self.latent_channels):
                raise ValueError(f"{name} has {len(values)} entries, expected 0 or {self.latent_channels}")
        if any(s <= 0 for s in self.latent_scale):
            raise ValueError(f"latent_scale entries must be positive, got {self.latent_scale}")
