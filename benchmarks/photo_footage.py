"""Footage made from real photographs and real recorded speech, for ingestion and character fine-tuning
where no real talking video ships: the astronaut photograph (scikit-image) as slow camera moves, with the
alsa-utils speech recordings (espeak sentences where they are missing). The lips do not move: ingest it with
the lip filter off (`--min-lip-sync -2`).

    python benchmarks/photo_footage.py --out footage/ --videos 3 --seconds 10
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from avatarlm.data.speech.voices import Voice, speak
from avatarlm.media import write_mp4
from avatarlm.pipeline.generate import load_audio

FPS = 25.0
ALSA = ("Front_Center", "Front_Left", "Rear_Right", "Side_Left", "Front_Right", "Rear_Left")


def speech(seconds: float | None = None) -> tuple[np.ndarray, str]:
    """16 kHz speech: the alsa-utils clips with short pauses, looped to ``seconds`` when given."""
    paths = [Path("/usr/share/sounds/alsa") / f"{n}.wav" for n in ALSA]
    parts, source = [], "alsa-utils recordings"
    if all(p.is_file() for p in paths):
        parts = [load_audio(p) for p in paths]
    else:
        parts, source = (
            [speak(Voice("espeak", "en", "m3"), n.replace("_", " ")).audio for n in ALSA],
            "espeak",
        )
    one = np.concatenate([x for p in parts for x in (p, np.zeros(3200, np.float32))])
    if seconds is not None:
        one = np.tile(one, int(np.ceil(seconds * 16_000 / len(one))))[: int(seconds * 16_000)]
    return one, source


def moving_shot(n: int, seed: int = 0) -> np.ndarray:
    """``n`` 384x384 frames of the astronaut photograph as a slow pan and zoom; ``seed`` picks the path
    (seed 0: the camera drifts 110 px right and zooms 1.25x)."""
    from skimage import data

    image = data.astronaut()
    rng = np.random.default_rng(seed)
    x0, y0, dx, dy, zoom = (
        (10, 0, 110, 30, 80)
        if seed == 0
        else (*rng.integers(0, 60, 2), *rng.integers(-40, 80, 2), rng.integers(-40, 80))
    )
    out = []
    for t in np.linspace(0.0, 1.0, n):
        size = int(400 - zoom * t)
        x = int(np.clip(x0 + dx * t, 0, 512 - size))
        y = int(np.clip(y0 + dy * t, 0, 512 - size))
        crop = Image.fromarray(image[y : y + size, x : x + size]).resize((384, 384), Image.Resampling.LANCZOS)
        out.append(np.asarray(crop))
    return np.stack(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--videos", type=int, default=3)
    p.add_argument("--seconds", type=float, default=10.0)
    args = p.parse_args()
    audio, source = speech(args.seconds)
    for i in range(args.videos):
        path = write_mp4(Path(args.out) / f"astronaut_{i}.mp4", moving_shot(int(args.seconds * FPS), seed=i), FPS,
                         audio=np.roll(audio, i * 8000))  # fmt: skip
        print(f"wrote {path} (speech: {source})")


if __name__ == "__main__":
    main()
