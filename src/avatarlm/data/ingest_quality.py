"""Quality measures of an ingested clip and the filters on them: face size, sharpness, loudness, and whether
the lips follow the sound.

Lip-audio agreement is the best Pearson correlation, over lags of up to ``LAGS`` frames either way, between
how far the inner lips part (over the face's length) and the audio's loudness in the frame (dB). Real
speakers in view score well above zero; a dubbed or off-screen voice, a still photo, or a mouth the tracker
lost score near zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

SAMPLE_RATE = 16_000
LAGS = 2
SILENCE_DB = -60.0


@dataclass(frozen=True)
class QualityConfig:
    min_face_px: float = 64.0  # forehead-chin length in the source video
    min_sharpness: float = 15.0  # variance of the Laplacian of the grey crop at the dataset's size
    min_audio_db: float = -45.0  # RMS of the clip's audio, dB full scale
    min_lip_sync: float = 0.25  # lip-audio agreement; set below -1 to keep every clip

    def validate(self) -> None:
        for name in ("min_face_px", "min_sharpness", "min_audio_db", "min_lip_sync"):
            if not np.isfinite(getattr(self, name)):
                raise ValueError(f"{name} must be a finite number")


def rms_db(audio: np.ndarray, floor: float = 1e-6) -> float:
    """RMS of ``audio`` in dB full scale, the RMS floored at ``floor`` (empty audio reads the floor)."""
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) if len(audio) else 0.0
    return 20 * float(np.log10(max(rms, floor)))


def frame_loudness(audio: np.ndarray, n_frames: int, fps: float) -> np.ndarray:
    """(n_frames,) RMS of the audio under each video frame in dB full scale (floored at SILENCE_DB)."""
    per = SAMPLE_RATE / fps
    segments = (audio[int(round(k * per)) : int(round((k + 1) * per))] for k in range(n_frames))
    return np.array([rms_db(seg, 10 ** (SILENCE_DB / 20)) for seg in segments], np.float64)


def lip_sync(lip_gap: np.ndarray, loudness: np.ndarray, lags: int = LAGS) -> float:
    """Best correlation of lip opening with loudness within ``lags`` frames (0 when either is constant)."""
    best = -1.0
    n = min(len(lip_gap), len(loudness))
    for lag in range(-lags, lags + 1):
        a = lip_gap[max(0, lag) : n + min(0, lag)]
        b = loudness[max(0, -lag) : n - max(0, lag)]
        if len(a) < 3 or a.std() < 1e-9 or b.std() < 1e-9:
            best = max(best, 0.0)
            continue
        best = max(best, float(np.corrcoef(a, b)[0, 1]))
    return best


def lip_audio_agreement(lip_gap: np.ndarray, audio: np.ndarray, fps: float, lags: int = LAGS) -> float:
    """:func:`lip_sync` of a clip's lip gap (one value per frame) with its audio's per-frame loudness."""
    return lip_sync(lip_gap, frame_loudness(audio, len(lip_gap), fps), lags)


def sharpness(crops: np.ndarray) -> float:
    """Mean variance of the Laplacian of the grey crops (every 5th frame)."""
    import cv2

    grey = [cv2.cvtColor(c, cv2.COLOR_RGB2GRAY) for c in crops[::5]]
    return float(np.mean([cv2.Laplacian(g, cv2.CV_64F).var() for g in grey]))


def speaking_flags(loudness: np.ndarray, floor_db: float = 30.0) -> np.ndarray:
    """(N,) uint8: frames whose loudness is within ``floor_db`` of the clip's loud frames (95th percentile)
    and above -45 dB: a rough voice activity, enough for the speaking flag of the training data."""
    top = float(np.percentile(loudness, 95))
    return ((loudness > top - floor_db) & (loudness > -45.0)).astype(np.uint8)


def measure(
    face_px: float, crops: np.ndarray, audio: np.ndarray, lip_gap: np.ndarray, fps: float
) -> dict[str, float]:
    return {
        "face_px": round(float(face_px), 1),
        "sharpness": round(sharpness(crops), 2),
        "audio_db": round(rms_db(audio), 2),
        "lip_sync": round(lip_audio_agreement(lip_gap, audio, fps), 3),
    }


def rejection(q: dict[str, float], cfg: QualityConfig) -> str | None:
    """Why a clip with measures ``q`` is left out, or None to keep it."""
    checks: list[tuple[bool, Any]] = [
        (q["face_px"] < cfg.min_face_px, f"face too small ({q['face_px']:.0f} px < {cfg.min_face_px:.0f})"),
        (q["sharpness"] < cfg.min_sharpness, f"blurred ({q['sharpness']:.1f} < {cfg.min_sharpness})"),
        (q["audio_db"] < cfg.min_audio_db, f"silent ({q['audio_db']:.1f} dB < {cfg.min_audio_db} dB)"),
        (q["lip_sync"] < cfg.min_lip_sync,
         f"lips do not follow the sound (agreement {q['lip_sync']:.2f} < {cfg.min_lip_sync})"),
    ]  # fmt: skip
    return next((why for bad, why in checks if bad), None)
