import json

import numpy as np
import pytest

from avatarlm.data.shards import iter_samples, read_index
from avatarlm.data.splits import TEST_ONLY_LANGUAGES, identity_split
from avatarlm.data.synth import SynthConfig, plan_clips, plan_shards, synthesize_dataset

LANGS = ["en", "es", "el"]  # el is test-only


def _cfg(out, **kw) -> SynthConfig:
    base = dict(
        hours=0.004,
        out=str(out),
        height=32,
        width=32,
        languages=LANGS,
        clips_per_shard=1,
        clip_seconds=(3.0, 5.0),
    )
    return SynthConfig(**(base | kw))  # type: ignore[arg-type]


def test_plan_is_deterministic_and_splits_are_disjoint(tmp_path):
    cfg = _cfg(tmp_path, hours=0.5)
    specs = plan_clips(cfg)
    assert specs == plan_clips(cfg)
    assert specs != plan_clips(_cfg(tmp_path, hours=0.5, seed=1))
    assert sum(s.duration for s in specs) >= 1800
    ids = {split: {s.identity_seed for s in specs if s.split == split} for split in ("train", "val", "test")}
    assert ids["train"] and ids["val"] and ids["test"]
    assert not (ids["train"] & ids["val"]) and not (ids["train"] & ids["test"])
    assert not ids["val"] & ids["test"]
    assert all(identity_split(s.identity_seed) == s.split for s in specs)
    for s in specs:
        if s.language in TEST_ONLY_LANGUAGES:
            assert s.split == "test"
    assert any(s.language == "el" for s in specs)
    # More hours extend the same plan: the first clips do not change.
    assert plan_clips(_cfg(tmp_path, hours=0.6))[: len(specs)] == specs


def test_synth_writes_index_and_resumes(tmp_path):
    cfg = _cfg(tmp_path / "ds")
    index = synthesize_dataset(cfg, show_progress=False)
    plans = plan_shards(cfg)
    assert [s["path"] for s in index["shards"]] == [p.path for p in plans]
    samples = list(iter_samples(tmp_path / "ds"))
    assert len(samples) == sum(len(p.clips) for p in plans) >= 2
    for s in samples:
        assert s.frames.dtype == np.uint8 and s.frames.shape[1:] == (32, 32, 3)
        assert len(s.audio["self"]) == pytest.approx(len(s.frames) / 25 * 16000, abs=700)
        assert s.truth["face"].shape[0] == len(s.frames)
    # Resume: a finished shard is not rewritten; a deleted one is re-rendered identically.
    first = tmp_path / "ds" / plans[0].path
    mtime = first.stat().st_mtime_ns
    other = tmp_path / "ds" / plans[-1].path
    before = list(iter_samples(tmp_path / "ds"))[-1]
    other.unlink()
    synthesize_dataset(cfg, show_progress=False)
    assert first.stat().st_mtime_ns == mtime
    after = list(iter_samples(tmp_path / "ds"))[-1]
    np.testing.assert_array_equal(before.frames, after.frames)
    np.testing.assert_array_equal(before.audio["self"], after.audio["self"])
    assert read_index(tmp_path / "ds")["config"]["seed"] == 0


def test_interrupted_run_leaves_no_complete_looking_shard(tmp_path, monkeypatch):
    cfg = _cfg(tmp_path / "ds")
    import avatarlm.data.synth as synth

    calls = {"n": 0}
    real = synth.make_clip

    def failing(spec):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(spec)

    monkeypatch.setattr(synth, "make_clip", failing)
    with pytest.raises(KeyboardInterrupt):
        synthesize_dataset(cfg, show_progress=False)
    root = tmp_path / "ds"
    assert not (root / "index.json").exists()
    assert not list(root.rglob("*.tmp"))
    tars = list(root.rglob("*.tar"))
    assert len(tars) == 1 and tars[0].with_suffix(".json").exists()
    monkeypatch.setattr(synth, "make_clip", real)
    index = synthesize_dataset(cfg, show_progress=False)
    assert len(index["shards"]) == len(plan_shards(cfg))
    json.loads((root / "index.json").read_text())


def test_head_turns_mark_a_share_of_clips_and_leave_the_rest_of_the_plan():
    plain = plan_clips(_cfg("unused", hours=0.5))
    assert not any(s.head_turns for s in plain)
    turning = plan_clips(_cfg("unused", hours=0.5, head_turn_fraction=0.5))
    share = np.mean([s.head_turns for s in turning])
    assert 0.3 < share < 0.7
    assert all(s.head_turns for s in plan_clips(_cfg("unused", hours=0.1, head_turn_fraction=1.0)))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"head_turn_fraction": 1.5}, "--head-turns"),
        ({"hours": 0}, "--hours must be a positive"),
        ({"hours": -1.0}, "--hours must be a positive"),
        ({"languages": ["en", "xx"]}, "unknown language 'xx'"),
        ({"workers": 0}, "--workers"),
        ({"height": 30, "width": 30}, "multiple of 8"),
    ],
)
def test_bad_config_is_refused_before_writing(tmp_path, changes, message):
    with pytest.raises(ValueError, match=message):
        synthesize_dataset(_cfg(tmp_path / "ds", **changes), show_progress=False)
    assert not (tmp_path / "ds" / "index.json").exists()


def test_unwritable_folder(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ValueError, match="cannot write to output folder"):
        synthesize_dataset(_cfg(blocker / "ds"), show_progress=False)
