"""Shared fixtures of the evaluation tests."""

import pytest

from ar_helpers import random_pipeline_folder
from avatarlm.data.world import WorldConfig, collect_world

DOOM_ACTIONS = 11


@pytest.fixture(scope="session")
def doom(tmp_path_factory):
    """A few recorded 64x64 ViZDoom episodes of 60 steps and a random world model of its 11 actions."""
    pytest.importorskip("vizdoom")
    root = tmp_path_factory.mktemp("doom")
    data = root / "data"
    cfg = WorldConfig(
        env="vizdoom", hours=0.004, out=str(data), size=64, episode_steps=60, episodes_per_shard=2
    )
    collect_world(cfg, show_progress=False)
    model = random_pipeline_folder(root, modalities=("action",), num_actions=DOOM_ACTIONS)
    return data, model
