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
