import importlib.util
import json

import numpy as np
import pytest

from avatarlm.cli import main
from avatarlm.data.frame_sampler import FrameSampler
from avatarlm.data.shards import iter_samples, read_index
from avatarlm.data.world import (
    NO_ACTION,
    EpisodeSpec,
    WorldConfig,
    collect_episode,
    collect_world,
    episode_split,
    shard_episodes,
    shard_path,
)
from avatarlm.data.world_envs import ExploreActions, InsertionOrderedSet, StepResult, make_env
from avatarlm.data.world_policy import ExplorationConfig, exploration_actions

ENVS = ["crafter", "vizdoom"]
# Crafter builds a 64x64 world per episode (about 2 s): its episodes stay few and short.
STEPS = {"crafter": 30, "vizdoom": 60}


def _cfg(env: str, out, **kw) -> WorldConfig:
    base = dict(env=env, hours=0.002, out=str(out), size=32, episode_steps=STEPS[env], episodes_per_shard=1)
    return WorldConfig(**(base | kw))  # type: ignore[arg-type]


def _spec(cfg: WorldConfig, i: int) -> EpisodeSpec:
    return shard_episodes(cfg, "train", i)[0]


def _assert_same_episode(a, b) -> None:
    assert a.ended == b.ended
    np.testing.assert_array_equal(a.frames, b.frames)
    np.testing.assert_array_equal(a.actions, b.actions)
    np.testing.assert_array_equal(a.player, b.player)


@pytest.mark.parametrize("name", ENVS)
def test_episodes_are_deterministic_per_seed_and_differ_across_seeds(tmp_path, name):
    cfg = _cfg(name, tmp_path)
    env = make_env(name, cfg.size, cfg.fps)
    try:
        first = collect_episode(env, _spec(cfg, 0), cfg)
        other = collect_episode(env, _spec(cfg, 1), cfg)
        again = collect_episode(env, _spec(cfg, 0), cfg)  # the same env object, reset to the first seed
    finally:
        env.close()
    _assert_same_episode(first, again)
    assert first.frames.shape[1:] == (32, 32, 3) and first.frames.dtype == np.uint8
    assert first.actions[0] == NO_ACTION and len(first.actions) == len(first.frames) == len(first.player)
    assert not np.array_equal(first.actions, other.actions[: len(first.actions)])
    n = min(len(first.frames), len(other.frames))
    assert not np.array_equal(first.frames[:n], other.frames[:n])
    assert (
        len(np.unique(first.frames.reshape(len(first.frames), -1), axis=0)) > len(first.frames) // 4
    )  # it moves


def test_crafter_keeps_the_creatures_of_a_chunk_in_the_order_they_came():
    """Not in memory order (Crafter's own sets), which made a seed's episode differ between runs."""
    env = make_env("crafter", 32, 15.0)
    env.reset(3)
    world = env._env._world  # type: ignore[attr-defined]
    assert world._chunks and all(isinstance(c, InsertionOrderedSet) for c in world._chunks.values())
    for creatures in world.chunks.values():  # no moves yet: the order they were added to the world
        assert list(creatures) == [o for o in world.objects if o in creatures]
    ordered = InsertionOrderedSet()
    for item in (3, 1, 2):
        ordered.add(item)
    ordered.remove(1)
    assert list(ordered) == [3, 2]


@pytest.mark.parametrize("name", ENVS)
def test_replaying_the_recorded_actions_from_the_episode_seed_gives_the_same_frames(tmp_path, name):
    cfg = _cfg(name, tmp_path)
    spec = _spec(cfg, 2)
    recorder = make_env(name, cfg.size, cfg.fps)
    try:
        episode = collect_episode(recorder, spec, cfg)
    finally:
        recorder.close()
    fresh = make_env(name, cfg.size, cfg.fps)
    try:
        frame, player = fresh.reset(spec.seed)
        frames, players = [frame], [player]
        for action in episode.actions[1:]:
            step = fresh.step(int(action))
            assert step.frame is not None and step.player is not None
            frames.append(step.frame)
            players.append(step.player)
    finally:
        fresh.close()
    np.testing.assert_array_equal(np.stack(frames), episode.frames)
    np.testing.assert_array_equal(np.stack(players), episode.player)


class _ScriptedEnv:
    """A fake game that ends on step ``end``, with or without a last frame (as Crafter / ViZDoom do)."""

    name = "fake"
    size = 8
    action_names = ("a", "b", "c")
    player_fields = ("t",)
    explore = ExploreActions(walk=("a",), turn=("b", "c"))

    def __init__(self, end: int, last_frame: bool):
        self.end, self.last_frame, self.t = end, last_frame, 0

    def _frame(self) -> np.ndarray:
        return np.full((8, 8, 3), self.t, np.uint8)

    def reset(self, seed: int):
        self.t = 0
        return self._frame(), np.zeros(1, np.float32)

    def step(self, action: int) -> StepResult:
        self.t += 1
        done = self.t == self.end
        if done and not self.last_frame:
            return StepResult(None, None, True, 1.0)
        return StepResult(self._frame(), np.array([self.t], np.float32), done, 0.5)

    def close(self) -> None:
        pass


