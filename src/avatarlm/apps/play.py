"""`avatarlm play` in file mode: the same actions drive the real game and a world model, side by side.

The game starts the episode of ``seed``; its first frame is the world model's reference, and every action
then steps both — the game, and a :class:`~avatarlm.pipeline.session.StreamingSession` fed through
``push_action`` (what the live page does per key press). Without an action list the game's exploratory
policy (the one ``avatarlm data world`` records with) picks them. The result holds both frame sequences
and the rollout PSNR of the model at a few horizons beside the copy-the-first-frame baseline.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from avatarlm.data.world_envs import WorldEnv
from avatarlm.data.world_policy import ExplorationConfig, exploration_actions
from avatarlm.eval.image_metrics import psnr
from avatarlm.pipeline.folder import Pipeline
from avatarlm.pipeline.session import SessionConfig, StreamingSession

HORIZONS = (1, 8, 32)
_TOKEN = re.compile(r"^([A-Za-z_]+|\d+)(?:\*(\d+))?$")


def parse_actions(text: str, names: tuple[str, ...]) -> list[int]:
    """Action ids from text: names or ids separated by spaces, commas or new lines, ``name*N`` holding one
    for N frames, ``#`` starting a comment (e.g. ``move_right*8 do noop*3``)."""
    out: list[int] = []
    for line in text.splitlines():
        for token in re.split(r"[\s,]+", line.split("#", 1)[0].strip()):
            if not token:
                continue
            m = _TOKEN.match(token)
            if m is None:
                raise ValueError(f"cannot read action {token!r}: write a name or an id, optionally *N")
            word, repeat = m.group(1), int(m.group(2) or 1)
            if word.isdigit():
                action = int(word)
                if action >= len(names):
                    raise ValueError(f"action id {action} is out of range: the game has {len(names)} actions")
            elif word in names:
                action = names.index(word)
            else:
                raise ValueError(f"unknown action {word!r}; the game's actions: {', '.join(names)}")
            if repeat < 1:
                raise ValueError(f"{token!r}: a repeat count must be at least 1")
            out += [action] * repeat
    if not out:
        raise ValueError("the action list is empty")
    return out


def is_world_model(pipe: Pipeline) -> bool:
    """Driven by actions and by nothing it hears: what `train ar --preset world` makes."""
    modalities = pipe.model.config.conditions.modalities
    return "action" in modalities and "audio" not in modalities


def check_action_count(pipe: Pipeline, game: str, count: int) -> None:
    """Refuse a model that does not take ``game``'s ``count`` actions."""
    cond = pipe.model.config.conditions
    if "action" not in cond.modalities or cond.num_actions != count:
        raise ValueError(
            f"the model takes {cond.num_actions} actions, {game} has {count}: was it trained on this game?"
        )


@dataclass
class PlayResult:
    real: np.ndarray  # uint8 (F + 1, H, W, 3): the game's first frame and one frame per action
    generated: np.ndarray  # uint8 (F + 1, H, W, 3): the world model's, frame 0 its decoded reference
    actions: list[int]
    fps: float
    psnr: dict[int, float] = field(default_factory=dict)  # horizon -> PSNR of the model's frame vs the game's
    copy_psnr: dict[int, float] = field(default_factory=dict)  # horizon -> PSNR of frame 0 vs the game's

    def side_by_side(self) -> np.ndarray:
        """Frames (F + 1, H, 2W, 3): the game on the left, the model on the right."""
        return np.concatenate([self.real, self.generated], axis=2)

    def table(self) -> str:
        rows = ["| steps ahead | world model PSNR | copy frame 0 PSNR |", "|---|---|---|"]
        rows += [f"| {h} | {self.psnr[h]:.2f} | {self.copy_psnr[h]:.2f} |" for h in sorted(self.psnr)]
        return "\n".join(rows)


def play(
    pipe: Pipeline,
    env: WorldEnv,
    seed: int = 0,
    actions: list[int] | None = None,
    steps: int = 64,
    progress: bool = False,
    action_strength: float = 1.0,
) -> PlayResult:
    """Step the game and the world model with ``actions`` (or ``steps`` exploratory ones; guidance
    ``action_strength`` on them, 1 = none); the rollout stops early where the game ends the episode."""
    cond = pipe.model.config.conditions
    if not is_world_model(pipe):
        raise ValueError(
            "play needs a world model: actions and no audio (`avatarlm train ar --preset world`)"
        )
    check_action_count(pipe, env.name, len(env.action_names))
    size = pipe.autoencoder.config.image_height
    if env.size != size or pipe.autoencoder.config.image_width != size:
        raise ValueError(f"the game renders {env.size}x{env.size}, the model needs {size} square frames")
    if actions is None:
        policy = exploration_actions(ExplorationConfig(), env.action_names, env.explore, seed)
        actions = list(itertools.islice(policy, steps))
    first, _ = env.reset(seed)
    config = SessionConfig(seed=seed, lip_strength=action_strength)
    session = StreamingSession(pipe, reference=first, config=config)
    real, generated = [first], [f for _, f in session.frames()]
    taken: list[int] = []
    for action in tqdm(actions, desc="play", disable=not progress):
        result = env.step(action)
        if result.frame is None:
            break
        session.push_action(int(action))
        generated += [f for _, f in session.frames()]
        real.append(result.frame)
        taken.append(int(action))
        if result.done:
            break
    out = PlayResult(np.stack(real), np.stack(generated), taken, cond.fps)
    for h in HORIZONS:
        if h < len(out.real):
            out.psnr[h] = psnr(out.generated[h], out.real[h])
            out.copy_psnr[h] = psnr(out.real[0], out.real[h])
    return out


def read_action_file(path: str | Path, names: tuple[str, ...]) -> list[int]:
    """``parse_actions`` of a text file, with the file named in errors."""
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise ValueError(f"cannot read the action list {path}: {e.strerror}") from None
    try:
        return parse_actions(text, names)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
