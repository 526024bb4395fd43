import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from ar_helpers import TAG, ae_config, encoded_dataset, train_config
from avatarlm.autoencoder.model import DCAutoencoder
from avatarlm.cli import main
from avatarlm.model import ARModel
from avatarlm.trainer.ar import train_ar, window_sampler
from avatarlm.trainer.ar_config import ARTrainConfig
from avatarlm.trainer.ar_data import load_ar_clips


@pytest.fixture(scope="module")
def clips(tiny_dataset):
    encoded_dataset(tiny_dataset)
    return load_ar_clips(tiny_dataset, TAG, "train", progress=False)


def sampler_for(cfg, clips):
    return window_sampler(cfg, clips)


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module, atol: float = 0.0) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        if atol == 0.0:
            assert torch.equal(sa[k], sb[k]), k
        else:
            torch.testing.assert_close(sa[k], sb[k], atol=atol, rtol=0, msg=k)


def test_training_lowers_the_loss_and_writes_its_outputs(clips, tmp_path):
    cfg = train_config(lr=2e-3, warmup_steps=5, checkpoint_every=20, val_every=10, ema_decay=0.9)
    sampler = sampler_for(cfg, clips)
    model = train_ar(cfg, sampler, tmp_path, 40, val_sampler=sampler, progress=False)
    rows = list(csv.DictReader((tmp_path / "loss.csv").open()))
    assert [int(r["step"]) for r in rows] == list(range(1, 41))
    first = np.mean([float(r["loss"]) for r in rows[:5]])
    last = np.mean([float(r["loss"]) for r in rows[-5:]])
    assert last < 0.7 * first, (first, last)
    vals = [float(r["val_loss"]) for r in rows if r["val_loss"]]
    assert len(vals) == 4 and vals[-1] < vals[0]
    assert (tmp_path / "loss.png").stat().st_size > 5000
    loaded = ARModel.from_pretrained(tmp_path / "model")
    assert_same_weights(loaded, model)


@pytest.mark.parametrize(
    "own",
    [
        {},
        {"own_history": 0.5},
        {"own_history": 1.0, "own_history_mode": "rollout"},
        {"pose_loss_weights": (4.0, 0.0, 4.0)},
    ],
)  # teacher forcing; history frames or whole windows of the model's own; the head's turn weighed more
def test_resume_after_a_stop_is_bit_exact(clips, tmp_path, own):
    cfg = train_config(**own)
    sampler = sampler_for(cfg, clips)
    whole = train_ar(cfg, sampler, tmp_path / "whole", 6, progress=False)
    train_ar(cfg, sampler, tmp_path / "cut", 6, progress=False, stop_after=3)  # checkpoint at 2 only
    assert not (tmp_path / "cut" / "model").exists()
    resumed = train_ar(cfg, sampler, tmp_path / "cut", 6, progress=False)
    assert_same_weights(resumed, whole)
    rows = list(csv.DictReader((tmp_path / "cut" / "loss.csv").open()))
    assert [int(r["step"]) for r in rows] == list(range(1, 7))  # the repeated step 3 is not duplicated


def test_two_gloo_processes_match_one_process(tiny_dataset, tmp_path):
    ae = encoded_dataset(tiny_dataset)
    cfg = train_config(batch_size=4, micro_batch=2, checkpoint_every=3)
    base = ["train", "ar", "--data", str(tiny_dataset), "--ae", str(ae), "--tag", TAG, "--steps", "3"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cfg_file = tmp_path / "preset.json"
    cfg_file.write_text(json.dumps(cfg.to_dict()))
    one = [
        sys.executable,
        "-m",
        "avatarlm.cli",
        *base,
        "--out",
        str(tmp_path / "one"),
        "--preset",
        str(cfg_file),
    ]
    two = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "avatarlm.cli", *base, "--out", str(tmp_path / "two"), "--preset", str(cfg_file)]  # fmt: skip
    for cmd in (one, two):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
    a = ARModel.from_pretrained(tmp_path / "one" / "pipeline" / "ar")
    b = ARModel.from_pretrained(tmp_path / "two" / "pipeline" / "ar")
    assert_same_weights(a, b, atol=1e-5)  # the all-reduce sums in another order


def test_config_checks_and_overrides():
    cfg = ARTrainConfig.preset("tiny")
    assert cfg.lr_at(0, 1000) < cfg.lr_at(cfg.warmup_steps - 1, 1000) == pytest.approx(cfg.lr)
    assert cfg.lr_at(999, 1000) == pytest.approx(cfg.lr * cfg.min_lr_ratio, rel=1e-3)
    changed = cfg.with_overrides({"lr": 1e-3, "model.backbone.num_layers": 2})
    assert changed.lr == 1e-3 and changed.model.backbone.num_layers == 2
    with pytest.raises(ValueError, match="unknown field 'nope'"):
        cfg.with_overrides({"model.nope": 1})
    with pytest.raises(ValueError, match="multiple of micro_batch"):
        train_config(batch_size=3, micro_batch=2)
    with pytest.raises(ValueError, match="ema_decay"):
        train_config(ema_decay=1.0)


def test_train_ar_takes_the_mouth_channels_from_the_autoencoder(tiny_dataset, tmp_path):
    """`train ar` on an autoencoder with mouth channels: the AR model learns which channels they are, so
    `--set model.mouth_loss_weight=W` alone weighs them; a contradicting count is refused."""
    encoded_dataset(tiny_dataset)
    ae = DCAutoencoder(ae_config().with_overrides({"mouth_channels": 2})).save_pretrained(tmp_path / "ae")
    preset = tmp_path / "preset.json"
    preset.write_text(json.dumps(train_config().to_dict()))
    base = ["train", "ar", "--data", str(tiny_dataset), "--ae", str(ae), "--tag", TAG, "--steps", "1",
            "--preset", str(preset)]  # fmt: skip
    assert main([*base, "--out", str(tmp_path / "run"), "--set", "model.mouth_loss_weight=4"]) == 0
    cfg = ARModel.from_pretrained(tmp_path / "run" / "pipeline" / "ar").config
    assert (cfg.mouth_channels, cfg.mouth_loss_weight) == (2, 4.0)
    assert main([*base, "--out", str(tmp_path / "bad"), "--set", "model.mouth_channels=3"]) == 2
