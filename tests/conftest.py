import pytest

from avatarlm.data.synth import SynthConfig, synthesize_dataset


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """A few short 64x64 clips in train and test splits (about 3 s to render)."""
    root = tmp_path_factory.mktemp("dataset")
    cfg = SynthConfig(
        hours=0.012,
        out=str(root),
        height=64,
        width=64,
        languages=["en", "es", "it"],
        clips_per_shard=2,
        clip_seconds=(3.0, 4.0),
        seed=3,
    )
    synthesize_dataset(cfg, show_progress=False)
    return root


@pytest.fixture(scope="session")
def videos(tmp_path_factory):
    """The ingestion tests' videos (tests/data/ingest_videos.py), made once per session (about 10 s)."""
    from ingest_videos import make_videos

    return make_videos(tmp_path_factory.mktemp("videos"))
