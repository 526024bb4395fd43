"""The 64x64 random pipelines the server tests serve (one and two audio streams)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ar_helpers import random_pipeline_folder
from avatarlm.pipeline.folder import load_pipeline


@pytest.fixture(scope="session")
def mono_pipe(tmp_path_factory):
    return load_pipeline(random_pipeline_folder(Path(tmp_path_factory.mktemp("serve"))))


@pytest.fixture(scope="session")
def duplex_pipe(tmp_path_factory):
    return load_pipeline(random_pipeline_folder(Path(tmp_path_factory.mktemp("serve2")), audio_streams=2))


@pytest.fixture(scope="session")
def doom_pipe(tmp_path_factory):
    """A random world model of ViZDoom's 11 actions (64x64)."""
    root = Path(tmp_path_factory.mktemp("serve_world"))
    return load_pipeline(random_pipeline_folder(root, modalities=("action",), num_actions=11))
