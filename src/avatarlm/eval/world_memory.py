"""Does a world model remember what it turned away from? Turn away and back, in the game and in the model.

From points of held-out recorded episodes (the real game replays the episode's recorded actions from its
seed up to there, and its frame there is the start), the same probe runs in the game and in the model: one
step at rest (``noop``), ``k`` steps away (ViZDoom: turn left; Crafter: walk left), one at rest, then ``k``
steps back (turn right; walk right). (The rests matter in ViZDoom: a turn starts slowly for its first tics,
so turning back without a pause would not undo the turn away.) Where the game's own state says the player
came back to where it started (same view angle and place; in Crafter the same tile) after really leaving
it, the probe is a revisit, and the view at the end is the view at the start, seen again. The whole probe
(2k + 3 frames) fits in the session's context window, so a model can get it right only by keeping what it
saw in its window.

Scored on the revisits: PSNR at the return against the game's frame, beside holding the start frame (an
easy score here: the return view *is* the start view, so a model that ignores the actions does well) and
the autoencoder's reconstruction (the ceiling); how far the far view is from the return view (that the
probe really turned the view away: model and game); and **came back**: the share of revisits where the
model's return frame is more than ``MARGIN_DB`` closer to the game's return frame than the model's own far
frame is. A model that never turned scores 0 (its far and return frames are the same picture), one that
turned and got lost scores 0, and one that turned and came back scores 1.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from tqdm import tqdm

from avatarlm.data.shards import Sample
from avatarlm.data.world import NO_ACTION
from avatarlm.data.world_envs import WorldEnv, make_env
from avatarlm.eval.ae_quality import reconstruct_clip
from avatarlm.eval.image_metrics import psnr
from avatarlm.eval.world_quality import held_out_episodes, pooled_psnr, roll_out
from avatarlm.pipeline.folder import Pipeline

# The probe per game: (away, back) action names and the default number of steps each way.
PROBES: dict[str, tuple[str, str, int]] = {
    "vizdoom": ("turn_left", "turn_right", 10),  # about 60 degrees away at 15 fps
    "crafter": ("move_left", "move_right", 4),  # four tiles of the nine-tile-wide view
}
REST = "noop"
MARGIN_DB = 1.0
# A revisit: the player left by at least this much and came back to within the second figure.
DOOM_AWAY_DEGREES, DOOM_BACK_DEGREES, DOOM_BACK_UNITS = 30.0, 1.0, 16.0
CRAFTER_AWAY_TILES = 2


@dataclass
class Revisit:
    """One probe: frames (2k + 3, H, W, 3) of the game, the model and the reconstruction; the game's player
    state per frame."""

    episode: str
    start: int
    real: np.ndarray
    generated: np.ndarray
    recon: np.ndarray
    player: np.ndarray


@dataclass
class MemoryReport:
    env: str
    away_steps: int
    window_frames: int
    probes: int  # probes run to the end (the game did not end the episode during one)
    revisits: int  # of them, where the player really left and came back
    psnr_return: dict[str, float] = field(default_factory=dict)  # model / copy / ceiling -> dB
    psnr_far: dict[str, float] = field(default_factory=dict)  # model / real: far frame vs the return frame
    came_back: dict[str, float] = field(default_factory=dict)  # model / copy / ceiling -> share of revisits

    def table(self) -> str:
        head = (
            f"| {self.away_steps} steps away and {self.away_steps} back ({self.revisits} revisits of "
            f"{self.probes} probes; {2 * self.away_steps + 3} frames, window {self.window_frames}) "
            "| world model | copy the start frame | AE reconstruction (ceiling) |"
        )
        r, f, c = self.psnr_return, self.psnr_far, self.came_back
        return "\n".join(
            [
                head,
                "|---|---|---|---|",
                f"| PSNR at the return, dB | {r['model']:.2f} | {r['copy']:.2f} | {r['ceiling']:.2f} |",
                f"| the far view vs the return view, dB | {f['model']:.2f} | {r['copy']:.2f} | "
                f"{f['real']:.2f} (game) |",
                f"| came back (return frame over {MARGIN_DB:g} dB closer than the far frame) | {c['model']:.2f} | "
                f"{c['copy']:.2f} | {c['ceiling']:.2f} |",
            ]
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def probe_actions(env: str, action_names: list[str] | tuple[str, ...], steps: int) -> list[int]:
    """The probe's action ids: a rest, ``steps`` away, a rest, then ``steps`` back."""
    if env not in PROBES:
        raise ValueError(f"no revisit probe for environment {env!r}: {', '.join(PROBES)}")
    if steps < 1:
        raise ValueError(f"the revisit probe needs at least 1 step each way, got {steps}")
    away, back, _ = PROBES[env]
    rest = action_names.index(REST)
    return [rest] + [action_names.index(away)] * steps + [rest] + [action_names.index(back)] * steps


def far_frame(steps: int) -> int:
    """The probe's frame at the far end (after the rest and the steps away)."""
    return steps + 1


