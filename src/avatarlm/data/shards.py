"""The on-disk dataset format: webdataset-style tar shards plus a JSON index.

A dataset folder holds `index.json` and `<split>/shard-NNNNN.tar`, each shard with a sidecar
`shard-NNNNN.json` listing its samples. A sample is a group of tar members sharing the key prefix:

    <key>.json         metadata (clip spec, voices, texts, timed phonemes, instruction spans, field names)
    <key>.frames.npz   uint8 frames (T, H, W, 3), lossless (zlib)
    <key>.<name>.wav   16 kHz mono PCM-16 audio per stream ("self", "partner")
    <key>.truth.npz    per-frame ground truth arrays (face controls, keypoints, speaking flags, instructions)

Shards are written to a temporary name and renamed when complete, and the sidecar is written after the
rename, so a shard with a sidecar is always whole: an interrupted run leaves no half shard behind as done.
Real-video ingestion writes the same format (with its own metadata and whichever truth arrays it has).
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

INDEX_NAME = "index.json"
FORMAT_NAME = "avatarlm-shards"
FORMAT_VERSION = 1


@dataclass
class Sample:
    key: str
    meta: dict[str, Any]
    frames: np.ndarray
    audio: dict[str, np.ndarray]  # stream name -> float32 mono
    truth: dict[str, np.ndarray] = field(default_factory=dict)
    sample_rate: int = 16_000


def _npz_bytes(**arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, allow_pickle=False, **arrays)
    return buf.getvalue()


def _wav_bytes(audio: np.ndarray, sample_rate: int) -> bytes:
    import soundfile as sf  # imported on use: readers of latents and truth need no audio library

    buf = io.BytesIO()
    sf.write(buf, np.asarray(audio, dtype=np.float32), sample_rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class ShardWriter:
    """Write samples into one shard; use as a context manager. On an exception nothing is left behind."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.tmp = self.path.with_name(self.path.name + ".tmp")
        self.entries: list[dict[str, Any]] = []
        self._tar: tarfile.TarFile | None = None

    def __enter__(self) -> ShardWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tar = tarfile.open(self.tmp, "w")
        return self

    def _add(self, name: str, data: bytes) -> None:
        assert self._tar is not None, "ShardWriter must be used as a context manager"
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mtime = 0  # deterministic bytes for the same content
        self._tar.addfile(info, io.BytesIO(data))

    def write(self, sample: Sample, summary: dict[str, Any] | None = None) -> None:
        if "." in sample.key or "/" in sample.key:
            raise ValueError(f"sample key {sample.key!r} must not contain '.' or '/'")
        self._add(f"{sample.key}.json", json.dumps(sample.meta, ensure_ascii=False).encode())
        self._add(f"{sample.key}.frames.npz", _npz_bytes(frames=sample.frames))
        for name, audio in sample.audio.items():
            self._add(f"{sample.key}.{name}.wav", _wav_bytes(audio, sample.sample_rate))
        if sample.truth:
            self._add(f"{sample.key}.truth.npz", _npz_bytes(**sample.truth))
        self.entries.append({"key": sample.key, "n_frames": int(len(sample.frames)), **(summary or {})})

    def __exit__(self, exc_type, exc, tb) -> None:
        assert self._tar is not None
        self._tar.close()
        if exc_type is not None:
            self.tmp.unlink(missing_ok=True)
            return
        os.replace(self.tmp, self.path)
        atomic_write_bytes(sidecar_path(self.path), json.dumps({"samples": self.entries}, indent=1).encode())


def sidecar_path(shard: Path) -> Path:
    return shard.with_suffix(".json")


def read_shard(path: str | Path, frames: bool = True) -> Iterator[Sample]:
    """Samples of one shard, in order; ``frames=False`` skips decoding the frames (an empty array instead),
    for readers that need only audio, metadata and ground truth."""
    members: dict[str, dict[str, bytes]] = {}
    order: list[str] = []
    with tarfile.open(path, "r") as tar:
        for m in tar:
            key, _, rest = m.name.partition(".")
            f = None if rest == "frames.npz" and not frames else tar.extractfile(m)
            if f is None:
                continue
            if key not in members:
                members[key] = {}
                order.append(key)
            members[key][rest] = f.read()
    import soundfile as sf

    for key in order:
        parts = members[key]
        audio, rate = {}, 16_000
        for rest, data in parts.items():
            if rest.endswith(".wav"):
                audio[rest[: -len(".wav")]], rate = sf.read(io.BytesIO(data), dtype="float32")
        truth = dict(np.load(io.BytesIO(parts["truth.npz"]))) if "truth.npz" in parts else {}
        pixels = (
            np.load(io.BytesIO(parts["frames.npz"]))["frames"] if frames else np.zeros((0, 0, 0, 3), np.uint8)
        )
        yield Sample(key, json.loads(parts["json"]), pixels, audio, truth, rate)


def shard_keys(shard: Path) -> list[str] | None:
    """The sample keys a complete shard holds, or None if the shard is missing or unfinished."""
    if not (shard.exists() and sidecar_path(shard).exists()):
        return None
    return [e["key"] for e in json.loads(sidecar_path(shard).read_text())["samples"]]


def write_index(root: str | Path, config: dict[str, Any], shard_paths: list[str]) -> dict[str, Any]:
    """Collect the sidecars of the given shards (paths relative to `root`, each `<split>/<name>.tar`) into
    `index.json`, atomically."""
    root = Path(root)
    shards = []
    for rel in shard_paths:
        tar = root / rel
        if shard_keys(tar) is None:
            raise ValueError(f"shard {tar} is incomplete; cannot index it")
        side = json.loads(sidecar_path(tar).read_text())
        shards.append({"path": rel, "split": tar.parent.name, **side})
    index = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "config": config, "shards": shards}
    atomic_write_bytes(root / INDEX_NAME, json.dumps(index, indent=1, ensure_ascii=False).encode())
    return index


def read_index(root: str | Path) -> dict[str, Any]:
    path = Path(root) / INDEX_NAME
    if not path.exists():
        raise FileNotFoundError(f"{root} is not an avatarlm dataset: {INDEX_NAME} is missing")
    index = json.loads(path.read_text())
    if index.get("format") != FORMAT_NAME:
        raise ValueError(f"{path} is not an avatarlm shard index (format {index.get('format')!r})")
    return index


def iter_samples(root: str | Path, split: str | None = None, frames: bool = True) -> Iterator[Sample]:
    """Every sample of the dataset (optionally one split), shard by shard (see :func:`read_shard`)."""
    root = Path(root)
    for shard in read_index(root)["shards"]:
        if split is None or shard["split"] == split:
            yield from read_shard(root / shard["path"], frames=frames)