@pytest.mark.parametrize(
    ("end", "last_frame", "frames", "ended"),
    [(100, True, 11, "truncated"), (4, True, 5, "terminated"), (4, False, 4, "terminated")],
)
def test_episodes_end_at_episode_steps_or_when_the_game_ends(tmp_path, end, last_frame, frames, ended):
    cfg = WorldConfig(env="crafter", hours=1, out=str(tmp_path), episode_steps=10)
    episode = collect_episode(_ScriptedEnv(end, last_frame), EpisodeSpec("ep-0000000", 7, "train"), cfg)  # type: ignore[arg-type]
    assert episode.ended == ended and len(episode.frames) == frames
    np.testing.assert_array_equal(episode.frames[:, 0, 0, 0], np.arange(frames))  # no frame lost or repeated
    np.testing.assert_array_equal(episode.player[:, 0], np.arange(frames))
    assert episode.actions[0] == NO_ACTION and np.all(episode.actions[1:] >= 0)
    policy = exploration_actions(cfg.exploration, _ScriptedEnv.action_names, _ScriptedEnv.explore, 7)
    np.testing.assert_array_equal(episode.actions[1:], [next(policy) for _ in range(frames - 1)])
    assert episode.reward[0] == 0 and np.all(episode.reward[1:] == 0.5)


def test_exploration_holds_actions_and_mixes_scripted_walks():
    names = ("noop", "forward", "turn_left", "turn_right", "attack")
    explore = ExploreActions(walk=("forward",), turn=("turn_left", "turn_right"))
    stream = exploration_actions(ExplorationConfig(), names, explore, seed=3)
    actions = np.array([next(stream) for _ in range(4000)])
    again = exploration_actions(ExplorationConfig(), names, explore, seed=3)
    np.testing.assert_array_equal(actions, [next(again) for _ in range(4000)])
    runs = np.diff(np.flatnonzero(np.diff(actions, prepend=-1, append=-1)))
    assert runs.mean() > 3  # persistence: actions are held, not redrawn every step
    assert np.mean(actions == 1) > 0.4  # scripted walks make "forward" the most common action
    assert set(actions.tolist()) == set(range(len(names)))  # random segments reach every action
    only_random = exploration_actions(ExplorationConfig(scripted_fraction=0.0, max_hold=1), names, explore, 3)
    assert abs(np.mean([next(only_random) == 1 for _ in range(4000)]) - 0.2) < 0.03
    with pytest.raises(ValueError, match="walk_steps"):
        ExplorationConfig(walk_steps=(5, 2)).validate()


def _dataset(out, **kw) -> tuple[WorldConfig, dict]:
    cfg = _cfg("vizdoom", out, **kw)
    return cfg, collect_world(cfg, show_progress=False)


def test_world_dataset_resumes_is_deterministic_and_loads_through_the_dataset_readers(tmp_path):
    cfg, index = _dataset(tmp_path / "a")
    root = tmp_path / "a"
    assert read_index(root)["config"]["kind"] == "world"
    assert {s["split"] for s in index["shards"]} == {"train", "val", "test"}
    for split in ("train", "val", "test"):  # each split: the shortest run of shards reaching its share
        counts = [sum(e["n_frames"] for e in s["samples"]) for s in index["shards"] if s["split"] == split]
        assert sum(counts) >= cfg.target_frames(split) > sum(counts[:-1])
    samples = list(iter_samples(root))
    assert index["config"]["frames"] == sum(len(s.frames) for s in samples)
    for s in samples:
        assert s.frames.dtype == np.uint8 and s.frames.shape[1:] == (32, 32, 3) and s.audio == {}
        assert s.truth["action"].shape == (len(s.frames),) and s.truth["action"][0] == NO_ACTION
        assert s.truth["player"].shape == (len(s.frames), 4) and s.meta["player_fields"][-1] == "angle"
        assert episode_split(s.meta["episode_seed"]) == s.meta["split"]
        assert s.meta["ended"] in ("terminated", "truncated") and s.meta["env"] == "vizdoom"
    assert FrameSampler(root, "train", window=4).frame_shape == (32, 32, 3)

    # Same seed, two workers: the same data. Another seed: other data.
    _dataset(tmp_path / "b", workers=2)
    for a, b in zip(samples, iter_samples(tmp_path / "b"), strict=True):
        assert a.key == b.key and a.meta == b.meta
        np.testing.assert_array_equal(a.frames, b.frames)
        np.testing.assert_array_equal(a.truth["action"], b.truth["action"])
    _, other = _dataset(tmp_path / "c", seed=1)
    assert other["shards"][0]["samples"][0]["seed"] != index["shards"][0]["samples"][0]["seed"]

    # Resume: a finished shard is kept as is, a deleted one comes back the same.
    first, last = root / index["shards"][0]["path"], root / index["shards"][-1]["path"]
    mtime, before = first.stat().st_mtime_ns, samples[-1]
    last.unlink()
    assert collect_world(cfg, show_progress=False) == index
    assert first.stat().st_mtime_ns == mtime
    after = list(iter_samples(root))[-1]
    np.testing.assert_array_equal(before.frames, after.frames)
    np.testing.assert_array_equal(before.truth["player"], after.truth["player"])


