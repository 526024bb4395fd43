"""Speech for the conversation-loop tests (tests/apps): real recorded speech when the machine has it, espeak otherwise.

The Debian alsa-utils clips (/usr/share/sounds/alsa/*.wav, "Front Center", ...) are recorded speech at
48 kHz; they are resampled to 16 kHz. Without them (or with AVATARLM_TEST_ALSA_DIR pointing elsewhere)
the clips are espeak sentences from the project's own speech, so the tests always run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from avatarlm.apps.vad import SAMPLE_RATE, WINDOW
from avatarlm.data.speech.voices import Voice, speak
from avatarlm.pipeline.generate import load_audio

ALSA_DIR = Path(os.environ.get("AVATARLM_TEST_ALSA_DIR", "/usr/share/sounds/alsa"))
ALSA_SPEECH = ("Front_Center", "Front_Left", "Rear_Right", "Side_Left")  # Noise.wav is not speech
ESPEAK_LINES = ("Front center.", "Please turn left here.", "It is raining again.", "See you tomorrow.")
NOISE_FLOOR = 1e-3  # a quiet microphone's hiss, so the silences are not digital zeros


def alsa_clips() -> list[np.ndarray] | None:
    paths = [ALSA_DIR / f"{name}.wav" for name in ALSA_SPEECH]
    if not all(p.is_file() for p in paths):
        return None
    return [load_audio(path) for path in paths]


def espeak_clips() -> list[np.ndarray]:
    return [speak(Voice("espeak", "en", "m3"), line).audio for line in ESPEAK_LINES]


@dataclass
class Conversation:
    """Speech clips laid out with silences in between; ``spans`` are the clips' (start, end) in seconds."""

    audio: np.ndarray
    spans: list[tuple[float, float]]
    source: str


def lay_out(
    clips: list[np.ndarray], lead_s: float, gap_s: float, tail_s: float, seed: int = 0
) -> Conversation:
    parts, spans, at = [np.zeros(round(lead_s * SAMPLE_RATE), np.float32)], [], round(lead_s * SAMPLE_RATE)
    for i, clip in enumerate(clips):
        spans.append((at / SAMPLE_RATE, (at + len(clip)) / SAMPLE_RATE))
        at += len(clip)
        pause = round((gap_s if i < len(clips) - 1 else tail_s) * SAMPLE_RATE)
        parts += [clip, np.zeros(pause, np.float32)]
        at += pause
    audio = np.concatenate(parts)
    audio += np.random.default_rng(seed).normal(0.0, NOISE_FLOOR, len(audio)).astype(np.float32)
    return Conversation(audio, spans, "")


def envelope_segments(audio: np.ndarray, rel_db: float = -35.0, bridge_s: float = 0.15) -> list[list[float]]:
    """Where the 10 ms energy envelope is within `rel_db` of its peak: (start, end) seconds, gaps shorter
    than `bridge_s` bridged, blips under 50 ms dropped. The reference the VAD is compared with."""
    hop = SAMPLE_RATE // 100
    n = len(audio) // hop
    rms = np.sqrt((audio[: n * hop].reshape(n, hop).astype(np.float64) ** 2).mean(1))
    active = rms > rms.max() * 10 ** (rel_db / 20)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], active.astype(np.int8), [0]])))
    segments: list[list[float]] = []
    for start, end in zip(edges[::2] * hop / SAMPLE_RATE, edges[1::2] * hop / SAMPLE_RATE, strict=True):
        if segments and start - segments[-1][1] < bridge_s:
            segments[-1][1] = float(end)
        else:
            segments.append([float(start), float(end)])
    return [s for s in segments if s[1] - s[0] >= 0.05]


class LevelModel:
    """A stand-in model whose speech probability is the window's first sample: scripted probabilities."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, x: torch.Tensor, sr: int) -> torch.Tensor:
        assert x.shape == (WINDOW,) and sr == SAMPLE_RATE
        self.calls += 1
        return x[:1].reshape(1, 1)

    def reset_states(self) -> None:
        self.calls = 0


def scripted(probs: list[float]) -> np.ndarray:
    return np.repeat(np.asarray(probs, np.float32), WINDOW)
