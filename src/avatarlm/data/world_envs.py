"""Game environments for world-model rollouts, behind one small adapter: Crafter and ViZDoom (Freedoom).

An adapter renders square uint8 frames of ``size`` pixels, takes discrete action ids (``action_names``)
and reports the player's state for later probes (``player_fields``). ``reset(seed)`` starts an episode
that is a pure function of the seed, so an episode replays exactly from its seed and its actions.
The game packages are imported on use, with a one-line error naming the pip command when one is missing.
"""

from __future__ import annotations

import collections
import contextlib
import importlib.util
import os
import tempfile
from dataclasses import dataclass
from typing import Any, Protocol

import cv2
import numpy as np

PIP_NAMES = {"crafter": "crafter==1.8.3", "vizdoom": "vizdoom==1.3.2"}


@dataclass(frozen=True)
class StepResult:
    """What one action led to. ``done``: the game ended the episode (death, level exit); its last frame is
    ``frame``, or there is none to show (``frame`` and ``player`` None: ViZDoom after a death)."""

    frame: np.ndarray | None  # uint8 (size, size, 3)
    player: np.ndarray | None  # float32 (len(player_fields),)
    done: bool
    reward: float = 0.0


@dataclass(frozen=True)
class ExploreActions:
    """What the scripted explorer may press: ``walk`` actions carry the player through the world for a
    while, ``turn`` actions follow to change its course (names from ``action_names``)."""

    walk: tuple[str, ...]
    turn: tuple[str, ...]


