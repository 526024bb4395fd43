"""Assemble one frame's condition group: a fixed number of tokens whatever modalities are present.

Position ``i`` of a :class:`ConditionBatch` holds the conditions of the i-th target frame (cond(i + 1) when
the batch starts right after the reference frame): its pose, the text active at it, the action taken before
it, and audio that starts at the timestamp of the frame before the first target (see ``audio.py``). Every
frame gets ``cfg.tokens_per_frame`` tokens in the slot order ``[audio][pose][text][action]`` (enabled
modalities only); an absent modality, or one dropped at random in training, uses learned null tokens, and
every slot gets its own learned slot embedding (modality type + token index + stream).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from avatarlm.conditions.action import ActionEncoder
from avatarlm.conditions.audio import AudioEncoder, AudioStreamState
from avatarlm.conditions.config import ConditionConfig
from avatarlm.conditions.pose import PoseEncoder
from avatarlm.conditions.text import TextEncoder


@dataclass
class ConditionBatch:
    """The available conditions of B clips over F frames; every field is optional.

    audio: (B, S, N) / (B * S, N) / (N,) samples at 16 kHz, S = cfg.audio_streams (0 = self, 1 = partner).
        Samples past the last frame are its look-ahead (used up to ``lookahead_frames``, silence beyond);
        give ``num_frames`` then, else F is read from N.
    audio_history_frames: H, the audio starts H frames (H * 640 samples) early; those frames only warm up the
        causal encoder and get no tokens (training windows cut from the middle of a clip use this so their
        first frames see real audio context, as in a running session).
    audio_tokens: (B, F, S * audio_tokens, d), already encoded, e.g. by :class:`AudioStreamState`.
    pose: (B, F, 3) yaw/pitch/roll in degrees, with keypoints: (B, F, K, 2) in [0, 1].
    pose_previous / keypoints_previous: (B, 3) / (B, K, 2), the pose of the frame before the first, read by
        an encoder with ``pose_delta`` (the change of the first frame); without them that change is zero.
    text: texts[b][f], the instruction or caption active at frame f, None or "" for none.
    action: (B, F) integer ids, -1 for none.
    num_frames / batch_size: needed only when they cannot be read from the fields.
    """

    audio: torch.Tensor | np.ndarray | None = None
    audio_history_frames: int = 0
    audio_tokens: torch.Tensor | None = None
    pose: torch.Tensor | None = None
    keypoints: torch.Tensor | None = None
    pose_previous: torch.Tensor | None = None
    keypoints_previous: torch.Tensor | None = None
    text: Sequence[Sequence[str | None]] | None = None
    action: torch.Tensor | None = None
    num_frames: int | None = None
    batch_size: int | None = None

    def modalities(self) -> list[str]:
        """Names of the modalities this batch carries."""
        have = {
            "audio": self.audio is not None or self.audio_tokens is not None,
            "pose": self.pose is not None or self.keypoints is not None,
            "text": self.text is not None,
            "action": self.action is not None,
        }
        return [m for m, v in have.items() if v]


class ConditionEncoder(nn.Module):
    """``forward(batch)`` -> (B, F, cfg.tokens_per_frame, d_model)."""

    def __init__(self, cfg: ConditionConfig) -> None:
        super().__init__()
        self.cfg = cfg
        builders = {"audio": AudioEncoder, "pose": PoseEncoder, "text": TextEncoder, "action": ActionEncoder}
        self.encoders = nn.ModuleDict({m: builders[m](cfg) for m in cfg.modalities})
        self.null_tokens = nn.ParameterDict(
            {m: nn.Parameter(0.02 * torch.randn(cfg.modality_tokens(m), cfg.d_model)) for m in cfg.modalities}
        )
        self.slot_embedding = nn.Parameter(0.02 * torch.randn(cfg.tokens_per_frame, cfg.d_model))
        self.slots: dict[str, slice] = {}
        start = 0
        for m in cfg.modalities:
            self.slots[m] = slice(start, start + cfg.modality_tokens(m))
            start += cfg.modality_tokens(m)

    @property
    def tokens_per_frame(self) -> int:
        return self.cfg.tokens_per_frame

    def audio_stream(self, batch_size: int = 1) -> AudioStreamState:
        """Streaming audio state whose tokens go into ``ConditionBatch.audio_tokens``."""
        if "audio" not in self.encoders:
            raise ValueError(f"audio is not an enabled modality (modalities={self.cfg.modalities})")
        encoder = self.encoders["audio"]
        assert isinstance(encoder, AudioEncoder)
        return encoder.stream(batch_size)

    def forward(self, batch: ConditionBatch, generator: torch.Generator | None = None) -> torch.Tensor:
        cfg = self.cfg
        extra = [m for m in batch.modalities() if m not in cfg.modalities]
        if extra:
            raise ValueError(f"batch carries modalities {extra} that are not enabled ({cfg.modalities})")
        b, f = self._batch_frames(batch)
        groups = []
        for m in cfg.modalities:
            null = self.null_tokens[m].expand(b, f, -1, -1)
            encoded = self._encode(m, batch, f)
            if encoded is None:
                groups.append(null)
                continue
            tokens, present = encoded
            if self.training and getattr(cfg, f"{m}_dropout") > 0:
                u = torch.rand(b, generator=generator, device=generator.device if generator else None)
                present = present & (u >= getattr(cfg, f"{m}_dropout")).to(present.device)[:, None]
            groups.append(torch.where(present[..., None, None], tokens, null))
        return torch.cat(groups, dim=2) + self.slot_embedding

    def _encode(self, m: str, batch: ConditionBatch, f: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        device = self.slot_embedding.device
        enc = self.encoders[m]
        if m == "audio":
            if batch.audio_tokens is not None:
                tokens = torch.as_tensor(batch.audio_tokens, device=device)
            elif batch.audio is not None:
                h = batch.audio_history_frames
                tokens = enc(batch.audio, num_frames=f + h)[:, h:]
            else:
                return None
            expected = (f, self.cfg.modality_tokens("audio"), self.cfg.d_model)
            if tuple(tokens.shape[1:]) != expected:
                raise ValueError(f"audio tokens of shape {tuple(tokens.shape)} do not match (B, *{expected})")
            return tokens, torch.ones(tokens.shape[:2], dtype=torch.bool, device=device)
        if m == "pose":
            if batch.pose is None or batch.keypoints is None:
                return None
            previous = None
            if batch.pose_previous is not None and batch.keypoints_previous is not None:
                previous = (batch.pose_previous, batch.keypoints_previous)
            tokens = enc(batch.pose, batch.keypoints, previous)
            return tokens, torch.ones(tokens.shape[:2], dtype=torch.bool, device=device)
        if m == "text":
            return None if batch.text is None else enc(batch.text)
        return None if batch.action is None else enc(batch.action)

    def _batch_frames(self, batch: ConditionBatch) -> tuple[int, int]:
        """(B, F) read from the fields; a disagreement is a ValueError naming the fields."""
        seen: dict[str, tuple[int | None, int | None]] = {}
        if batch.batch_size is not None or batch.num_frames is not None:
            seen["batch_size/num_frames"] = (batch.batch_size, batch.num_frames)
        for name in ("audio_tokens", "pose", "keypoints", "action"):
            value = getattr(batch, name)
            if value is not None:
                if value.ndim < 2:
                    raise ValueError(
                        f"{name} must have (batch, frames, ...) dimensions, got {tuple(value.shape)}"
                    )
                seen[name] = (int(value.shape[0]), int(value.shape[1]))
        if (
            batch.pose is not None
            and batch.keypoints is None
            or batch.pose is None
            and batch.keypoints is not None
        ):
            raise ValueError("pose and keypoints must be given together")
        if (batch.pose_previous is None) != (batch.keypoints_previous is None):
            raise ValueError("pose_previous and keypoints_previous must be given together")
        if batch.text is not None:
            seen["text"] = (len(batch.text), len(batch.text[0]) if len(batch.text) else 0)
        if batch.audio is not None and batch.audio_tokens is not None:
            raise ValueError("give either audio or audio_tokens, not both")
        if batch.audio is not None:
            audio = batch.audio
            s = self.cfg.audio_streams
            rows = 1 if audio.ndim == 1 else audio.shape[0] if audio.ndim == 3 else audio.shape[0] // s
            seen["audio"] = (int(rows), None)
        bs = {v[0] for v in seen.values() if v[0] is not None}
        fs = {v[1] for v in seen.values() if v[1] is not None}
        if batch.audio_history_frames < 0:
            raise ValueError(f"audio_history_frames must be >= 0, got {batch.audio_history_frames}")
        if batch.audio is not None and not fs:
            fs = {int(batch.audio.shape[-1]) // self.cfg.samples_per_frame - batch.audio_history_frames}
        if len(bs) != 1 or len(fs) != 1:
            raise ValueError(
                f"cannot read one (batch, frames) from the condition fields: {seen}; "
                "give batch_size and num_frames when no modality is present"
            )
        return bs.pop(), fs.pop()
