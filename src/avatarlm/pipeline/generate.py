"""`avatarlm generate`: a speech file (or text spoken by the built-in voices) and a face in, an mp4 out.

The audio is fed to a :class:`~avatarlm.pipeline.session.StreamingSession` in 20 ms pieces, as a live
microphone would feed it, and the frames go straight into the mp4 writer; the latency summary comes from
the session's own per-frame timings.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from math import gcd
from pathlib import Path
from typing import Any

import numpy as np
import torch

from avatarlm.autoencoder.model import DCAutoencoder
from avatarlm.pipeline.folder import Pipeline
from avatarlm.pipeline.session import SAMPLE_RATE, SessionConfig, StreamingSession

CHUNK = 320  # 20 ms at 16 kHz


def load_audio(path: str | os.PathLike[str]) -> np.ndarray:
    """Mono float32 at 16 kHz from any file soundfile reads (wav, flac, ogg...); other rates are resampled."""
    import soundfile as sf
    from scipy.signal import resample_poly

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such audio file")
    try:
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:  # soundfile raises its own error types for unreadable files
        raise ValueError(f"{path}: cannot read audio ({e})") from None
    mono = audio.mean(axis=1)
    if rate != SAMPLE_RATE:
        g = gcd(int(rate), SAMPLE_RATE)
        mono = resample_poly(mono, SAMPLE_RATE // g, int(rate) // g).astype(np.float32)
    if len(mono) < SAMPLE_RATE // 25:
        raise ValueError(f"{path}: the audio is shorter than one video frame (40 ms)")
    return np.clip(mono, -1.0, 1.0)


def speak_text(text: str, language: str) -> np.ndarray:
    """16 kHz speech of ``text`` by the espeak-ng voice of ``language``."""
    from avatarlm.data.speech.languages import get_language
    from avatarlm.data.speech.voices import Voice, speak

    if not text.strip():
        raise ValueError("--text is empty")
    get_language(language)
    return speak(Voice("espeak", language, "m3"), text).audio.astype(np.float32)  # a training voice


def load_image(path: str | os.PathLike[str], height: int, width: int) -> np.ndarray:
    """An image file as uint8 (height, width, 3): centre-cropped to the aspect ratio, then resized."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such image file")
    try:
        image = Image.open(path).convert("RGB")
    except (UnidentifiedImageError, OSError) as e:
        raise ValueError(f"{path}: cannot read image ({e})") from None
    return fit_image(image, height, width)


def fit_image(image: Any, height: int, width: int) -> np.ndarray:
    """A PIL RGB image as uint8 (height, width, 3): centre-cropped to the aspect ratio, then resized."""
    from PIL import Image

    w, h = image.size
    scale = min(w / width, h / height)
    cw, ch = int(width * scale), int(height * scale)
    left, top = (w - cw) // 2, (h - ch) // 2
    image = image.crop((left, top, left + cw, top + ch)).resize((width, height), Image.Resampling.LANCZOS)
    return np.array(image, dtype=np.uint8)  # a writable copy


def check_mp4_path(out: str) -> None:
    if not str(out).endswith(".mp4"):
        raise ValueError(f"--out must name an .mp4 file, got {out}")


def face_reference(
    pipe: Pipeline, image: str | None, identity: int | None
) -> tuple[np.ndarray | None, int | None]:
    """The session's face from the command line: ``--image`` (read at the pipeline's size) or a synthetic
    ``--identity`` (0 when neither is given). Returns (image or None, identity seed or None)."""
    if image is None:
        return None, identity or 0
    c = pipe.autoencoder.config
    return load_image(image, c.image_height, c.image_width), None


# Autoencoder reconstruction PSNR below which a reference image is called far from the training renders. The
# bundled tiny AE gives renders >= 20.7 dB (median 25.4, 60 random poses), real photos 17.5-20.8 dB: only
# clearly foreign images are caught; the warning is a hint, not a guarantee.
FAR_FROM_TRAINING_DB = 19.5


