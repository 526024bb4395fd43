"""`avatarlm data ingest`: real talking videos in, dataset shards out, in the synthetic world's format.

For each video: decode it with PyAV (frames on the dataset's clock, sound at 16 kHz mono); split it at shot
cuts; track the face with the MediaPipe face mesh (:mod:`avatarlm.data.face_tracker`), splitting again where
the tracked face jumps to another person; cut the runs of frames with a face into clips of ``min_seconds``
.. ``max_seconds``; crop each clip around the face as the synthetic world frames its faces
(:mod:`avatarlm.data.ingest_crop`); read the pose (head rotation and the world's named keypoints) off the mesh; transcribe English speech with PocketSphinx; and keep the clips that
pass the quality filters (:mod:`avatarlm.data.ingest_quality`). A video's kept clips go into one shard,
``<split>/video-<hash>.tar``; the split is drawn from the file's hash (80/10/10) unless one is given.

A file that cannot be read, is corrupt or truncated, has no sound, is silent or shows no face is skipped
with its reason in ``ingest_report.json``; nothing half-written is left. The report is rewritten after every
video, so a rerun skips the videos it already has (by content hash) and resumes with the next.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from avatarlm.data import face_landmarks as fl
from avatarlm.data import ingest_crop, video_decode
from avatarlm.data.face import POSE_FIELDS
from avatarlm.data.ingest_quality import (
    QualityConfig,
    frame_loudness,
    measure,
    rejection,
    rms_db,
    speaking_flags,
)
from avatarlm.data.instructions import INSTRUCTION_NAMES
from avatarlm.data.render import KEYPOINT_NAMES
from avatarlm.data.shards import Sample, ShardWriter, shard_keys, write_index
from avatarlm.data.splits import SPLITS, bucket_split
from avatarlm.io import atomic_write_json, read_json

REPORT_NAME = "ingest_report.json"
FORMAT_VERSION = 1
JUMP = 0.5  # a face moving more than half its length in one frame is another face


@dataclass
class IngestConfig:
    out: str
    size: int = 128
    fps: float = 25.0
    split: str = "auto"  # "auto": drawn from the file's hash; or one of SPLITS for every video
    language: str = "en"  # of the speech; transcripts for English only (PocketSphinx)
    min_seconds: float = 2.0
    max_seconds: float = 14.0
    cut_threshold: float = 0.4  # histogram distance between frames that makes a shot cut
    track_side: int = 640  # frames are tracked at most this large (landmarks are resolution-free)
    smooth_s: float = 0.5
    quality: QualityConfig = field(default_factory=QualityConfig)

    def validate(self) -> None:
        if not 32 <= self.size <= 1024 or self.size % 8:
            raise ValueError(f"--size must be a multiple of 8 from 32 to 1024, got {self.size}")
        if not 1 <= self.fps <= 60:
            raise ValueError(f"--fps must be in [1, 60], got {self.fps}")
        if self.split != "auto" and self.split not in SPLITS:
            raise ValueError(f"--split must be auto or one of {', '.join(SPLITS)}, got {self.split!r}")
        if not 0.2 <= self.min_seconds <= self.max_seconds:
            raise ValueError("--min-seconds must be at least 0.2 and at most --max-seconds")
        self.quality.validate()


def file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def hash_split(sha: str) -> str:
    return bucket_split(int(sha[:8], 16) % 10)


def face_runs(found: np.ndarray, cuts: np.ndarray, min_len: int, max_len: int) -> list[tuple[int, int]]:
    """[start, end) runs of frames with a face that cross no cut, at least ``min_len`` long, cut into equal
    parts of at most ``max_len``."""
    runs, start = [], None
    for k in range(len(found) + 1):
        ends = k == len(found) or not found[k] or (cuts[k] and start is not None)
        if start is not None and ends:
            runs.append((start, k))
            start = None
        if k < len(found) and found[k] and start is None:
            start = k
    out = []
    for a, b in runs:
        if b - a < min_len:
            continue
        parts = -(-(b - a) // max_len)
        edges = np.linspace(a, b, parts + 1).round().astype(int)
        out += [(int(edges[i]), int(edges[i + 1])) for i in range(parts)]
    return out


def face_jumps(points: np.ndarray, limit: float = JUMP) -> np.ndarray:
    """(N,) flags: the tracked face moved more than ``limit`` of its own length since the frame before —
    the tracker went over to another person (two people in view), which must not be one clip."""
    p = np.asarray(points, np.float64)
    eyes = 0.5 * (p[:, fl.EYE_OUTER[0], :2] + p[:, fl.EYE_OUTER[1], :2])
    length = ingest_crop.face_length(p)
    out, last = np.zeros(len(p), bool), None  # compared with the last frame that had a face
    for k in np.flatnonzero(np.isfinite(eyes[:, 0]) & (length > 0)):
        out[k] = last is not None and np.linalg.norm(eyes[k] - eyes[last]) > limit * length[k]
        last = k
    return out


def track_video(path: Path, cfg: IngestConfig, tracker, bar: tqdm) -> tuple[np.ndarray, np.ndarray]:
    """First pass: (N, 468, 3) normalised mesh per frame (NaN where no face) and (N,) shot-cut flags."""
    meshes: list[np.ndarray] = []
    cuts: list[bool] = []
    previous = None
    for image in video_decode.iter_frames(path, cfg.fps, cfg.track_side):
        hist = video_decode.colour_histogram(image)
        cut = video_decode.is_cut(previous, hist, cfg.cut_threshold)
        previous = hist
        mesh = tracker.track(image, reset=cut or not meshes)
        meshes.append(np.full((fl.POINTS, 3), np.nan, np.float32) if mesh is None else mesh)
        cuts.append(cut)
        bar.update(1)
    if not meshes:
        raise ValueError("the video has no frames")
    return np.stack(meshes), np.array(cuts, bool)


def crop_clips(path: Path, runs: list[tuple[int, int]], boxes: list[np.ndarray], size: int, fps: float):
    """Second pass: the crops of every run, as (len, size, size, 3) uint8 arrays."""
    crops: list[list[np.ndarray]] = [[] for _ in runs]
    last = max(b for _, b in runs)
    for k, image in enumerate(video_decode.iter_frames(path, fps)):
        for i, (a, b) in enumerate(runs):
            if a <= k < b:
                crops[i].append(ingest_crop.crop(image, boxes[i][k - a], size))
        if k + 1 >= last:
            break
    return [np.stack(c) for c in crops]


@functools.cache
def _recogniser():
    """One PocketSphinx decoder for the whole run (loading its models takes ~0.3 s; clips are many)."""
    from avatarlm.apps.asr import PocketSphinxTranscriber

    return PocketSphinxTranscriber()


def transcript(audio: np.ndarray, language: str) -> list[dict[str, Any]]:
    if language != "en" or not np.any(audio):
        return []
    words = _recogniser().words(audio)
    if not words:
        return []
    text = " ".join(w for w, _, _ in words)
    timed = [[w, round(a, 3), round(b, 3)] for w, a, b in words]
    return [
        {"start": timed[0][1], "end": timed[-1][2], "text": text, "engine": "pocketsphinx", "words": timed}
    ]


def make_sample(key: str, crops: np.ndarray, mesh_px: np.ndarray, box: np.ndarray, audio: np.ndarray,
                cfg: IngestConfig, source: dict[str, Any], quality: dict[str, float]) -> Sample:  # fmt: skip
    n = len(crops)
    loud = frame_loudness(audio, n, cfg.fps)
    truth = {
        "pose": fl.head_rotation(mesh_px),
        "keypoints": ingest_crop.in_crop(fl.named_keypoints(mesh_px), box),
        "speaking": speaking_flags(loud),
        "listening": np.zeros(n, np.uint8),
        "instructions": np.zeros((n, len(INSTRUCTION_NAMES)), np.uint8),
        "lip_gap": fl.lip_gap(mesh_px),
        "crop_box": box.astype(np.float32),
    }
    meta = {
        "format_version": FORMAT_VERSION,
        "kind": "monologue",
        "language": cfg.language,
        "n_frames": n,
        "fps": cfg.fps,
        "duration": round(n / cfg.fps, 3),
        "source": source,
        "quality": quality,
        "pose_fields": list(POSE_FIELDS),
        "keypoint_names": list(KEYPOINT_NAMES),
        "instruction_names": list(INSTRUCTION_NAMES),
        "instructions": [],
        "utterances": [transcript(audio, cfg.language), []],
        "generator": "avatarlm ingest",
    }
    silence = np.zeros_like(audio)  # a monologue's partner stream is silence
    return Sample(key, meta, crops, {"self": audio, "partner": silence}, truth)


def ingest_video(
    path: Path, sha: str, cfg: IngestConfig, tracker, progress: bool = True
) -> tuple[list[Sample], list[dict[str, Any]]]:
    """The kept clips of one video and a report line per clip; ValueError (the reason) to skip the video."""
    info = video_decode.probe(path)
    audio, offset = video_decode.read_audio(path)
    whole_db = rms_db(audio)
    if whole_db < cfg.quality.min_audio_db:
        raise ValueError(f"silent ({whole_db:.1f} dB < {cfg.quality.min_audio_db} dB)")
    total = int(info.duration * cfg.fps) if info.duration else None
    with tqdm(total=total, desc=f"track {path.name}", unit="frame", leave=False, disable=not progress) as bar:
        meshes, cuts = track_video(path, cfg, tracker, bar)
    found = ~np.isnan(meshes[:, 0, 0])
    if not found.any():
        raise ValueError("no face found")
    px = fl.to_pixels(meshes, info.height, info.width)
    cuts |= face_jumps(px)
    min_len, max_len = int(round(cfg.min_seconds * cfg.fps)), int(round(cfg.max_seconds * cfg.fps))
    runs = face_runs(found, cuts, min_len, max_len)
    if not runs:
        raise ValueError(
            f"no shot shows a face for {cfg.min_seconds:g} s (a face in {found.mean():.0%} of frames)"
        )
    boxes = [ingest_crop.crop_boxes(px[a:b], cfg.fps, cfg.smooth_s) for a, b in runs]
    crops = crop_clips(path, runs, boxes, cfg.size, cfg.fps)
    per_frame = video_decode.SAMPLE_RATE / cfg.fps
    on_clock = video_decode.align_audio(audio, offset, int(round(len(meshes) * per_frame)))
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", path.stem)[:40] or "video"
    samples, lines = [], []
    for i, ((a, b), box, clip) in enumerate(zip(runs, boxes, crops, strict=True)):
        clip_audio = on_clock[int(round(a * per_frame)) : int(round(b * per_frame))]
        q = measure(
            float(np.median(ingest_crop.face_length(px[a:b]))), clip, clip_audio, fl.lip_gap(px[a:b]), cfg.fps
        )
        key = f"{stem}-{sha[:10]}-{i:03d}"
        why = rejection(q, cfg.quality)
        lines.append({"key": key, "start": round(a / cfg.fps, 3), "end": round(b / cfg.fps, 3), "quality": q,
                      "kept": why is None, **({"reason": why} if why else {})})  # fmt: skip
        if why is None:
            source = {
                "file": path.name,
                "sha256": sha,
                "start": round(a / cfg.fps, 3),
                "end": round(b / cfg.fps, 3),
            }
            samples.append(make_sample(key, clip, px[a:b], box, clip_audio, cfg, source, q))
    return samples, lines


def _settings(cfg: IngestConfig) -> dict[str, Any]:
    d = asdict(cfg)
    d.pop("out")
    return d


def ingest(
    videos: list[str], cfg: IngestConfig, tracker_factory=None, progress: bool = True
) -> dict[str, Any]:
    """Ingest ``videos`` into ``cfg.out``; returns the report (also written to ``ingest_report.json``)."""
    from avatarlm.data.face_tracker import FaceTracker

    cfg.validate()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    report_path = out / REPORT_NAME
    report: dict[str, Any] = read_json(report_path) if report_path.exists() else {}
    if report and report.get("settings") != _settings(cfg):
        raise ValueError(f"{out} was ingested with other settings; use a new --out folder")
    report = {"settings": _settings(cfg), "videos": report.get("videos", {})}
    done = report["videos"]
    with (tracker_factory or FaceTracker)() as tracker:
        for name in tqdm(videos, desc="ingest", unit="video", disable=not progress):
            path = Path(name)
            if not path.is_file():
                done[str(path)] = {"file": str(path), "status": "skipped", "reason": "no such file"}
                continue
            sha = file_hash(path)
            if sha in done:
                continue
            split = hash_split(sha) if cfg.split == "auto" else cfg.split
            shard = f"{split}/video-{sha[:12]}.tar"
            entry: dict[str, Any] = {"file": str(path), "split": split}
            try:
                samples, lines = ingest_video(path, sha, cfg, tracker, progress)
                entry["clips"] = lines
                if samples:
                    with ShardWriter(out / shard) as w:
                        for s in samples:
                            w.write(
                                s,
                                {
                                    "kind": "monologue",
                                    "language": cfg.language,
                                    "duration": s.meta["duration"],
                                },
                            )
                    entry.update(status="ingested", shard=shard)
                else:
                    entry.update(status="skipped", reason="no clip passed the quality filters")
            except ValueError as e:
                entry.update(status="skipped", reason=str(e))
            done[sha] = entry
            atomic_write_json(report_path, report)
    shards = [
        e["shard"] for e in done.values() if e.get("shard") and shard_keys(out / e["shard"]) is not None
    ]
    index_config = {"source": "ingest", "height": cfg.size, "width": cfg.size, "fps": cfg.fps,
                    "languages": [cfg.language]}  # fmt: skip
    write_index(out, index_config, sorted(shards))
    atomic_write_json(report_path, report)
    return report
