"""AR training on world rollouts: windows carry the recorded action ids as the model's only condition."""

import csv
from dataclasses import replace

import numpy as np
import pytest
import torch

from ar_helpers import TAG, ar_config, encoded_dataset, train_config
from avatarlm.ar_config import ARConfig
from avatarlm.data.world import NO_ACTION, WorldConfig, collect_world
from avatarlm.model import ARModel
from avatarlm.trainer.ar import train_ar, window_sampler
from avatarlm.trainer.ar_config import ARTrainConfig
from avatarlm.trainer.ar_data import load_ar_clips

pytest.importorskip("crafter")

CRAFTER_ACTIONS = 17


@pytest.fixture(scope="module")
def world_clips(tmp_path_factory):
    """A few 31-frame Crafter episodes at 64x64 with latents from the test autoencoder."""
    root = tmp_path_factory.mktemp("crafter")
    collect_world(
        WorldConfig(env="crafter", hours=0.001, out=str(root), episode_steps=30, episodes_per_shard=1),
        show_progress=False,
    )
    encoded_dataset(root)
    return load_ar_clips(root, TAG, "train", progress=False)


def world_train_config(**overrides) -> ARTrainConfig:
    model = ar_config(target="delta")
    conditions = replace(model.conditions, modalities=("action",), num_actions=CRAFTER_ACTIONS, fps=15)
    return train_config(model=replace(model, conditions=conditions), **overrides)


def test_world_presets_are_action_only():
    cfg = ARTrainConfig.preset("world")
    cond = cfg.model.conditions
    assert cond.modalities == ("action",) and cond.num_actions == CRAFTER_ACTIONS and cond.fps == 15
    assert cfg.model.backbone == ARConfig.preset("tiny").backbone


def test_windows_carry_the_recorded_actions_and_training_lowers_the_loss(world_clips, tmp_path):
    assert world_clips and all(c.audio.shape[1] == 0 for c in world_clips)
    cfg = world_train_config(lr=2e-3, warmup_steps=5, checkpoint_every=40, ema_decay=0.9)
    sampler = window_sampler(cfg, world_clips)
    windows = sampler.draw(np.random.default_rng(0), 6)
    batch = sampler.collate(windows)
    cond = batch.conditions
    assert cond.audio is None and cond.pose is None and cond.text is None
    assert cond.action is not None and cond.action.shape == (6, cfg.window_frames - 1)
    for w, ids in zip(windows, cond.action, strict=True):
        recorded = sampler.clips[w.clip].truth["action"][w.start : w.start + cfg.window_frames - 1]
        np.testing.assert_array_equal(ids.numpy(), recorded)
    assert cond.action.min() >= 0  # windows start after the first frame, so every frame has an action

    train_ar(cfg, sampler, tmp_path, 40, progress=False)
    rows = list(csv.DictReader((tmp_path / "loss.csv").open()))
    first = np.mean([float(r["loss"]) for r in rows[:5]])
    last = np.mean([float(r["loss"]) for r in rows[-5:]])
    assert last < 0.7 * first, (first, last)
    loaded = ARModel.from_pretrained(tmp_path / "model")
    assert loaded.config.conditions.modalities == ("action",)


def test_the_model_sees_the_action(world_clips):
    cfg = world_train_config()
    sampler = window_sampler(cfg, world_clips)
    batch = sampler.collate(sampler.draw(np.random.default_rng(1), 2))
    torch.manual_seed(0)
    model = ARModel(cfg.model).eval()
    with torch.no_grad():
        tokens = model.encode_conditions(batch.conditions)
        changed = replace(batch.conditions, action=(batch.conditions.action + 1) % CRAFTER_ACTIONS)
        other = model.encode_conditions(changed)
        none = model.encode_conditions(
            replace(batch.conditions, action=torch.full_like(changed.action, NO_ACTION))
        )
    assert tokens.shape[:2] == (2, cfg.window_frames - 1)
    assert not torch.allclose(tokens, other)
    per_frame = (tokens - other).abs().flatten(2).amax(-1)
    assert (per_frame > 0).all()  # every frame's tokens follow its own action
    assert not torch.allclose(tokens, none)
