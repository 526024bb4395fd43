"""Frames per second of the portrait renderer on one core, at 128x128, 256x256 and 384 wide x 640 tall.

Run: python benchmarks/bench_render.py [--frames N]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from avatarlm.data.face import EXPRESSIONS, FaceState  # noqa: E402
from avatarlm.data.identity import Identity  # noqa: E402
from avatarlm.data.render import Renderer  # noqa: E402

SIZES: tuple[tuple[int, int], ...] = ((128, 128), (256, 256), (640, 384))


def random_states(n: int, seed: int = 0) -> list[FaceState]:
    rng = np.random.default_rng(seed)
    u = rng.uniform
    return [
        FaceState(
            yaw=u(-30, 30),
            pitch=u(-20, 20),
            roll=u(-20, 20),
            gaze_x=u(-1, 1),
            gaze_y=u(-1, 1),
            blink=u(0, 1),
            brow_raise=u(-1, 1),
            mouth_open=u(0, 1),
            mouth_width=u(-1, 1),
            mouth_round=u(0, 1),
            expression=int(rng.integers(len(EXPRESSIONS))),
            expression_strength=u(0, 1),
        )
        for _ in range(n)
    ]


def frames_per_second(height: int, width: int, states: list[FaceState], identities: int = 8) -> float:
    renderers = [Renderer(Identity.from_seed(s), height, width) for s in range(identities)]
    for r in renderers:  # warm up
        r.render(states[0])
    start = time.perf_counter()
    for i, state in enumerate(states):
        renderers[i % identities].render(state)
    return len(states) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=1000)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    states = random_states(args.frames)
    for height, width in SIZES:
        fps = frames_per_second(height, width, states)
        print(f"render {width}x{height} (w x h): {fps:7.1f} frames/s on one thread")


if __name__ == "__main__":
    main()