def is_revisit(env: str, player: np.ndarray) -> bool:
    """Did the player (states of the probe's frames) leave its start and come back to it?"""
    if env == "vizdoom":  # x, y, z, angle
        turn = (player[:, 3] - player[0, 3] + 180.0) % 360.0 - 180.0
        moved = float(np.hypot(*(player[-1, :2] - player[0, :2])))
        return bool(
            np.abs(turn).max() >= DOOM_AWAY_DEGREES
            and abs(turn[-1]) < DOOM_BACK_DEGREES
            and moved < DOOM_BACK_UNITS
        )
    if env == "crafter":  # grid x, y, facing
        away = np.abs(player[:, :2] - player[0, :2]).max()
        return bool(away >= CRAFTER_AWAY_TILES and np.array_equal(player[-1, :2], player[0, :2]))
    raise ValueError(f"unknown environment {env!r}: crafter or vizdoom")


def replay_to(game: WorldEnv, sample: Sample, t: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Reset the game to ``sample``'s episode and replay its recorded actions up to frame ``t``; returns the
    game's frame and player state there, or None where the game ended the episode first. ViZDoom gives back
    the recorded frame exactly; Crafter can part from its recording after a while (it iterates sets of
    creatures in memory order, so which one spawns or despawns can differ from run to run), which the probe
    does not mind: it compares the model with the game from the game's own frame."""
    frame, player = game.reset(int(sample.meta["episode_seed"]))
    for action in sample.truth["action"][1 : t + 1]:
        result = game.step(int(action))
        if result.frame is None or result.player is None or result.done:
            return None
        frame, player = result.frame, result.player
    return frame, player


def collect_revisits(
    pipe: Pipeline,
    data: str,
    split: str = "test",
    episodes: int = 16,
    every: int = 48,
    steps: int | None = None,
    progress: bool = True,
    action_strength: float = 1.0,
    window_frames: int | None = None,
) -> tuple[str, int, list[Revisit]]:
    """Run the probe from frames ``every``, ``2 every``, ... of the first ``episodes`` episodes, in the
    game and in the model; returns the environment, the steps each way and the probes the game finished."""
    config, samples = held_out_episodes(pipe, data, split, episodes)
    env = str(config["env"])
    steps = PROBES[env][2] if steps is None else steps
    actions = probe_actions(env, config["action_names"], steps)
    if window_frames is not None and len(actions) + 1 > window_frames:
        raise ValueError(f"the probe's {len(actions) + 1} frames do not fit the {window_frames}-frame window")
    game = make_env(env, int(config["size"]), float(config["fps"]))
    out: list[Revisit] = []
    # Not from an episode's first frame: ViZDoom ignores the controls for the first tics of an episode.
    starts = [(s, t) for s in samples for t in range(every, len(s.frames), every)]
    try:
        for sample, t in tqdm(starts, desc="revisit probes", disable=not progress):
            start = replay_to(game, sample, t)
            if start is None:
                continue
            real, players = [start[0]], [start[1]]
            for action in actions:
                result = game.step(action)
                if result.frame is None or result.player is None:
                    break
                real.append(result.frame)
                players.append(result.player)
                if result.done:
                    break
            if len(real) < len(actions) + 1:  # the game ended the episode during the probe
                continue
            clip = np.stack(real)
            generated = roll_out(pipe, clip, np.array([NO_ACTION, *actions]), len(out), action_strength)
            recon = reconstruct_clip(pipe.autoencoder, clip, True, clip[0])
            out.append(Revisit(sample.key, t, clip, generated, recon, np.stack(players)))
    finally:
        game.close()
    return env, steps, out


def score_revisits(env: str, steps: int, probes: list[Revisit], window_frames: int) -> MemoryReport:
    revisits = [p for p in probes if is_revisit(env, p.player)]
    report = MemoryReport(env, steps, window_frames, len(probes), len(revisits))
    if not revisits:
        raise ValueError(
            f"none of the {len(probes)} probes came back to its start in the game: no revisits to score"
        )
    columns = {
        "model": [p.generated for p in revisits],
        "copy": [np.repeat(p.real[:1], len(p.real), axis=0) for p in revisits],
        "ceiling": [p.recon for p in revisits],
    }
    ends, far = [p.real[-1] for p in revisits], far_frame(steps)
    for name, frames in columns.items():
        report.psnr_return[name] = pooled_psnr([(f[-1], e) for f, e in zip(frames, ends, strict=True)])
        report.came_back[name] = float(
            np.mean([psnr(f[-1], e) > psnr(f[far], e) + MARGIN_DB for f, e in zip(frames, ends, strict=True)])
        )
    report.psnr_far["model"] = pooled_psnr([(p.generated[far], p.real[-1]) for p in revisits])
    report.psnr_far["real"] = pooled_psnr([(p.real[far], p.real[-1]) for p in revisits])
    return report