def test_the_autoencoder_encodes_world_shards(tmp_path):
    from ae_helpers import small_config
    from avatarlm.autoencoder.latent_cache import encode_dataset, load_latents
    from avatarlm.autoencoder.model import DCAutoencoder

    cfg, index = _dataset(tmp_path / "ds", hours=0.0005)
    assert encode_dataset(DCAutoencoder(small_config()), tmp_path / "ds", "tiny", show_progress=False) == len(
        index["shards"]
    )
    latents = load_latents(tmp_path / "ds", "tiny", "train")
    for sample in iter_samples(tmp_path / "ds", "train"):
        assert latents[sample.key].shape[0] == len(sample.frames)


def test_shards_hold_the_episodes_of_their_split_in_order(tmp_path):
    cfg = _cfg("crafter", tmp_path, episodes_per_shard=3)
    for split in ("train", "val", "test"):
        episodes = [e for j in range(3) for e in shard_episodes(cfg, split, j)]
        assert len(episodes) == 9 and all(e.split == split == episode_split(e.seed) for e in episodes)
        assert [e.key for e in episodes] == sorted(e.key for e in episodes)
    keys = [e.key for s in ("train", "val", "test") for e in shard_episodes(cfg, s, 0)]
    assert len(set(keys)) == len(keys)
    assert shard_path("val", 3) == "val/shard-00003.tar"
    splits = [episode_split(i) for i in range(5000)]
    assert abs(splits.count("train") / 5000 - 0.8) < 0.03 and abs(splits.count("test") / 5000 - 0.1) < 0.02


def test_no_action_matches_the_action_encoder():
    from avatarlm.conditions.action import NO_ACTION as ENCODER_NO_ACTION

    assert NO_ACTION == ENCODER_NO_ACTION


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--env", "minecraft", "--hours", "1"], "unknown environment 'minecraft'"),
        (["--env", "crafter", "--hours", "0"], "--hours must be a positive number"),
        (["--env", "crafter", "--hours", "nan"], "--hours must be a positive number"),
        (["--env", "vizdoom", "--hours", "1", "--size", "60"], "--size must be a multiple of 8"),
        (["--env", "vizdoom", "--hours", "1", "--episode-steps", "0"], "--episode-steps must be at least 1"),
        (["--env", "crafter", "--hours", "1", "--workers", "0"], "--workers must be at least 1"),
        (["--env", "crafter", "--hours", "1", "--fps", "0"], "--fps must be in (0, 35]"),
    ],
)
def test_world_bad_arguments_exit_2_with_one_message(tmp_path, capsys, args, message):
    out = tmp_path / "ds"
    assert main(["data", "world", "--out", str(out), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("avatarlm: error: ") and message in err and err.count("\n") == 1
    assert not (out / "index.json").exists()


@pytest.mark.parametrize(("env", "pip"), [("crafter", "crafter==1.8.3"), ("vizdoom", "vizdoom==1.3.2")])
def test_a_missing_game_package_names_its_pip_command(tmp_path, capsys, monkeypatch, env, pip):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == env else real(name, *a))
    assert main(["data", "world", "--env", env, "--hours", "1", "--out", str(tmp_path / "ds")]) == 2
    err = capsys.readouterr().err
    assert f"pip install {pip}" in err and err.count("\n") == 1
    assert not (tmp_path / "ds").exists()


def test_world_command_writes_a_dataset(tmp_path, capsys):
    out = tmp_path / "ds"
    args = ["data", "world", "--env", "vizdoom", "--hours", "0.001", "--out", str(out), "--size", "32"]
    assert (
        main([*args, "--episode-steps", "40", "--fps", "17.5", "--seed", "4", "--episodes-per-shard", "1"])
        == 0
    )
    assert "episodes" in capsys.readouterr().out
    config = json.loads((out / "index.json").read_text())["config"]
    assert config["env"] == "vizdoom" and config["fps"] == 17.5 and config["seed"] == 4
    assert config["action_names"][:2] == ["noop", "forward"] and config["episode_steps"] == 40
