import pytest

from ar_helpers import random_pipeline_folder
from avatarlm.pipeline.folder import load_pipeline


@pytest.fixture(scope="module")
def random_pipeline(tmp_path_factory):
    """A 64x64 pipeline with random weights (delta target, head opened), saved as a folder."""
    return random_pipeline_folder(tmp_path_factory.mktemp("pipe"))


@pytest.fixture(scope="module")
def pipe(random_pipeline):
    return load_pipeline(random_pipeline)
