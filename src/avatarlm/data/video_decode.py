"""Reading real video files with PyAV for ingestion: frames on a fixed clock, audio at 16 kHz mono, cuts.

Frames are resampled to the dataset's rate by time: output frame k (time k / fps from the first frame) is
the source frame on screen at that time. Ingestion reads a file twice (tracking, then cropping) instead of
holding a long video's frames in memory; both passes see the same frames.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

SAMPLE_RATE = 16_000


@dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    duration: float  # seconds, as the container says (0 if unknown)
    has_audio: bool


def _open(path: str | Path):
    try:
        return av.open(str(path))
    except (av.error.FFmpegError, UnicodeDecodeError, OSError) as e:
        raise ValueError(f"cannot open as a video ({type(e).__name__}: {e})") from None


def probe(path: str | Path) -> VideoInfo:
    """Size, duration and whether there is sound; ValueError if the file holds no video stream."""
    with _open(path) as box:
        if not box.streams.video:
            raise ValueError("no video stream")
        v = box.streams.video[0]
        duration = float(box.duration / av.time_base) if box.duration else 0.0
        return VideoInfo(int(v.codec_context.width), int(v.codec_context.height), duration,
                         bool(box.streams.audio))  # fmt: skip


def _scaled(image: np.ndarray, max_side: int | None) -> np.ndarray:
    import cv2

    h, w = image.shape[:2]
    if max_side is None or max(h, w) <= max_side:
        return image
    s = max_side / max(h, w)
    return cv2.resize(image, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)


def iter_frames(path: str | Path, fps: float, max_side: int | None = None) -> Iterator[np.ndarray]:
    """RGB uint8 frames at ``fps``, each the source frame on screen at its time; scaled down so that the
    longer side is at most ``max_side``. ValueError if decoding fails part-way (a corrupt file)."""
    with _open(path) as box:
        if not box.streams.video:
            raise ValueError("no video stream")
        stream = box.streams.video[0]
        stream.thread_type = "AUTO"
        k, start, t, previous = 0, 0.0, 0.0, None
        try:
            for n, frame in enumerate(box.decode(stream)):
                t = frame.time if frame.time is not None else n / fps
                if previous is None:
                    start = t
                else:
                    while k / fps < t - start - 1e-6:
                        yield previous
                        k += 1
                previous = _scaled(frame.to_ndarray(format="rgb24"), max_side)
        except av.error.FFmpegError as e:
            raise ValueError(f"the video stream is corrupt after {k / fps:.2f} s ({e})") from None
        rate = float(stream.average_rate or stream.guessed_rate or fps)
        end = t - start + 1.0 / rate  # the last frame stays on screen for one source frame's time
        while previous is not None and k / fps < end - 1e-6:
            yield previous
            k += 1


def read_audio(path: str | Path) -> tuple[np.ndarray, float]:
    """(16 kHz mono float32, its start minus the first video frame's, in seconds); ValueError when there is no
    sound track or it cannot be decoded."""
    with _open(path) as box:
        if not box.streams.audio:
            raise ValueError("no audio track")
        video_start = 0.0
        if box.streams.video and box.streams.video[0].start_time is not None:
            v = box.streams.video[0]
            video_start = float(v.start_time * v.time_base)
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        parts, audio_start = [], None
        try:
            for frame in box.decode(box.streams.audio[0]):
                if audio_start is None:
                    audio_start = frame.time if frame.time is not None else video_start
                parts += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
            parts += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
        except av.error.FFmpegError as e:
            raise ValueError(f"the audio track is corrupt ({e})") from None
    if not parts:
        raise ValueError("the audio track is empty")
    audio = np.clip(np.concatenate(parts).astype(np.float32), -1.0, 1.0)
    return audio, float((audio_start or 0.0) - video_start)


def align_audio(audio: np.ndarray, offset: float, n_samples: int) -> np.ndarray:
    """The audio on the video's clock: ``n_samples`` from the first video frame (silence where it has none)."""
    shift = int(round(offset * SAMPLE_RATE))
    out = np.zeros(n_samples, np.float32)
    src = audio[max(0, -shift) :]
    dst = max(0, shift)
    n = max(0, min(len(src), n_samples - dst))
    out[dst : dst + n] = src[:n]
    return out


def colour_histogram(image: np.ndarray, bins: int = 4) -> np.ndarray:
    """A normalised RGB histogram (bins**3) of a frame, the shot detector's fingerprint."""
    q = (np.asarray(image[::4, ::4], np.uint16) * bins) // 256
    codes = (q[..., 0] * bins + q[..., 1]) * bins + q[..., 2]
    h = np.bincount(codes.reshape(-1), minlength=bins**3).astype(np.float64)
    return h / max(h.sum(), 1.0)


def is_cut(previous: np.ndarray | None, current: np.ndarray, threshold: float) -> bool:
    """A shot cut between two frames' histograms: half their L1 distance (0 same, 1 disjoint) > threshold."""
    return previous is not None and 0.5 * float(np.abs(previous - current).sum()) > threshold
