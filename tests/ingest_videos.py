"""Videos for the ingestion tests, made at test time from media that ships on this machine (nothing here is
committed): real photographs (scikit-image's astronaut), real recorded speech (Debian alsa-utils' clips;
espeak sentences where they are missing), a talking synthetic avatar with its ground truth, and broken files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from avatarlm.data.clip import ClipSpec, make_clip
from avatarlm.data.speech.voices import Voice, speak
from avatarlm.media import write_mp4
from avatarlm.pipeline.generate import load_audio

ALSA_DIR = Path(os.environ.get("AVATARLM_TEST_ALSA_DIR", "/usr/share/sounds/alsa"))
FPS = 25.0
PAD = (16, 48)  # rows, columns of background around the synthetic face (it sits off the frame's centre)


def recorded_speech() -> tuple[np.ndarray, str]:
    """About 3 s of speech at 16 kHz: two alsa-utils clips (real recordings), else two espeak sentences."""
    paths = [ALSA_DIR / "Front_Center.wav", ALSA_DIR / "Rear_Right.wav"]
    if all(p.is_file() for p in paths):
        clips = [load_audio(p) for p in paths]
        source = "alsa-utils recordings"
    else:
        clips = [speak(Voice("espeak", "en", "m3"), t).audio for t in ("Front center.", "Rear right.")]
        source = "espeak"
    gap = np.zeros(4000, np.float32)
    return np.concatenate([clips[0], gap, clips[1], gap]), source


def astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut()


def synthetic_talking(identity: int, seconds: float, seed: int = 3):
    """A 256x256 talking avatar (English) and its clip (for the ground truth)."""
    spec = ClipSpec(key="t", seed=seed, kind="monologue", language="en", identity_seed=identity,
                    partner_identity_seed=identity + 1, duration=seconds, height=256, width=256)  # fmt: skip
    clip = make_clip(spec)
    frames = np.pad(clip.frames, ((0, 0), (PAD[0], PAD[0]), (PAD[1], PAD[1]), (0, 0)), mode="edge")
    return frames, clip


def make_videos(folder: Path) -> dict[str, Path]:
    """Every test video, by name."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {name: folder / f"{name}.mp4" for name in
           ("talking", "photo", "silent", "faceless", "mute", "corrupt", "truncated", "two_shots", "jump")}  # fmt: skip
    frames, clip = synthetic_talking(5, 5.0)
    write_mp4(out["talking"], frames, FPS, audio=clip.audio[0])
    np.savez(folder / "talking_truth.npz", face=clip.truth.face, keypoints=clip.truth.keypoints)
    speech, _ = recorded_speech()
    n = int(len(speech) / 16_000 * FPS)
    photo = astronaut()[:, :448]
    write_mp4(out["photo"], [photo] * n, FPS, audio=speech)
    write_mp4(out["silent"], [photo] * n, FPS, audio=np.zeros_like(speech))
    noise = np.random.default_rng(0).integers(0, 256, (240, 320, 3), np.uint8)
    write_mp4(out["faceless"], [noise] * n, FPS, audio=speech)
    write_mp4(out["mute"], [photo] * n, FPS)
    out["corrupt"].write_bytes(np.random.default_rng(1).integers(0, 256, 50_000, np.uint8).tobytes())
    data = out["talking"].read_bytes()
    out["truncated"].write_bytes(data[: len(data) // 2])
    # the camera leaps from one side of a wide frame to the other at frame 62 (same colours: no shot cut)
    half = len(frames) // 2
    wide = [np.pad(f, ((0, 0), (0, 352), (0, 0)), mode="edge") for f in frames[:half]]
    wide += [np.pad(f, ((0, 0), (352, 0), (0, 0)), mode="edge") for f in frames[half:]]
    write_mp4(out["jump"], wide, FPS, audio=clip.audio[0])
    second, clip2 = synthetic_talking(11, 3.0, seed=4)
    first = frames[: len(second)]
    audio = np.concatenate([clip.audio[0][: len(first) * 640], clip2.audio[0][: len(second) * 640]])
    write_mp4(out["two_shots"], np.concatenate([first, second]), FPS, audio=audio)
    return out