class WorldEnv(Protocol):
    name: str
    size: int
    action_names: tuple[str, ...]
    player_fields: tuple[str, ...]
    explore: ExploreActions

    def reset(self, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Start the episode of ``seed``: its first frame and the player's state."""
        ...

    def step(self, action: int) -> StepResult: ...

    def close(self) -> None: ...


def _import(name: str) -> Any:
    require_package(name)
    return importlib.import_module(name)


class InsertionOrderedSet(dict[Any, None]):
    """The part of the set API that Crafter's world uses for the creatures of a chunk (add, remove,
    iteration), iterated in the order they came in. Crafter keeps them in plain sets, which iterate in the
    order of their memory addresses, and picks which creature spawns or despawns by position in that order:
    the same seed and actions could then give another episode in another run (seen after about 60 steps)."""

    def add(self, item: Any) -> None:
        self[item] = None

    def remove(self, item: Any) -> None:
        del self[item]


def _ordered_chunks(crafter: Any) -> None:
    """Make every Crafter world keep its chunks' creatures in :class:`InsertionOrderedSet` (once per process)."""
    world = crafter.engine.World
    if getattr(world.reset, "avatarlm_ordered", False):
        return
    original = world.reset

    def reset(self: Any, seed: Any = None) -> None:
        original(self, seed)
        self._chunks = collections.defaultdict(InsertionOrderedSet)

    reset.avatarlm_ordered = True  # type: ignore[attr-defined]
    world.reset = reset


CRAFTER_ACTIONS: tuple[str, ...] = (
    "noop", "move_left", "move_right", "move_up", "move_down", "do", "sleep", "place_stone", "place_table",
    "place_furnace", "place_plant", "make_wood_pickaxe", "make_stone_pickaxe", "make_iron_pickaxe",
    "make_wood_sword", "make_stone_sword", "make_iron_sword",
)  # fmt: skip


class CrafterEnv:
    """Crafter (a 2D Minecraft): a fresh world per seed, rendered natively at ``size`` (local view above
    the inventory). The player's state is its grid position and the direction it faces."""

    name = "crafter"
    player_fields: tuple[str, ...] = ("x", "y", "facing_x", "facing_y")
    explore = ExploreActions(
        walk=("move_left", "move_right", "move_up", "move_down"),
        turn=("move_left", "move_right", "move_up", "move_down", "do"),
    )

    action_names = CRAFTER_ACTIONS

    def __init__(self, size: int, fps: float):
        self._crafter = _import("crafter")
        if tuple(self._crafter.constants.actions) != self.action_names:
            raise ValueError(f"unexpected Crafter action set; pip install {PIP_NAMES['crafter']}")
        _ordered_chunks(self._crafter)
        self.size = size
        self._env: Any = None

    def _player(self) -> np.ndarray:
        player = self._env._player  # crafter exposes the player object only privately
        return np.array([*player.pos, *player.facing], dtype=np.float32)

    def reset(self, seed: int) -> tuple[np.ndarray, np.ndarray]:
        # A new Env per episode: Crafter seeds its world from (env seed, episode number).
        self._env = self._crafter.Env(size=(self.size, self.size), seed=seed, length=None)
        frame = self._env.reset()
        return np.ascontiguousarray(frame, dtype=np.uint8), self._player()

    def step(self, action: int) -> StepResult:
        frame, reward, done, _ = self._env.step(int(action))
        return StepResult(
            np.ascontiguousarray(frame, dtype=np.uint8), self._player(), bool(done), float(reward)
        )

    def close(self) -> None:
        self._env = None


# Directional controls over the engine's buttons; each action holds its buttons for one frame's tics.
DOOM_BUTTONS = (
    "MOVE_FORWARD",
    "MOVE_BACKWARD",
    "TURN_LEFT",
    "TURN_RIGHT",
    "MOVE_LEFT",
    "MOVE_RIGHT",
    "ATTACK",
    "USE",
)
DOOM_ACTIONS: dict[str, tuple[str, ...]] = {
    "noop": (),
    "forward": ("MOVE_FORWARD",),
    "backward": ("MOVE_BACKWARD",),
    "turn_left": ("TURN_LEFT",),
    "turn_right": ("TURN_RIGHT",),
    "strafe_left": ("MOVE_LEFT",),
    "strafe_right": ("MOVE_RIGHT",),
    "forward_left": ("MOVE_FORWARD", "TURN_LEFT"),
    "forward_right": ("MOVE_FORWARD", "TURN_RIGHT"),
    "attack": ("ATTACK",),
    "use": ("USE",),
}
DOOM_MAPS = tuple(f"MAP{i:02d}" for i in range(1, 33))  # the 32 levels of the bundled freedoom2.wad
DOOM_TICRATE = 35  # game tics per second
DOOM_SKILL = 3  # "hurt me plenty": monsters fight back, so random play ends in deaths (episode ends)


class DoomEnv:
    """ViZDoom on the bundled Freedoom 2 levels, headless (no window, no sound, no HUD): a level picked by
    the seed, 160x120 RGB squeezed to ``size`` square, ``round(35 / fps)`` tics per frame. The player's
    state is its map position and view angle (degrees)."""

    name = "vizdoom"
    action_names: tuple[str, ...] = tuple(DOOM_ACTIONS)
    player_fields: tuple[str, ...] = ("x", "y", "z", "angle")
    explore = ExploreActions(
        walk=("forward", "forward_left", "forward_right"), turn=("turn_left", "turn_right", "use")
    )

    def __init__(self, size: int, fps: float):
        self._vzd = _import("vizdoom")
        self.size = size
        self.tics = max(1, round(DOOM_TICRATE / fps))
        # The engine writes its config and a `_vizdoom` log folder into the working directory: give it
        # a private one for the adapter's lifetime.
        self._runtime = tempfile.TemporaryDirectory(prefix="avatarlm-vizdoom-")
        self._game: Any = None
        self._state_vars = [
            getattr(self._vzd.GameVariable, v) for v in ("POSITION_X", "POSITION_Y", "POSITION_Z", "ANGLE")
        ]
        self._buttons = [[float(b in held) for b in DOOM_BUTTONS] for held in DOOM_ACTIONS.values()]

    def _start_game(self, seed: int, level: str) -> None:
        """A fresh engine per episode (about 0.4 s): a reused one carries state from the previous episode
        into the next (the weapon sprite's first frames differ), which would break replay from the seed."""
        vzd = self._vzd
        game = vzd.DoomGame()
        game.set_doom_game_path(os.path.join(os.path.dirname(vzd.__file__), "freedoom2.wad"))
        game.set_doom_map(level)
        game.set_seed(seed)
        game.set_doom_config_path(os.path.join(self._runtime.name, "vizdoom.ini"))
        game.set_screen_resolution(vzd.ScreenResolution.RES_160X120)
        game.set_screen_format(vzd.ScreenFormat.RGB24)
        game.set_window_visible(False)
        game.set_sound_enabled(False)
        game.set_render_hud(False)
        game.set_render_messages(False)
        game.set_console_enabled(False)
        game.set_mode(vzd.Mode.PLAYER)
        game.set_doom_skill(DOOM_SKILL)
        game.set_episode_start_time(1)
        game.set_episode_timeout(0)
        game.set_available_buttons([getattr(vzd.Button, b) for b in DOOM_BUTTONS])
        with contextlib.chdir(self._runtime.name):
            game.init()  # starts the episode
        self._game = game

    def _observe(self) -> tuple[np.ndarray, np.ndarray]:
        screen = self._game.get_state().screen_buffer
        frame = cv2.resize(screen, (self.size, self.size), interpolation=cv2.INTER_AREA)
        player = np.array([self._game.get_game_variable(v) for v in self._state_vars], dtype=np.float32)
        return frame, player

    def reset(self, seed: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng([seed, 0xD00])
        self._close_game()
        self._start_game(seed, DOOM_MAPS[int(rng.integers(len(DOOM_MAPS)))])
        return self._observe()

    def step(self, action: int) -> StepResult:
        reward = float(self._game.make_action(self._buttons[int(action)], self.tics))
        if self._game.is_episode_finished():  # died or left the level: no further frame to show
            return StepResult(None, None, True, reward)
        frame, player = self._observe()
        return StepResult(frame, player, False, reward)

    def _close_game(self) -> None:
        if self._game is not None:
            self._game.close()
            self._game = None

    def close(self) -> None:
        self._close_game()
        self._runtime.cleanup()


ENVS: dict[str, type[CrafterEnv] | type[DoomEnv]] = {"crafter": CrafterEnv, "vizdoom": DoomEnv}


def env_class(name: str) -> type[CrafterEnv] | type[DoomEnv]:
    if name not in ENVS:
        raise ValueError(f"unknown environment {name!r}; choose one of {', '.join(ENVS)}")
    return ENVS[name]


def require_package(name: str) -> None:
    """Raise the one-line install hint now if the environment's package is missing (before any work)."""
    if importlib.util.find_spec(env_class(name).name) is None:
        raise ValueError(f"the {name} environment needs its package: pip install {PIP_NAMES[name]}")


def make_env(name: str, size: int, fps: float) -> WorldEnv:
    return env_class(name)(size, fps)
