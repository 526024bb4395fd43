"""Configuration of the condition encoders (audio, pose, text, action) and their token layout."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from avatarlm.conditions.mel import HOP_LENGTH, SAMPLE_RATE
from avatarlm.config import ComponentConfig, register_config

MODALITIES = ("audio", "pose", "text", "action")  # also the slot order inside one frame's condition group
TEXT_ENCODERS = ("bytes", "minilm")

_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(
        d_model=256,
        audio_channels=64,
        audio_frame_channels=128,
        audio_mel_layers=2,
        audio_frame_layers=3,
        pose_hidden=128,
        text_width=64,
        text_layers=1,
        text_heads=4,
        text_max_bytes=64,
    ),
    "small": dict(
        d_model=512,
        audio_channels=128,
        audio_frame_channels=256,
        audio_mel_layers=3,
        audio_frame_layers=4,
        pose_hidden=256,
        text_width=128,
        text_layers=2,
        text_heads=4,
        text_max_bytes=96,
    ),
    # Qwen2.5-3B width; the paper's audio encoder gives about one token per frame.
    "paper": dict(
        d_model=2048,
        audio_channels=256,
        audio_frame_channels=512,
        audio_mel_layers=4,
        audio_frame_layers=6,
        pose_hidden=512,
        text_width=256,
        text_layers=4,
        text_heads=8,
        text_max_bytes=128,
    ),
}


@register_config
@dataclass
class ConditionConfig(ComponentConfig):
    """Condition tokens per video frame: ``[audio x streams][pose][text][action]`` for enabled modalities.

    Every frame gets the same number of tokens (``tokens_per_frame``); an absent modality uses learned null
    tokens. ``*_dropout`` is the per-sample probability of replacing a modality by its null tokens in
    training.
    """

    kind: ClassVar[str] = "conditions"
    _presets: ClassVar[dict[str, dict[str, Any]]] = _PRESETS

    d_model: int = 256
    fps: int = 25
    modalities: tuple[str, ...] = ("audio", "pose", "text")
    # audio: log-mel -> causal conv stack at mel rate -> 4:1 merge -> causal conv stack at frame rate
    n_mels: int = 80
    audio_streams: int = 1  # 2 = duplex (self, partner), tokens concatenated per frame
    audio_tokens: int = 1  # tokens per frame and stream
    lookahead_frames: int = 2
    audio_channels: int = 64
    audio_frame_channels: int = 128
    audio_mel_layers: int = 2
    audio_frame_layers: int = 3
    audio_kernel: int = 3
    # pose: yaw/pitch/roll + K keypoints -> MLP
    pose_tokens: int = 1
    pose_hidden: int = 128
    # also read each frame's change of pose since the frame before (what a delta target moves by); the
    # branch starts at zero, so a model trained without it loads into one with it unchanged
    pose_delta: bool = False
    # text: sentence encoder ("bytes": trainable byte-level transformer; "minilm": frozen, English only)
    text_encoder: str = "bytes"
    text_tokens: int = 1
    text_width: int = 64
    text_layers: int = 1
    text_heads: int = 4
    text_max_bytes: int = 64
    # action (world models): discrete id -> embedding
    num_actions: int = 0
    action_tokens: int = 1
    # condition dropout (training only)
    audio_dropout: float = 0.1
    pose_dropout: float = 0.5
    text_dropout: float = 0.3
    action_dropout: float = 0.1

    @property
    def samples_per_frame(self) -> int:
        return SAMPLE_RATE // self.fps

    @property
    def mel_frames_per_frame(self) -> int:
        return self.samples_per_frame // HOP_LENGTH

    def modality_tokens(self, modality: str) -> int:
        """Tokens per frame of one enabled modality (audio counts all streams)."""
        counts = {
            "audio": self.audio_streams * self.audio_tokens,
            "pose": self.pose_tokens,
            "text": self.text_tokens,
            "action": self.action_tokens,
        }
        return counts[modality]

    @property
    def tokens_per_frame(self) -> int:
        """Condition tokens per video frame, the same whichever modalities are present."""
        return sum(self.modality_tokens(m) for m in self.modalities)

    def validate(self) -> None:
        if self.fps <= 0:
            raise ValueError(f"fps must be positive, got {self.fps}")
        # audio is cut per frame: only an audio model needs whole mel hops per frame (any fps without audio)
        if "audio" in self.modalities and (SAMPLE_RATE % self.fps or (SAMPLE_RATE // self.fps) % HOP_LENGTH):
            raise ValueError(f"fps={self.fps}: {SAMPLE_RATE} / fps must be a whole multiple of {HOP_LENGTH}")
        unknown = [m for m in self.modalities if m not in MODALITIES]
        if unknown or len(set(self.modalities)) != len(self.modalities) or not self.modalities:
            raise ValueError(f"modalities={self.modalities}: need distinct names from {MODALITIES}")
        if list(self.modalities) != sorted(self.modalities, key=MODALITIES.index):
            raise ValueError(f"modalities={self.modalities} must follow the order {MODALITIES}")
        if self.audio_streams not in (1, 2):
            raise ValueError(f"audio_streams must be 1 or 2, got {self.audio_streams}")
        if self.lookahead_frames < 0:
            raise ValueError(f"lookahead_frames must be >= 0, got {self.lookahead_frames}")
        if self.text_encoder not in TEXT_ENCODERS:
            raise ValueError(f"text_encoder must be one of {TEXT_ENCODERS}, got {self.text_encoder!r}")
        if self.text_width % self.text_heads:
            raise ValueError(
                f"text_width={self.text_width} must be divisible by text_heads={self.text_heads}"
            )
        if "action" in self.modalities and self.num_actions < 1:
            raise ValueError(f"the action modality needs num_actions >= 1, got {self.num_actions}")
        if self.audio_kernel < 1:
            raise ValueError(f"audio_kernel must be >= 1, got {self.audio_kernel}")
        positive = [
            "d_model",
            "n_mels",
            "audio_tokens",
            "audio_channels",
            "audio_frame_channels",
            "pose_tokens",
            "pose_hidden",
            "text_tokens",
            "text_width",
            "text_layers",
            "text_max_bytes",
            "action_tokens",
        ]
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.audio_mel_layers < 0 or self.audio_frame_layers < 0:
            raise ValueError(
                f"audio_mel_layers={self.audio_mel_layers} and audio_frame_layers={self.audio_frame_layers} "
                "must be >= 0"
            )
        for name in ("audio_dropout", "pose_dropout", "text_dropout", "action_dropout"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
