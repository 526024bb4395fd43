import pytest
import torch

from ar_helpers import ae_config, ar_config, open_head
from avatarlm.autoencoder.model import DCAutoencoder
from avatarlm.model import ARModel
from avatarlm.pipeline.folder import load_pipeline, save_pipeline


@pytest.fixture(scope="module")
def random_pipeline(tmp_path_factory):
    """A 64x64 pipeline with random weights (delta target, head opened), saved as a folder."""
    root = tmp_path_factory.mktemp("pipe")
    torch.manual_seed(0)
    ae = DCAutoencoder(ae_config()).save_pretrained(root / "ae")
    return save_pipeline(root / "pipeline", ae, open_head(ARModel(ar_config(target="delta")), 0.05), "test")


@pytest.fixture(scope="module")
def pipe(random_pipeline):
    return load_pipeline(random_pipeline)
