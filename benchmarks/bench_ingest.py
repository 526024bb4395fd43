"""`avatarlm data ingest` checked where the truth is known, and timed.

Talking avatars of held-out identities are rendered at 256x256, placed at a random offset in a larger frame,
written as mp4 with their speech, and ingested; the pose, mouth and keypoints read off the video are compared
with what the renderer drew. Real media (the astronaut photograph panned and zoomed as a moving shot, Grace
Hopper's portrait; the alsa-utils speech recordings, or espeak where they are missing) are ingested with the
lip filter off, to show the face is found and framed on real pixels. Prints a table; writes a contact sheet.

    python benchmarks/bench_ingest.py --clips 8 --sheet docs/ingest_crops.png
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from avatarlm.data.clip import ClipSpec, make_clip
from avatarlm.data.face import FACE_STATE_FIELDS
from avatarlm.data.ingest import IngestConfig, ingest
from avatarlm.data.ingest_quality import QualityConfig
from avatarlm.data.render_sheet import contact_sheet
from avatarlm.data.shards import iter_samples
from avatarlm.data.splits import split_identities
from avatarlm.media import write_mp4, write_png
from photo_footage import moving_shot, speech

FPS = 25.0


def synthetic_videos(folder: Path, clips: int, seconds: float) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    truth = {}
    for i, identity in enumerate(split_identities("test", clips)):
        spec = ClipSpec(key="b", seed=100 + i, kind="monologue", language="en", identity_seed=identity,
                        partner_identity_seed=identity + 1, duration=seconds, height=256, width=256)  # fmt: skip
        clip = make_clip(spec)
        top, left = (int(v) for v in rng.integers(0, 96, size=2))
        frames = np.pad(clip.frames, ((0, 0), (top, 96 - top), (left, 160 - left), (0, 0)), mode="edge")
        write_mp4(folder / f"avatar{i}.mp4", frames, FPS, audio=clip.audio[0])
        truth[f"avatar{i}"] = (clip.truth.face, clip.truth.keypoints * 256 + np.array([left, top]))
    return truth


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clips", type=int, default=8)
    p.add_argument("--seconds", type=float, default=6.0)
    p.add_argument("--sheet", default=None, help="write a PNG of ingested crops")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        truth = synthetic_videos(folder, args.clips, args.seconds)
        seconds = sum(len(f) for f, _ in truth.values()) / FPS
        t0 = time.perf_counter()
        ingest(
            [str(folder / f"{k}.mp4") for k in truth], IngestConfig(out=str(folder / "ds")), progress=False
        )
        wall = time.perf_counter() - t0
        audio, source = speech()
        n = int(len(audio) / 16_000 * FPS)
        pan = moving_shot(n)
        write_mp4(folder / "astronaut_pan.mp4", pan, FPS, audio=audio)
        import matplotlib.cbook

        hopper = np.asarray(Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg")).convert("RGB"))
        write_mp4(folder / "grace_hopper.mp4", [hopper[:, :510]] * n, FPS, audio=audio)
        real_cfg = IngestConfig(out=str(folder / "real"), quality=QualityConfig(min_lip_sync=-2.0))
        report = ingest(
            [str(folder / "astronaut_pan.mp4"), str(folder / "grace_hopper.mp4")], real_cfg, progress=False
        )

        rows, crops = [], []
        mouth = FACE_STATE_FIELDS.index("mouth_open")
        for s in iter_samples(folder / "ds"):
            face, kp_px = truth[s.key.split("-")[0]]
            box = s.truth["crop_box"]
            expected = (kp_px - box[:, None, :2]) / box[:, None, 2:3]
            pose = s.truth["pose"]
            r = [np.corrcoef(face[:, i], pose[:, i])[0, 1] for i in range(3)]
            mae = [np.abs(face[:, i] - pose[:, i]).mean() for i in range(3)]
            rows.append([*r, *mae, np.corrcoef(face[:, mouth], s.truth["lip_gap"])[0, 1],
                         np.abs(s.truth["keypoints"] - expected).mean(), s.meta["quality"]["lip_sync"]])  # fmt: skip
            crops.append(s.frames[len(s.frames) // 2])
        dropped = args.clips - len(rows)
        m = np.mean(rows, axis=0)
        print(f"synthetic: {len(rows)} of {args.clips} talking avatars kept ({dropped} left out), "
              f"{seconds:.0f} s of video ingested in {wall:.1f} s ({seconds / wall:.2f}x real time, 2 cores)")  # fmt: skip
        print("| measure (mean over clips) | yaw | pitch | roll |")
        print("|---|---|---|---|")
        print(f"| correlation with the renderer's angle | {m[0]:.3f} | {m[1]:.3f} | {m[2]:.3f} |")
        print(f"| mean absolute error, degrees | {m[3]:.2f} | {m[4]:.2f} | {m[5]:.2f} |")
        print(f"lip gap vs rendered mouth opening: r {m[6]:.3f}; named keypoints: mean error {m[7]:.4f} of the "
              f"crop's side ({m[7] * 128:.2f} px at 128); lip-audio agreement {m[8]:.3f}")  # fmt: skip
        print(f"real media (speech: {source}):")
        for e in report["videos"].values():
            if e["status"] == "skipped":
                print(f"  {Path(e['file']).name}: skipped, {e['reason']}")
            for c in e.get("clips", []):
                print(
                    f"  {Path(e['file']).name}: {e['status']}, clip {c['start']:.1f}-{c['end']:.1f} s, quality {c['quality']}"
                )
        for s in iter_samples(folder / "real"):
            print(f"  {s.key}: yaw/pitch/roll median {[round(float(v), 1) for v in np.median(s.truth['pose'], axis=0)]}, "
                  f"crop side {np.median(s.truth['crop_box'][:, 2]):.0f} px")  # fmt: skip
            crops += [s.frames[0], s.frames[len(s.frames) // 2]]
        if args.sheet:
            write_png(args.sheet, contact_sheet(crops, columns=min(len(crops), 6)))
            print(f"wrote {args.sheet}")


if __name__ == "__main__":
    main()
