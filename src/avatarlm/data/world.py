"""`avatarlm data world`: exploratory rollouts of a game environment, written as dataset shards.

Each episode is one clip: its frames (the first after the reset, then one per action), the action taken
before each frame (``NO_ACTION`` before the first), the player's state and reward per frame, and how it
ended in the metadata ("terminated" by the game, or "truncated" at ``episode_steps``). There is no audio.

Episode ``n`` of a dataset has a seed that is a hash of (``seed``, n); the seed picks the episode's split
(80/10/10) and drives both the environment and the policy, so the data is a pure function of ``seed``.
Shard ``j`` of a split holds that split's episodes ``j*E .. j*E+E-1``; a split gets the shortest run of
shards from 0 whose frames reach its share of ``hours``. As episodes end early when the player dies, the
frames of a shard are known only once it is collected, so collection runs in rounds, each scheduling no
more shards than certainly needed. Finished shards are skipped on a rerun (resumable, like ``data synth``).
"""

from __future__ import annotations

import hashlib
import json
import math
import multiprocessing as mp
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from avatarlm.data.shards import Sample, ShardWriter, sidecar_path, write_index
from avatarlm.data.splits import SPLITS, bucket_split
from avatarlm.data.world_envs import WorldEnv, env_class, make_env, require_package
from avatarlm.data.world_policy import ExplorationConfig, exploration_actions

NO_ACTION = -1  # the action "before" an episode's first frame (as avatarlm.conditions.action.NO_ACTION)
SPLIT_SHARES = {"train": 0.8, "val": 0.1, "test": 0.1}  # as episode_split draws them


@dataclass
class WorldConfig:
    env: str
    hours: float
    out: str
    size: int = 64
    fps: float = 15.0
    seed: int = 0
    workers: int = 1
    episode_steps: int = 450
    episodes_per_shard: int = 16
    exploration: ExplorationConfig = field(default_factory=ExplorationConfig)

    def validate(self) -> None:
        env_class(self.env)
        if not (self.hours > 0 and math.isfinite(self.hours)):
            raise ValueError(f"--hours must be a positive number, got {self.hours}")
        if not 32 <= self.size <= 256 or self.size % 8:
            raise ValueError(f"--size must be a multiple of 8 from 32 to 256, got {self.size}")
        if not 0 < self.fps <= 35:
            raise ValueError(f"--fps must be in (0, 35], got {self.fps}")
        if self.episode_steps < 1:
            raise ValueError(f"--episode-steps must be at least 1, got {self.episode_steps}")
        if self.workers < 1:
            raise ValueError(f"--workers must be at least 1, got {self.workers}")
        if self.episodes_per_shard < 1:
            raise ValueError(f"episodes per shard must be at least 1, got {self.episodes_per_shard}")
        self.exploration.validate()
        require_package(self.env)
        try:
            Path(self.out).mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.out):
                pass
        except OSError as e:
            raise ValueError(f"cannot write to output folder {self.out!r}: {e.strerror or e}") from None

    def target_frames(self, split: str) -> float:
        return self.hours * 3600 * self.fps * SPLIT_SHARES[split]


