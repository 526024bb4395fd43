"""Random windows of consecutive frames from a dataset, for autoencoder training and evaluation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from avatarlm.data.shards import iter_samples, read_index


class FrameSampler:
    """Loads the frames of one split into memory (uint8) and draws (B, T, H, W, 3) batches of windows.

    `max_clips` bounds memory; clips shorter than the window are skipped. With `reference=True` each
    window comes after one more frame: a random frame of the same clip (what a reference-conditioned
    autoencoder's decoder reads), so batches are (B, 1 + T, H, W, 3).
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        window: int = 1,
        max_clips: int | None = None,
        show_progress: bool = False,
        reference: bool = False,
    ):
        if window < 1:
            raise ValueError(f"window must be at least 1 frame, got {window}")
        index = read_index(root)
        total = sum(len(s["samples"]) for s in index["shards"] if s["split"] == split)
        self.clips: list[np.ndarray] = []
        self.keys: list[str] = []
        for sample in tqdm(
            iter_samples(root, split), total=total, desc=f"load {split} frames", disable=not show_progress
        ):
            if len(sample.frames) >= window:
                self.clips.append(sample.frames)
                self.keys.append(sample.key)
            if max_clips is not None and len(self.clips) >= max_clips:
                break
        if not self.clips:
            raise ValueError(f"no clips of at least {window} frames in split {split!r} of {root}")
        self.window, self.reference = window, reference
        lengths = np.array([len(c) - window + 1 for c in self.clips], dtype=np.float64)
        self._p = lengths / lengths.sum()  # every window start equally likely

    @property
    def frame_shape(self) -> tuple[int, ...]:
        return tuple(self.clips[0].shape[1:])

    @property
    def n_frames(self) -> int:
        return sum(len(c) for c in self.clips)

    def __call__(self, rng: np.random.Generator, batch: int = 8) -> np.ndarray:
        first = int(self.reference)
        out = np.empty((batch, first + self.window, *self.frame_shape), dtype=np.uint8)
        for b, c in enumerate(rng.choice(len(self.clips), size=batch, p=self._p)):
            start = int(rng.integers(len(self.clips[c]) - self.window + 1))
            out[b, first:] = self.clips[c][start : start + self.window]
            if self.reference:
                out[b, 0] = self.clips[c][int(rng.integers(len(self.clips[c])))]
        return out
