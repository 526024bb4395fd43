"""Footage of one synthetic person for `avatarlm train character`: talking clips of one identity (a
held-out one by default, never trained on), each with its own sentences, written as mp4 with sound.

    python benchmarks/avatar_footage.py --out footage/ --videos 5 --seconds 15
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from avatarlm.data.clip import ClipSpec, make_clip
from avatarlm.data.splits import split_identities
from avatarlm.media import write_mp4


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--videos", type=int, default=5)
    p.add_argument("--seconds", type=float, default=15.0)
    p.add_argument(
        "--identity", type=int, default=split_identities("test", 3)[2], help="default: 18 (test split)"
    )
    p.add_argument("--language", default="en")
    args = p.parse_args()
    for i in range(args.videos):
        spec = ClipSpec(key="c", seed=500 + i, kind="monologue", language=args.language, identity_seed=args.identity,
                        partner_identity_seed=args.identity + 1, duration=args.seconds, height=256, width=256)  # fmt: skip
        clip = make_clip(spec)
        frames = np.pad(clip.frames, ((0, 0), (32, 32), (32, 32), (0, 0)), mode="edge")  # a 320x320 frame
        path = write_mp4(Path(args.out) / f"avatar_{i}.mp4", frames, 25.0, audio=clip.audio[0])
        print(f"wrote {path} (identity {args.identity}, {len(frames) / 25:.1f} s)")


if __name__ == "__main__":
    main()
