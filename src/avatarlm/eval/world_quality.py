"""A world model against the real game on held-out recorded episodes (`avatarlm eval world`).

From start frames spaced through every held-out episode, a streaming session (the product's path: the
start frame as reference, one ``push_action`` per frame) replays the recorded actions for ``HORIZON``
frames. Measured against the recorded frames: PSNR (of the mean squared error over all rollouts) and SSIM
1, 8 and 32 steps ahead, beside copying the start frame (what a model that ignores the actions and the world
can do) and the autoencoder's reconstruction (the ceiling in this latent space); and action following: on every step where the player's recorded state
says the view moved, whether the generated view slid the way the state says (``world_motion``), beside the
same measure on the real frames (the measure's own ceiling) and on the reconstructions. A frame can slide
the right way and still fall apart (strong guidance on the actions does that), so the model's moves are also
counted only where its frame stays as close to the real one as the held start frame is (``model_above_copy``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from tqdm import tqdm

from avatarlm.apps.play import check_action_count
from avatarlm.autoencoder.loss import ssim
from avatarlm.data.shards import Sample, iter_samples, read_index
from avatarlm.eval.ae_quality import reconstruct_clip, to_tensor
from avatarlm.eval.image_metrics import psnr
from avatarlm.eval.world_motion import expected_shift, follows, image_shift
from avatarlm.pipeline.folder import Pipeline
from avatarlm.pipeline.session import SessionConfig, StreamingSession

HORIZONS = (1, 8, 32)
HORIZON = max(HORIZONS)
COLUMNS = ("model", "copy", "ceiling")  # generated, the start frame held, the AE's reconstruction


@dataclass
class Rollout:
    """One replayed stretch: the recorded frames and the model's, both (HORIZON + 1, H, W, 3), frame 0 the
    start frame (the model's: its decoded reference)."""

    episode: str
    start: int
    real: np.ndarray
    generated: np.ndarray
    recon: np.ndarray
    player: np.ndarray  # (HORIZON + 1, P)


@dataclass
class WorldReport:
    env: str
    rollouts: int
    psnr: dict[str, dict[int, float]] = field(default_factory=dict)  # column -> horizon -> mean dB
    ssim: dict[str, dict[int, float]] = field(default_factory=dict)
    # real / model / ceiling / model_above_copy -> fraction of moves
    follow: dict[str, float] = field(default_factory=dict)
    moves: int = 0  # steps where the state says the view moved

    def table(self) -> str:
        head = (
            "| steps ahead | world model PSNR / SSIM | copy the start frame | AE reconstruction (ceiling) |"
        )
        rows = [head, "|---|---|---|---|"]
        for h in sorted(self.psnr["model"]):
            cells = [f"{self.psnr[c][h]:.2f} / {self.ssim[c][h]:.3f}" for c in COLUMNS]
            rows.append(f"| {h} | " + " | ".join(cells) + " |")
        f = self.follow
        rows.append(
            f"| action following ({self.moves} moves) | {f['model']:.2f} "
            f"({f['model_above_copy']:.2f} as close to the real frame as the copy) | 0 (never moves) | "
            f"{f['ceiling']:.2f} (real frames {f['real']:.2f}) |"
        )
        return "\n".join(rows)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _ssim(a: np.ndarray, b: np.ndarray) -> float:
    return float(ssim(to_tensor(a[None])[0], to_tensor(b[None])[0]))


def roll_out(
    pipe: Pipeline, frames: np.ndarray, actions: np.ndarray, seed: int = 0, action_strength: float = 1.0
) -> np.ndarray:
    """The model's frames (len(frames), H, W, 3) replaying ``actions[1:]`` from ``frames[0]``, with
    classifier-free guidance ``action_strength`` on the actions (1 = none)."""
    config = SessionConfig(seed=seed, lip_strength=action_strength)
    session = StreamingSession(pipe, reference=frames[0], config=config)
    out = [f for _, f in session.frames()]
    for action in actions[1:]:
        session.push_action(int(action))
        out += [f for _, f in session.frames()]
    return np.stack(out)


def collect_rollouts(
    pipe: Pipeline,
    data: str,
    split: str = "test",
    episodes: int = 16,
    every: int = 48,
    progress: bool = True,
    action_strength: float = 1.0,
) -> tuple[str, list[Rollout]]:
    """Replay stretches of HORIZON frames starting every ``every`` frames of the first ``episodes``
    episodes of ``split``; returns the environment's name and the rollouts."""
    config, samples = held_out_episodes(pipe, data, split, episodes)
    env = str(config["env"])
    out: list[Rollout] = []
    starts = [(s, t) for s in samples for t in range(0, len(s.frames) - HORIZON, every)]
    for sample, t in tqdm(starts, desc="world rollouts", disable=not progress):
        real = sample.frames[t : t + HORIZON + 1]
        actions = sample.truth["action"][t : t + HORIZON + 1]
        generated = roll_out(pipe, real, actions, seed=len(out), action_strength=action_strength)
        player = sample.truth["player"][t : t + HORIZON + 1]
        recon = reconstruct_clip(pipe.autoencoder, real, True, real[0])  # decoded as the session decodes
        out.append(Rollout(sample.key, t, real, generated, recon, player))
    return env, out


def held_out_episodes(
    pipe: Pipeline, data: str, split: str, episodes: int
) -> tuple[dict[str, Any], list[Sample]]:
    """A world dataset's config (``env``, ``size``, ``fps``, ...) and the first ``episodes`` episodes of
    ``split``, after checking that the model plays that game at that frame size."""
    config = read_index(data)["config"]
    if config.get("kind") != "world":
        raise ValueError(f"{data} holds no world rollouts (write one with `avatarlm data world`)")
    env = str(config["env"])
    check_action_count(pipe, env, len(config["action_names"]))
    size = pipe.autoencoder.config.image_height
    if int(config["size"]) != size:
        raise ValueError(f"{data} holds {config['size']}x{config['size']} frames, the model needs {size}")
    samples = [s for _, s in zip(range(episodes), iter_samples(data, split=split), strict=False)]
    if not samples:
        raise ValueError(f"{data} has no {split} episodes")
    return config, samples


def score(env: str, rollouts: list[Rollout]) -> WorldReport:
    """PSNR / SSIM per horizon for the model, the held start frame and the reconstruction, and the share of
    state-confirmed moves each follows."""
    if not rollouts:
        raise ValueError("no rollouts to score: the episodes are shorter than the horizon")
    report = WorldReport(env, len(rollouts))
    for column in COLUMNS:
        report.psnr[column], report.ssim[column] = {}, {}
        for h in HORIZONS:
            pairs = [(_frames(r, column)[h], r.real[h]) for r in rollouts]
            report.psnr[column][h] = pooled_psnr(pairs)
            report.ssim[column][h] = float(np.mean([_ssim(a, b) for a, b in pairs]))
    hits = {"real": 0, "model": 0, "ceiling": 0, "model_above_copy": 0}
    for r in rollouts:
        for t in range(1, len(r.real)):
            expected = expected_shift(env, r.player[t - 1], r.player[t])
            if expected is None:
                continue
            report.moves += 1
            for name, frames in (("real", r.real), ("model", r.generated), ("ceiling", r.recon)):
                followed = follows(image_shift(frames[t - 1], frames[t], vertical=env == "crafter"), expected)
                hits[name] += followed
                if name == "model" and followed:  # and no further from the real frame than the copy
                    hits["model_above_copy"] += psnr(r.generated[t], r.real[t]) >= psnr(r.real[0], r.real[t])
    report.follow = {k: v / max(report.moves, 1) for k, v in hits.items()}
    return report


def pooled_psnr(pairs: list[tuple[np.ndarray, np.ndarray]]) -> float:
    """PSNR of the mean squared error over all pairs: a game often stands still, and one identical pair
    (infinite PSNR) would make a mean of per-pair PSNRs infinite."""
    return psnr(np.stack([a for a, _ in pairs]), np.stack([b for _, b in pairs]))  # frames of one size


def _frames(r: Rollout, column: str) -> np.ndarray:
    if column == "model":
        return r.generated
    if column == "copy":
        return np.repeat(r.real[:1], len(r.real), axis=0)
    return r.recon
