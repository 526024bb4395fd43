"""Where the head's turn lives in latent space, so the AR loss can weigh it more (``pose_loss_weights``).

A frame's latent change is mostly the mouth, blinks and the face's speaking motion: the change of yaw explains
about 1% of its variance, of roll under 1%, of pitch 7% (``benchmarks/pose_latent_readout.py``). A squared
error over all of it hardly notices a model that never turns the head. :func:`pose_patterns` regresses the
latent change on the change of yaw / pitch / roll over the training clips (the latent change per degree of
each angle); :func:`pose_loss_directions` turns those patterns into an orthonormal basis, each direction
scaled by the root of its angle's weight, which ``FlowHead.loss`` reads as ``directions``: the error along
an angle's motion then counts ``1 + weight`` times, everything else as before.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from avatarlm.trainer.ar_data import ARClip


def pose_patterns(clips: Sequence[ARClip]) -> np.ndarray:
    """(3, T*C): the latent change that goes with a change of 1 degree of yaw, pitch and roll (least squares
    over every consecutive pair of frames of ``clips``, both sides centred)."""
    if not clips:
        raise ValueError("pose_patterns needs at least one clip")
    width = int(np.prod(clips[0].latents.shape[1:]))
    n = 0
    sum_p, sum_x = np.zeros(3), np.zeros(width)
    pp, px = np.zeros((3, 3)), np.zeros((3, width))
    for clip in clips:  # normal equations, accumulated: the clips' changes never sit in memory at once
        if clip.n_frames < 2:
            continue
        x = np.diff(clip.latents.astype(np.float64), axis=0).reshape(clip.n_frames - 1, width)
        p = np.diff(clip.pose.astype(np.float64), axis=0)
        n += len(p)
        sum_p += p.sum(0)
        sum_x += x.sum(0)
        pp += p.T @ p
        px += p.T @ x
    if n < 2:
        raise ValueError("pose_patterns needs clips of at least 2 frames")
    mean_p, mean_x = sum_p / n, sum_x / n
    cov_pp = pp - n * np.outer(mean_p, mean_p)
    cov_px = px - n * np.outer(mean_p, mean_x)
    if np.linalg.eigvalsh(cov_pp).min() <= 1e-6 * n:
        raise ValueError(
            "the head's yaw, pitch and roll do not each change in these clips (a world rollout has no pose): "
            "pose_loss_weights need clips where the head turns"
        )
    return np.linalg.solve(cov_pp, cov_px)


def pose_loss_directions(clips: Sequence[ARClip], weights: Sequence[float]) -> torch.Tensor:
    """(K, T, C): for each angle with a weight > 0 (yaw, pitch, roll order), a unit direction scaled by the
    root of its weight. The directions are orthonormal and span :func:`pose_patterns` (each angle's is its
    pattern less the span of the angles before it), so each angle's error counts once, 1 + weight times."""
    if len(weights) != 3 or min(weights) < 0 or max(weights) <= 0:
        raise ValueError(f"weights must be 3 values >= 0 (yaw, pitch, roll), one > 0, got {tuple(weights)}")
    basis, _ = np.linalg.qr(pose_patterns(clips).T)  # (T*C, 3)
    keep = [i for i, w in enumerate(weights) if w > 0]
    scaled = np.sqrt(np.asarray(weights, dtype=np.float64)[keep, None]) * basis.T[keep]
    return torch.from_numpy(scaled).float().reshape(len(keep), *clips[0].latents.shape[1:])
