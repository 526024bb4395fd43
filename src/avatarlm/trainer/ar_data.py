"""Training windows for the AR model: cached latents + the clip's audio, pose and text (or, for world
rollouts, the action taken before each frame), cut together.

A window of ``F`` frames is the reference frame f_0 followed by ``F - 1`` consecutive clip frames
``s .. s + F - 2`` (f_1 .. f_{F-1}); cond(j) belongs to clip frame ``s + j - 1``. The reference is the frame
just before the window (``s - 1``, the start of a session) with probability ``contiguous_reference``, else a
frame from elsewhere in the clip (what a rolling window keeps: an identity anchor from another time; see
DESIGN.md). The audio starts ``audio_history_frames`` frames before the frame preceding f_1, so the causal
audio encoder sees real context as it would in a running session, and runs ``audio_lookahead_frames``
past the last frame, so the last frames hear their look-ahead as a running session does (not silence);
outside the clip it is silence.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from avatarlm.autoencoder.latent_cache import load_latents
from avatarlm.autoencoder.tokens import grid_to_tokens
from avatarlm.conditions.projector import ConditionBatch
from avatarlm.data.face import FACE_STATE_FIELDS, POSE_FIELDS
from avatarlm.data.instructions import INSTRUCTIONS
from avatarlm.data.shards import Sample, iter_samples, read_index

INSTRUCTION_TEXT = {name: text for text, name in INSTRUCTIONS.items()}
AUDIO_STREAMS = ("self", "partner")


@dataclass
class ARClip:
    """Everything AR training needs of one clip, in memory."""

    key: str
    latents: np.ndarray  # (N, T, C) float32 tokens, normalised
    audio: np.ndarray  # (2, samples) float32 at 16 kHz: self, partner
    pose: np.ndarray  # (N, 3) yaw/pitch/roll in degrees
    keypoints: np.ndarray  # (N, K, 2) in [0, 1]
    texts: list[str | None]  # the instruction active at each frame
    truth: dict[str, np.ndarray] = field(default_factory=dict)  # all per-frame ground truth arrays
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n_frames(self) -> int:
        return len(self.latents)


def frame_texts(instructions: np.ndarray, names: Sequence[str]) -> list[str | None]:
    """(N, I) 0/1 matrix of active instructions -> the text of the first active one per frame, or None."""
    texts: list[str | None] = []
    for row in np.asarray(instructions):
        active = np.flatnonzero(row)
        texts.append(INSTRUCTION_TEXT[names[active[0]]] if len(active) else None)
    return texts


def clip_from_sample(sample: Sample, tokens: np.ndarray | None = None) -> ARClip:
    """An :class:`ARClip` of a dataset sample; ``tokens`` (N, T, C) are its latents (empty when None).
    A world rollout (no face truth: frames and per-frame ``action``/``player``/``reward``) gets no audio,
    zero pose, no keypoints and no texts; its actions stay in ``truth``."""
    t = sample.truth
    world = "face" not in t and "action" in t
    n = len(t["action"] if world else t["face"] if "face" in t else t["pose"])
    if tokens is not None and len(tokens) != n:
        raise ValueError(f"clip {sample.key}: {n} truth frames but {len(tokens)} latent frames")
    latents = np.zeros((n, 0, 0), np.float32) if tokens is None else np.ascontiguousarray(tokens, np.float32)
    if world:
        return ARClip(
            key=sample.key,
            latents=latents,
            audio=np.zeros((len(AUDIO_STREAMS), 0), np.float32),
            pose=np.zeros((n, len(POSE_FIELDS)), np.float32),
            keypoints=np.zeros((n, 0, 2), np.float32),
            texts=[None] * n,
            truth=dict(t),
            meta={k: sample.meta[k] for k in ("env", "action_names") if k in sample.meta},
        )
    yaw = [FACE_STATE_FIELDS.index(f) for f in POSE_FIELDS]
    pose = t["face"][:, yaw] if "face" in t else t["pose"]  # real video (`data ingest`) has pose only
    return ARClip(
        key=sample.key,
        latents=latents,
        audio=np.stack([sample.audio[s] for s in AUDIO_STREAMS]).astype(np.float32),
        pose=pose.astype(np.float32),
        keypoints=t["keypoints"].astype(np.float32),
        texts=frame_texts(t["instructions"], sample.meta["instruction_names"]),
        truth=dict(t),
        meta={k: sample.meta[k] for k in ("spec", "voices") if k in sample.meta},
    )


def load_ar_clips(data: str | os.PathLike[str], tag: str, split: str, progress: bool = True) -> list[ARClip]:
    """The clips of ``split`` with their cached latents (``avatarlm ae encode --tag TAG``)."""
    data = Path(data)
    latents = load_latents(data, tag, split)
    index = read_index(data)
    total = sum(len(s["samples"]) for s in index["shards"] if s["split"] == split)
    if total == 0:
        raise ValueError(f"split {split!r} of {data} has no clips")
    clips = []
    for sample in tqdm(iter_samples(data, split, frames=False), total=total, desc=f"load {split} clips",
                       disable=not progress):  # fmt: skip
        if sample.key not in latents:
            raise ValueError(f"clip {sample.key} has no cached latents under tag {tag!r}; rerun `ae encode`")
        tokens = grid_to_tokens(latents[sample.key])
        assert isinstance(tokens, np.ndarray)
        clips.append(clip_from_sample(sample, tokens))
    return clips


@dataclass(frozen=True)
class Window:
    clip: int  # index into the sampler's clips
    start: int  # clip frame of f_1
    reference: int  # clip frame used as f_0


@dataclass
class WindowBatch:
    """A training batch: latents (B, F, T, C) with f_0 first, and the conditions cond(1 .. F-1)."""

    latents: torch.Tensor
    conditions: ConditionBatch
    windows: list[Window]
    face: torch.Tensor | None = None  # (B, F-1, P) face state of f_1 .. f_{F-1} (the sampler's face_fields)


class WindowSampler:
    """Draws windows (uniform over every valid start of every clip) and assembles them into batches.

    ``clip_weights`` (one per clip given, >= 0) scale how likely each clip's windows are, e.g. to give
    dialogue clips a set share of the windows; by default every valid window is equally likely.
    """

    def __init__(
        self,
        clips: Sequence[ARClip],
        frames: int,
        audio_streams: int = 1,
        samples_per_frame: int = 640,
        audio_history_frames: int = 0,
        contiguous_reference: float = 0.5,
        modalities: Sequence[str] = ("audio", "pose", "text"),
        audio_lookahead_frames: int = 0,
        face_fields: Sequence[str] = (),
        clip_weights: Sequence[float] | None = None,
    ) -> None:
        if frames < 2:
            raise ValueError(f"a window needs at least 2 frames (reference + 1), got {frames}")
        if audio_streams not in (1, 2):
            raise ValueError(f"audio_streams must be 1 or 2, got {audio_streams}")
        if not 0.0 <= contiguous_reference <= 1.0:
            raise ValueError(f"contiguous_reference must be in [0, 1], got {contiguous_reference}")
        if audio_history_frames < 0:
            raise ValueError(f"audio_history_frames must be >= 0, got {audio_history_frames}")
        if audio_lookahead_frames < 0:
            raise ValueError(f"audio_lookahead_frames must be >= 0, got {audio_lookahead_frames}")
        unknown = [f for f in face_fields if f not in FACE_STATE_FIELDS]
        if unknown:
            raise ValueError(f"unknown face fields {unknown}; known: {FACE_STATE_FIELDS}")
        weights = np.ones(len(clips)) if clip_weights is None else np.asarray(clip_weights, np.float64)
        if weights.shape != (len(clips),) or not np.all(weights >= 0):
            raise ValueError(f"clip_weights must be {len(clips)} values >= 0, got shape {weights.shape}")
        keep = [i for i, c in enumerate(clips) if c.n_frames >= frames]
        self.clips = [clips[i] for i in keep]
        if not self.clips:
            raise ValueError(f"no clip has the {frames} frames a window needs ({len(clips)} clips given)")
        self.frames = frames
        self.audio_streams = audio_streams
        self.spf = samples_per_frame
        self.history = audio_history_frames
        self.lookahead = audio_lookahead_frames
        self.face_columns = [FACE_STATE_FIELDS.index(f) for f in face_fields]
        if "action" in modalities and any("action" not in c.truth for c in self.clips):
            raise ValueError("the action modality needs the clips' per-frame actions (truth['action'])")
        if self.face_columns and any("face" not in c.truth for c in self.clips):
            raise ValueError("face_fields need the clips' per-frame face state (truth['face'])")
        self.contiguous_reference = contiguous_reference
        self.modalities = tuple(modalities)
        starts = np.array([c.n_frames - frames + 2 for c in self.clips], dtype=np.float64)  # s in 1..N-F+1
        starts *= weights[keep]
        if starts.sum() <= 0:
            raise ValueError("every clip long enough for a window has weight 0")
        self._p = starts / starts.sum()

    def draw(self, rng: np.random.Generator, batch: int) -> list[Window]:
        """``batch`` random windows; the same rng state always gives the same windows."""
        out = []
        span = self.frames - 1
        for c in rng.choice(len(self.clips), size=batch, p=self._p):
            n = self.clips[c].n_frames
            start = int(rng.integers(1, n - span + 1))
            if rng.random() < self.contiguous_reference:
                ref = start - 1
            else:  # any frame outside the window
                ref = int(rng.integers(n - span))
                ref = ref if ref < start else ref + span
            out.append(Window(int(c), start, ref))
        return out

    def collate(self, windows: Sequence[Window], device: torch.device | str = "cpu") -> WindowBatch:
        span = self.frames - 1
        lat, parts, face = [], [], []
        for w in windows:
            c = self.clips[w.clip]
            lat.append(
                np.concatenate(
                    [c.latents[w.reference : w.reference + 1], c.latents[w.start : w.start + span]]
                )
            )
            parts.append(
                window_conditions(
                    c, w.start, span, self.history, self.audio_streams, self.spf, self.lookahead, w.reference
                )
            )
            if self.face_columns:
                face.append(c.truth["face"][w.start : w.start + span, self.face_columns].astype(np.float32))
        cond = stack_conditions(parts, self.modalities, self.history, device)
        faces = torch.from_numpy(np.stack(face)).to(device) if face else None
        return WindowBatch(torch.from_numpy(np.stack(lat)).to(device), cond, list(windows), faces)


def window_conditions(
    clip: ARClip,
    start: int,
    count: int,
    history: int = 0,
    audio_streams: int = 1,
    spf: int = 640,
    lookahead: int = 0,
    previous: int | None = None,
) -> dict[str, Any]:
    """The conditions of clip frames ``start .. start + count - 1``: pose, keypoints, texts, the action
    ids taken before them (when the clip has them), and audio (S, (history + count + lookahead) * spf) from
    ``history`` frames before frame ``start - 1``: the last ``lookahead`` frames of it are the look-ahead of
    the last frames; silence outside the clip; and the pose and keypoints of frame ``previous`` (default
    ``start - 1``; a window's f_0, which a delta target counts the first frame's change from), for a pose
    encoder with ``pose_delta``."""
    n = (history + count + lookahead) * spf
    begin = (start - 1 - history) * spf
    audio = np.zeros((audio_streams, n), dtype=np.float32)
    lo, hi = max(begin, 0), min(begin + n, clip.audio.shape[1])
    if hi > lo:
        audio[:, lo - begin : hi - begin] = clip.audio[:audio_streams, lo:hi]
    sl = slice(start, start + count)
    parts = {"audio": audio, "pose": clip.pose[sl], "keypoints": clip.keypoints[sl], "text": clip.texts[sl]}
    before = max(start - 1, 0) if previous is None else previous
    parts["pose_previous"], parts["keypoints_previous"] = clip.pose[before], clip.keypoints[before]
    if "action" in clip.truth:
        parts["action"] = clip.truth["action"][sl]
    return parts


def stack_conditions(
    parts: Sequence[dict[str, Any]],
    modalities: Sequence[str],
    history: int,
    device: torch.device | str = "cpu",
) -> ConditionBatch:
    """One ConditionBatch of the enabled ``modalities`` from :func:`window_conditions` dicts."""
    cond = ConditionBatch(batch_size=len(parts), num_frames=len(parts[0]["pose"]))
    if "audio" in modalities:
        cond.audio = torch.from_numpy(np.stack([p["audio"] for p in parts])).to(device)
        cond.audio_history_frames = history
    if "pose" in modalities:
        cond.pose = torch.from_numpy(np.stack([p["pose"] for p in parts])).to(device)
        cond.keypoints = torch.from_numpy(np.stack([p["keypoints"] for p in parts])).to(device)
        cond.pose_previous = torch.from_numpy(np.stack([p["pose_previous"] for p in parts])).to(device)
        cond.keypoints_previous = torch.from_numpy(np.stack([p["keypoints_previous"] for p in parts])).to(
            device
        )
    if "text" in modalities:
        cond.text = [p["text"] for p in parts]
    if "action" in modalities:
        cond.action = torch.from_numpy(np.stack([p["action"] for p in parts]).astype(np.int64)).to(device)
    return cond
