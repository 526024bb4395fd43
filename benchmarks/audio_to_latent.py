"""Can one map from sound to latent, learned on training faces, predict the latents of unseen faces?

The AR model has to learn "this sound -> this latent change" from a few hundred training identities and
apply it to faces it has never seen. This benchmark asks the same of the simplest possible learner, per
autoencoder's latent cache: ridge regressions to a frame's latent minus its clip's mean latent (the identity
removed), fitted on the training split, the strength chosen on the validation split, scored on the test
split (unseen identities, the held-out voice). Features (each also centred per clip):

- "face state": the renderer's true pose, gaze, blink, brows and expression strength (what the history of
  a talking face tells the AR model);
- "+ true mouth": those and the true mouth opening, width and rounding (what a perfect mouth would add);
- "+ audio": the face state and the log-mel features around frame t (video frames t-3..t+2, each the mean
  of its four 10 ms mel frames; the audio encoder looks 2 frames ahead) instead of the true mouth.

Printed: R^2 (variance-weighted over the latent's dimensions) on training / test faces, for the whole
latent and for the mouth channels alone where the autoencoder has them, and R^2 of the true mouth opening
from the audio features (the reference). A map that is the same for every face shows as a test R^2 close
to the training one; a map learned per face as a large gap.

    python benchmarks/audio_to_latent.py --data data/synth128 --tag tiny --tag mouth4b
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from avatarlm.autoencoder.latent_cache import latent_path, shard_metadata
from avatarlm.conditions.mel import LogMel
from avatarlm.data.face import FACE_STATE_FIELDS
from avatarlm.data.shards import read_index
from avatarlm.trainer.ar_data import ARClip, load_ar_clips

MEL_PER_FRAME = 4  # 10 ms hops per 40 ms video frame (25 fps)
PAST, AHEAD = 3, 2  # video frames of context before and after frame t
STRENGTHS = (1e-1, 1.0, 10.0, 100.0, 1000.0)


def clip_features(clip: ARClip, logmel: LogMel) -> np.ndarray:
    """(N, (PAST + 1 + AHEAD) * n_mels) log-mel context of every frame of the clip's own audio."""
    with torch.no_grad():
        mel = logmel(torch.from_numpy(clip.audio[0])).numpy()
    n = clip.n_frames
    per_frame = np.zeros((n, mel.shape[1]), np.float32)
    usable = min(n, len(mel) // MEL_PER_FRAME)
    per_frame[:usable] = mel[: usable * MEL_PER_FRAME].reshape(usable, MEL_PER_FRAME, -1).mean(1)
    padded = np.pad(per_frame, ((PAST, AHEAD), (0, 0)), mode="edge")
    return np.concatenate([padded[i : i + n] for i in range(PAST + 1 + AHEAD)], axis=1)


MOUTH_FIELDS = ("mouth_open", "mouth_width", "mouth_round")
STATE_FIELDS = tuple(f for f in FACE_STATE_FIELDS if f not in MOUTH_FIELDS and f != "expression")


def split_arrays(clips: list[ARClip], mouth_channels: int) -> dict[str, np.ndarray]:
    """Features and targets of every frame of ``clips``, each centred on its clip's mean."""
    logmel = LogMel()
    cols: dict[str, list[np.ndarray]] = {k: [] for k in ("audio", "state", "mouth_state", "latent", "mouth")}

    def centred(a: np.ndarray) -> np.ndarray:
        return (a - a.mean(0, keepdims=True)).reshape(len(a), -1).astype(np.float32)

    for clip in clips:
        face = clip.truth["face"].astype(np.float32)
        cols["audio"].append(centred(clip_features(clip, logmel)))
        cols["state"].append(centred(face[:, [FACE_STATE_FIELDS.index(f) for f in STATE_FIELDS]]))
        cols["mouth_state"].append(centred(face[:, [FACE_STATE_FIELDS.index(f) for f in MOUTH_FIELDS]]))
        cols["latent"].append(centred(clip.latents))  # (N, T, C): the identity removed
        cols["mouth"].append(centred(clip.latents[:, :, :mouth_channels]))
    out = {k: np.concatenate(v) for k, v in cols.items()}
    out["opening"] = out["mouth_state"][:, :1]
    return out


def fit_ridge(x: np.ndarray, y: np.ndarray, strength: float) -> np.ndarray:
    xb = np.concatenate([x, np.ones((len(x), 1), x.dtype)], axis=1).astype(np.float64)
    gram = xb.T @ xb
    gram[:-1, :-1] += strength * np.eye(x.shape[1])  # the bias is not penalised
    return np.linalg.solve(gram, xb.T @ y.astype(np.float64))


def r2(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    pred = np.concatenate([x, np.ones((len(x), 1), x.dtype)], axis=1) @ w
    return float(1.0 - ((y - pred) ** 2).sum() / ((y - y.mean(0)) ** 2).sum())


FEATURES = {
    "pose etc.": ("state",),
    "+ true mouth": ("state", "mouth_state"),
    "+ audio": ("state", "audio"),
}


def score(train: dict, val: dict, test: dict, features: tuple[str, ...], target: str) -> tuple[float, float]:
    """(train R^2, test R^2) of ``target`` from ``features`` at the strength best on the validation split."""

    def x(arrays: dict) -> np.ndarray:
        return np.concatenate([arrays[f] for f in features], axis=1)

    def fit(s: float) -> np.ndarray:
        return fit_ridge(x(train), train[target], s)

    best = max(STRENGTHS, key=lambda s: r2(x(val), val[target], fit(s)))
    w = fit(best)
    return r2(x(train), train[target], w), r2(x(test), test[target], w)


def mouth_channels_of(data: str, tag: str) -> int:
    """The mouth channels of the autoencoder that wrote the cache (its config is in the metadata)."""
    meta = shard_metadata(latent_path(data, tag, read_index(data)["shards"][0]["path"]))
    return int(json.loads(meta.get("autoencoder", "{}")).get("mouth_channels", 0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="data/synth128")
    parser.add_argument("--tag", action="append", required=True, help="latent cache tag (repeatable)")
    args = parser.parse_args()
    rows = []
    for tag in args.tag:
        k = mouth_channels_of(args.data, tag)
        arrays = {s: split_arrays(load_ar_clips(args.data, tag, s, progress=False), max(k, 1))
                  for s in ("train", "val", "test")}  # fmt: skip
        row: dict = {"tag": tag, "mouth_channels": k}
        for target in ("latent", "mouth", "opening"):
            if (target == "mouth" and k == 0) or (target == "opening" and rows):
                continue
            for name, features in FEATURES.items():
                if target == "opening" and name != "+ audio":
                    continue
                feats = ("audio",) if target == "opening" else features
                row[f"{target}: {name}"] = score(
                    arrays["train"], arrays["val"], arrays["test"], feats, target
                )
        rows.append(row)
        print(json.dumps(row), flush=True)
    print("\nR^2 on training faces / unseen test faces (per-clip means removed)\n")
    names = [f"{t}: {n}" for t in ("latent", "mouth") for n in FEATURES]
    print("| latents | " + " | ".join(names) + " |")
    print("|---" * (len(names) + 1) + "|")
    for row in rows:
        cells = ["{:.3f} / {:.3f}".format(*row[n]) if n in row else "—" for n in names]
        print(f"| {row['tag']} | " + " | ".join(cells) + " |")
    print("\ntrue mouth opening from audio alone: {:.3f} / {:.3f}".format(*rows[0]["opening: + audio"]))


if __name__ == "__main__":
    main()
