import numpy as np
import pytest

from avatarlm.data.shards import Sample, ShardWriter, iter_samples, read_shard, shard_keys, write_index


def _sample(key: str, rng: np.random.Generator) -> Sample:
    return Sample(
        key,
        {"language": "fr", "text": "ça va très bien"},
        rng.integers(0, 256, (5, 16, 16, 3), dtype=np.uint8),
        {"self": rng.uniform(-0.5, 0.5, 800).astype(np.float32), "partner": np.zeros(800, np.float32)},
        {"face": rng.standard_normal((5, 12)).astype(np.float32)},
    )


def test_shard_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    samples = [_sample(f"clip-{i}", rng) for i in range(3)]
    with ShardWriter(tmp_path / "train" / "shard-00000.tar") as w:
        for s in samples:
            w.write(s, {"language": "fr"})
    back = list(read_shard(tmp_path / "train" / "shard-00000.tar"))
    assert [b.key for b in back] == [s.key for s in samples]
    for a, b in zip(samples, back, strict=True):
        assert a.meta == b.meta
        np.testing.assert_array_equal(a.frames, b.frames)
        np.testing.assert_array_equal(a.truth["face"], b.truth["face"])
        np.testing.assert_allclose(a.audio["self"], b.audio["self"], atol=1 / 32767)  # PCM-16
    index = write_index(tmp_path, {"seed": 1}, ["train/shard-00000.tar"])
    assert index["shards"][0]["split"] == "train"
    assert [s.key for s in iter_samples(tmp_path, "train")] == ["clip-0", "clip-1", "clip-2"]
    assert list(iter_samples(tmp_path, "test")) == []


def test_failed_shard_leaves_nothing(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "train" / "shard-00000.tar"
    with pytest.raises(RuntimeError), ShardWriter(path) as w:
        w.write(_sample("clip-0", rng))
        raise RuntimeError("killed mid-shard")
    assert shard_keys(path) is None
    assert list((tmp_path / "train").iterdir()) == []


def test_bad_key_and_missing_index(tmp_path):
    with pytest.raises(ValueError, match="must not contain"), ShardWriter(tmp_path / "s.tar") as w:
        w.write(_sample("a.b", np.random.default_rng(0)))
    with pytest.raises(FileNotFoundError, match="not an avatarlm dataset"):
        list(iter_samples(tmp_path / "nothing"))