def reference_psnr(ae: DCAutoencoder, image: np.ndarray) -> float:
    """PSNR (dB) of the autoencoder's reconstruction of ``image``: how well the model knows this kind of face."""
    from avatarlm.eval.ae_quality import reconstruct_clip
    from avatarlm.eval.image_metrics import psnr

    with torch.no_grad():
        rec = reconstruct_clip(ae.eval(), np.ascontiguousarray(image)[None].copy(), streaming=False)[0]
    return float(psnr(rec, image))


def domain_warning(ae: DCAutoencoder, image: np.ndarray) -> str | None:
    """A warning line when ``image`` looks far from what the model was trained on, else None."""
    db = reference_psnr(ae, image)
    if db >= FAR_FROM_TRAINING_DB:
        return None
    return (
        f"warning: the autoencoder reconstructs this reference at only {db:.1f} dB (training renders: ~25 dB); "
        "it is far from what the model was trained on, expect a blurred likeness"
    )


def parse_instructions(spec: str) -> list[tuple[float, float, str]]:
    """``"2.0-3.5:smile,5-6:look left"`` -> [(2.0, 3.5, "smile"), (5.0, 6.0, "look left")]."""
    out = []
    for item in (part.strip() for part in spec.split(",")):
        times, _, text = item.partition(":")
        start, _, end = times.partition("-")
        try:
            span = (float(start), float(end))
        except ValueError:
            span = (-1.0, -1.0)
        if not text.strip() or not 0 <= span[0] < span[1] or not np.isfinite(span[1]):
            raise ValueError(f"--instructions takes START-END:TEXT items separated by commas, got {item!r}")
        out.append((span[0], span[1], text.strip()))
    return out


@dataclass
class GenerationReport:
    frames: int
    fps: int
    seconds: float  # wall time of the whole generation, writing the mp4 included
    compute_ms: tuple[float, float, float]  # p50, p95, p99 per frame

    @property
    def real_time_factor(self) -> float:
        return self.frames / self.fps / self.seconds if self.seconds else 0.0

    def summary(self) -> str:
        p50, p95, p99 = self.compute_ms
        return (
            f"{self.frames} frames in {self.seconds:.1f} s (real-time factor {self.real_time_factor:.2f}); "
            f"compute per frame p50 {p50:.1f} ms, p95 {p95:.1f} ms, p99 {p99:.1f} ms"
        )


def generate_video(
    pipe: Pipeline,
    audio: np.ndarray,
    out: str | os.PathLike[str],
    reference: np.ndarray | None = None,
    identity_seed: int | None = None,
    config: SessionConfig | None = None,
    partner: np.ndarray | None = None,
    instructions: list[tuple[float, float, str]] | None = None,
) -> GenerationReport:
    """Stream ``audio`` (16 kHz mono float) through a session and write the frames with the sound to ``out``
    (written under a temporary name and moved into place only when complete). With ``partner`` (a duplex
    model's other voice, 16 kHz) both streams go in side by side and the mp4 is stereo: avatar left, partner
    right. ``instructions`` are timed (start s, end s, text) spans."""
    from avatarlm.media import write_mp4

    session = StreamingSession(pipe, reference=reference, identity_seed=identity_seed, config=config)
    for begin, end, text in instructions or []:
        session.push_text(text, span=(begin, end))
    start = time.perf_counter()

    length = max(len(audio), 0 if partner is None else len(partner))

    def frames():
        for i in range(0, length, CHUNK):
            session.push_audio(audio[i : i + CHUNK])
            if partner is not None:
                session.push_partner_audio(partner[i : i + CHUNK])
            for _, frame in session.frames():
                yield frame
        session.flush()
        for _, frame in session.frames():
            yield frame

    spf = SAMPLE_RATE // session.fps
    n_frames = length // spf + 1
    sound = (
        audio if partner is None else np.stack([np.pad(a, (0, length - len(a))) for a in (audio, partner)])
    )
    write_mp4(Path(out), frames(), session.fps, sound[..., : (n_frames - 1) * spf])
    seconds = time.perf_counter() - start
    compute = np.asarray([t.compute for t in session.timings]) * 1000
    p = np.percentile(compute, [50, 95, 99]) if len(compute) else np.zeros(3)
    return GenerationReport(session.frames_out, session.fps, seconds, (float(p[0]), float(p[1]), float(p[2])))
