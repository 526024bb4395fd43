"""Does an AR model's predicted latent change carry the head's turn? Read in latent space, without the probe.

A ridge regression from the true latent change (f_t - f_{t-1}, all tokens x channels) to the true change of
yaw / pitch / roll is fitted on training clips of a cached-latent dataset and checked on its test clips
(how well the autoencoder's latents hold each angle's motion). Then each model predicts every test frame's
change one step ahead from the true history (teacher-forced, with its conditions, mean of 4 draws), and the
same regression reads those predictions as pose changes: their correlation with the true change says how
much of each angle's motion the model draws, free of the pixel probe's noise. For scale, the last true change
carried on to the next frame (momentum, which the history shows) is read the same way. It also prints where the
regression looks for yaw and pitch (its weight per token of the 4x4 grid). With ``--hidden`` it also asks
what the backbone knows: ridge regressions from each model's teacher-forced hidden states (all tokens of the
frame) to the head's pose and to its change, fitted on training clips, read on the test clips. With
``--response`` it pushes each angle of the given pose up by 1 degree a frame from the middle of a window on
(the keypoints moved by their fitted change per degree) and reads how many degrees a frame the model's
predicted change follows (1: all of it; 0: the push is ignored), through the latent pattern of each angle's
change (``trainer/pose_loss.py``).

    python benchmarks/pose_latent_readout.py --data data/synth128_turns --tag ae \
        --model bundled=models/tiny --model delta=runs/dx_pdelta/pipeline [--hidden] [--response]
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np
import torch

from avatarlm.eval.audio_use import predicted_changes
from avatarlm.eval.eval_generate import window_hidden
from avatarlm.pipeline.folder import Pipeline, load_pipeline
from avatarlm.trainer.ar_data import ARClip, load_ar_clips
from avatarlm.trainer.pose_loss import pose_patterns

ANGLES = ("yaw", "pitch", "roll")


def changes(clips: list[ARClip]) -> tuple[np.ndarray, np.ndarray]:
    """(frames, T*C) latent changes and (frames, 3) pose changes of every clip, concatenated."""
    lat = [np.diff(c.latents.astype(np.float64), axis=0).reshape(c.n_frames - 1, -1) for c in clips]
    pose = [np.diff(c.pose.astype(np.float64), axis=0) for c in clips]
    return np.concatenate(lat), np.concatenate(pose)


@torch.no_grad()
def teacher_forced(
    pipe: Pipeline, clips: list[ARClip], draw: bool = True, window: int = 31
) -> tuple[np.ndarray | None, np.ndarray]:
    """The model's mean predicted change (frames, T*C) of every frame 1.. of every clip from the true
    history (with ``draw``, else None), and the hidden states (frames, T*D) it is drawn from."""
    drawn, states = [], []
    for clip in clips:
        latents = torch.from_numpy(clip.latents.astype(np.float32))
        for s in range(0, len(latents) - 1, window - 1):
            part = latents[s : min(s + window, len(latents))]
            hidden = window_hidden(pipe, part, clip, s)
            states.append(hidden.flatten(1).numpy())
            if draw:
                drawn.append(predicted_changes(pipe, part, hidden, draws=4).flatten(1).numpy())
    return (np.concatenate(drawn).astype(np.float64) if draw else None), np.concatenate(states).astype(
        np.float64
    )


def ridge(x: np.ndarray, y: np.ndarray, strength: float) -> np.ndarray:
    return np.linalg.solve(x.T @ x + strength * np.eye(x.shape[1]), x.T @ y)


def hidden_readout(
    pipe: Pipeline, train: list[ARClip], test: list[ARClip], h_test: np.ndarray
) -> dict[str, list[float]]:
    """r of the pose and of its change read from the hidden states ``h_test`` of the ``test`` clips by ridge
    regressions (standardised, strength 100) fitted on the ``train`` clips' hidden states."""
    h_train = teacher_forced(pipe, train, draw=False)[1]
    mean, std = h_train.mean(0), h_train.std(0) + 1e-6
    h_train, h_test = (h_train - mean) / std, (h_test - mean) / std
    out = {}
    for what, diff in (("pose", False), ("change", True)):
        y_train, y_test = (
            np.concatenate([(np.diff(c.pose, axis=0) if diff else c.pose[1:]).astype(np.float64) for c in cs])
            for cs in (train, test)
        )
        out[what] = correlations(h_test @ ridge(h_train, y_train, 100.0), y_test)
    return out


def read_turn(
    pipe: Pipeline, part: torch.Tensor, clip: ARClip, start: int, readout: np.ndarray
) -> np.ndarray:
    """The predicted change of every frame of the window ``part`` (from clip frame ``start``) in degrees."""
    return predicted_changes(pipe, part, window_hidden(pipe, part, clip, start)).flatten(1).numpy() @ readout


def push_readouts(train: list[ARClip]) -> tuple[np.ndarray, np.ndarray]:
    """What :func:`pose_response` reads with, fitted once on ``train``: latent change -> degrees (T*C, 3),
    through the pose patterns, and the keypoints' change per degree of each angle (3, K*2)."""
    readout = np.linalg.pinv(pose_patterns(train))
    pose = np.concatenate([np.diff(c.pose, axis=0) for c in train]).astype(np.float64)
    points = np.concatenate([np.diff(c.keypoints, axis=0).reshape(c.n_frames - 1, -1) for c in train])
    return readout, np.linalg.lstsq(pose, points.astype(np.float64), rcond=None)[0]