def _hash31(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little") & 0x7FFF_FFFF


def episode_seed(dataset_seed: int, n: int) -> int:
    return _hash31(f"world-episode:{dataset_seed}:{n}")


def episode_split(seed: int) -> str:
    """80 % train, 10 % val, 10 % test by a stable hash of the episode seed."""
    return bucket_split(_hash31(f"episode-split:{seed}") % 10)


@dataclass(frozen=True)
class EpisodeSpec:
    key: str
    seed: int
    split: str


def shard_episodes(cfg: WorldConfig, split: str, shard: int) -> list[EpisodeSpec]:
    """The episodes of shard ``shard`` of ``split``: that split's episodes ``shard*E .. shard*E+E-1``."""
    first, count = shard * cfg.episodes_per_shard, cfg.episodes_per_shard
    found: list[EpisodeSpec] = []
    n = 0
    while len(found) < first + count:
        seed = episode_seed(cfg.seed, n)
        if episode_split(seed) == split:
            found.append(EpisodeSpec(f"ep-{n:07d}", seed, split))
        n += 1
    return found[first:]


def shard_path(split: str, shard: int) -> str:
    return f"{split}/shard-{shard:05d}.tar"


@dataclass
class Episode:
    spec: EpisodeSpec
    frames: np.ndarray  # uint8 (T, H, W, 3)
    actions: np.ndarray  # int32 (T,): the action taken before each frame, NO_ACTION before the first
    player: np.ndarray  # float32 (T, P)
    reward: np.ndarray  # float32 (T,): the reward of the step that led to each frame
    ended: str  # "terminated" (by the game) or "truncated" (at episode_steps)


def collect_episode(env: WorldEnv, spec: EpisodeSpec, cfg: WorldConfig) -> Episode:
    frame, player = env.reset(spec.seed)
    frames, players, actions, rewards = [frame], [player], [NO_ACTION], [0.0]
    policy = exploration_actions(cfg.exploration, env.action_names, env.explore, spec.seed)
    ended = "truncated"
    for _ in range(cfg.episode_steps):
        action = next(policy)
        result = env.step(action)
        if result.frame is not None and result.player is not None:
            frames.append(result.frame)
            players.append(result.player)
            actions.append(action)
            rewards.append(result.reward)
        if result.done:
            ended = "terminated"
            break
    return Episode(
        spec,
        np.stack(frames),
        np.array(actions, np.int32),
        np.stack(players).astype(np.float32),
        np.array(rewards, np.float32),
        ended,
    )


def to_sample(episode: Episode, env: WorldEnv, cfg: WorldConfig) -> Sample:
    meta = {
        "kind": "world",
        "env": env.name,
        "episode_seed": episode.spec.seed,
        "split": episode.spec.split,
        "fps": cfg.fps,
        "ended": episode.ended,
        "action_names": list(env.action_names),
        "player_fields": list(env.player_fields),
        "exploration": asdict(cfg.exploration),
    }
    truth = {"action": episode.actions, "player": episode.player, "reward": episode.reward}
    return Sample(episode.spec.key, meta, episode.frames, {}, truth)


def collect_shard(root: str, cfg: WorldConfig, split: str, shard: int) -> int:
    """Collect and write one shard; returns its number of frames."""
    env = make_env(cfg.env, cfg.size, cfg.fps)
    frames = 0
    try:
        with ShardWriter(Path(root) / shard_path(split, shard)) as writer:
            for spec in shard_episodes(cfg, split, shard):
                episode = collect_episode(env, spec, cfg)
                summary = {"seed": spec.seed, "split": split, "ended": episode.ended}
                writer.write(to_sample(episode, env, cfg), summary)
                frames += len(episode.frames)
    finally:
        env.close()
    return frames


def _shard_frames(root: Path, cfg: WorldConfig, split: str, shard: int) -> int | None:
    """Frames of a complete shard holding the expected episodes, else None."""
    tar = root / shard_path(split, shard)
    if not (tar.exists() and sidecar_path(tar).exists()):
        return None
    entries = json.loads(sidecar_path(tar).read_text())["samples"]
    if [e["key"] for e in entries] != [s.key for s in shard_episodes(cfg, split, shard)]:
        return None
    return sum(int(e["n_frames"]) for e in entries)


def _plan_round(root: Path, cfg: WorldConfig) -> tuple[list[tuple[str, int]], list[str], int]:
    """(shards to collect next, the indexed shards if none are left, frames collected so far)."""
    todo: list[tuple[str, int]] = []
    done: list[str] = []
    collected = 0
    per_shard = cfg.episodes_per_shard * (cfg.episode_steps + 1)  # at most
    for split in SPLITS:
        frames, shard = 0, 0
        while frames < cfg.target_frames(split):
            n = _shard_frames(root, cfg, split, shard)
            if n is None:
                break
            frames, shard = frames + n, shard + 1
            done.append(shard_path(split, shard - 1))
        collected += frames
        missing = cfg.target_frames(split) - frames
        if missing > 0:  # these shards are all needed even if every episode runs its full length
            todo += [(split, shard + i) for i in range(math.ceil(missing / per_shard))]
    return todo, done, collected


def _collect_job(job: tuple[str, WorldConfig, str, int]) -> int:
    return collect_shard(*job)


def collect_world(cfg: WorldConfig, show_progress: bool = True) -> dict[str, Any]:
    """Collect every missing shard, then write index.json. Returns the index."""
    cfg.validate()
    root = Path(cfg.out)
    total = round(sum(cfg.target_frames(s) for s in SPLITS))
    todo, done, collected = _plan_round(root, cfg)
    bar = tqdm(total=total, initial=min(collected, total), unit="frame", desc=f"world rollouts ({cfg.env})",
               disable=not show_progress)  # fmt: skip
    while todo:
        jobs = [(str(root), cfg, split, shard) for split, shard in todo]
        if cfg.workers == 1 or len(jobs) == 1:
            for job in jobs:
                bar.update(_collect_job(job))
        else:
            with mp.get_context("fork").Pool(min(cfg.workers, len(jobs))) as pool:
                for frames in pool.imap_unordered(_collect_job, jobs):
                    bar.update(frames)
        todo, done, collected = _plan_round(root, cfg)
    bar.close()
    env = env_class(cfg.env)
    config = asdict(cfg) | {
        "kind": "world",
        "action_names": list(env.action_names),
        "player_fields": list(env.player_fields),
        "frames": collected,
    }
    config.pop("out")
    config.pop("workers")
    return write_index(root, config, done)