def pose_response(
    pipe: Pipeline, test: list[ARClip], readouts: tuple[np.ndarray, np.ndarray], window: int = 31
) -> list[float]:
    """Degrees a frame the predicted change follows when each angle's given pose turns 1 degree a frame more
    from a window's middle on (keypoints moved along), read with :func:`push_readouts`."""
    readout, per_degree = readouts
    middle, total, count = window // 3, np.zeros(3), 0
    for clip in test:
        latents = torch.from_numpy(clip.latents.astype(np.float32))
        for s in range(0, len(latents) - window, 80):
            part = latents[s : s + window]  # predicts frames s + 1 .. s + window - 1
            base = read_turn(pipe, part, clip, s, readout)
            ramp = np.maximum(np.arange(clip.n_frames) - (s + middle), 0.0)  # frames s + middle + 1 ..
            for a in range(3):
                pose_a, points_a = clip.pose.astype(np.float64), clip.keypoints.astype(np.float64)
                pose_a[:, a] += ramp
                points_a += (ramp[:, None] * per_degree[a]).reshape(points_a.shape)
                moved = dataclasses.replace(
                    clip, pose=pose_a.astype(np.float32), keypoints=points_a.astype(np.float32)
                )
                pushed = read_turn(pipe, part, moved, s, readout)
                total[a] += float((pushed - base)[middle:, a].mean())  # the frames whose pose turns more
            count += 1
    return list(total / max(count, 1))


def correlations(a: np.ndarray, b: np.ndarray) -> list[float]:
    return [float(np.corrcoef(a[:, i], b[:, i])[0, 1]) for i in range(a.shape[1])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="dataset folder with cached latents")
    parser.add_argument("--tag", required=True, help="latent set (the autoencoder the models work in)")
    parser.add_argument("--model", action="append", default=[], metavar="NAME=PIPELINE")
    parser.add_argument("--train-clips", type=int, default=120)
    parser.add_argument("--test-clips", type=int, default=8)
    parser.add_argument("--ridge", type=float, default=10.0)
    parser.add_argument("--hidden", action="store_true", help="also read the pose from the hidden states")
    parser.add_argument("--hidden-clips", type=int, default=40, help="training clips for --hidden")
    parser.add_argument(
        "--response", action="store_true", help="also push each angle of the pose and read the turn"
    )
    args = parser.parse_args()
    train = load_ar_clips(args.data, args.tag, "train", False)
    readouts = push_readouts(train[: args.train_clips]) if args.response else None
    x, y = changes(train[: args.train_clips])
    weights = ridge(x, y, args.ridge)  # (T*C, 3)
    test = load_ar_clips(args.data, args.tag, "test", False)[: args.test_clips]
    x_test, y_test = changes(test)
    read = x_test @ weights
    tokens = test[0].latents.shape[1]
    side = int(round(tokens**0.5))
    print(
        f"{len(test)} test clips, {len(y_test)} frames; r of the read-out with the true change, {'/'.join(ANGLES)}"
    )
    print(
        f"  true latent change (the autoencoder's):  {' / '.join(f'{v:+.2f}' for v in correlations(read, y_test))}"
    )
    # how much of the latent change (the delta target's variance) each angle's change explains
    centred = x_test - x_test.mean(0)
    shares = []
    for i in range(len(ANGLES)):
        a = y_test[:, i : i + 1] - y_test[:, i].mean()
        fit = a @ np.linalg.lstsq(a, centred, rcond=None)[0]
        shares.append(float((fit**2).sum() / (centred**2).sum()))
    print(
        f"  share of the latent change's variance each angle's change explains: {' / '.join(f'{v:.1%}' for v in shares)}"
    )
    per_clip = [changes([c]) for c in test]
    momentum = np.concatenate([x[:-1] for x, _ in per_clip]) @ weights  # f_{t-1} - f_{t-2} read for f_t
    later = np.concatenate([y[1:] for _, y in per_clip])
    print(
        f"  the last true change carried on:          {' / '.join(f'{v:+.2f}' for v in correlations(momentum, later))}"
    )
    for name, path in (m.split("=", 1) for m in args.model):
        pipe = load_pipeline(path)
        drawn, states = teacher_forced(pipe, test)
        assert drawn is not None
        predicted = drawn @ weights
        ratio = predicted.std(0) / read.std(0)
        print(
            f"  {name}, teacher-forced prediction:  {' / '.join(f'{v:+.2f}' for v in correlations(predicted, y_test))}"
            f"   (size vs the true read-out: {' / '.join(f'{v:.2f}' for v in ratio)})"
        )
        if args.hidden:
            for what, r in hidden_readout(pipe, train[: args.hidden_clips], test, states).items():
                print(f"    {name}'s hidden states -> {what}: {' / '.join(f'{v:+.2f}' for v in r)}")
        if readouts is not None:
            followed = pose_response(pipe, test[:4], readouts)
            print(f"    {name} follows a pushed turn by (deg a frame per deg a frame): "
                  f"{' / '.join(f'{v:+.2f}' for v in followed)}")  # fmt: skip
    share = np.abs(weights).reshape(tokens, -1, 3).sum(1)
    for i, angle in enumerate(ANGLES[:2]):
        grid = (share[:, i] / share[:, i].sum()).reshape(side, side) if side * side == tokens else share[:, i]
        print(f"regression weight per token, {angle}:\n{np.round(grid, 3)}")


if __name__ == "__main__":
    main()
