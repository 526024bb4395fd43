"""FSDP2 (``sharding=fsdp``) under torchrun with 2 gloo processes: the same training as one process, through a
stop and a resume, with whole checkpoints."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from ar_helpers import TAG, encoded_dataset, train_config
from avatarlm.io import load_tensors
from avatarlm.model import ARModel
from avatarlm.trainer.ar_config import ARTrainConfig
from avatarlm.trainer.checkpoint import latest_checkpoint
from avatarlm.trainer.sharding import clip_gradients


def run(cmd: list[str]) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-6000:]


def test_two_fsdp_processes_match_one_process_through_a_resume(tiny_dataset, tmp_path):
    ae = encoded_dataset(tiny_dataset)
    preset = tmp_path / "preset.json"
    cfg = train_config(batch_size=4, micro_batch=2, checkpoint_every=3, sharding="fsdp")
    preset.write_text(json.dumps(cfg.to_dict()))
    base = ["-m", "avatarlm.cli", "train", "ar", "--data", str(tiny_dataset), "--ae", str(ae), "--tag", TAG,
            "--preset", str(preset)]  # fmt: skip
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    for steps in ("3", "6"):  # 3 steps, then the same command resumed to 6 (another schedule: a new run)
        run([sys.executable, *base, "--out", str(tmp_path / "one"), "--steps", steps])
        run([*torchrun, *base, "--out", str(tmp_path / "two"), "--steps", steps])
    a = ARModel.from_pretrained(tmp_path / "one" / "pipeline" / "ar")
    b = ARModel.from_pretrained(tmp_path / "two" / "pipeline" / "ar")
    for k, v in a.state_dict().items():
        torch.testing.assert_close(b.state_dict()[k], v, atol=2e-5, rtol=0, msg=k)
    # The sharded run's checkpoint is whole, in the one-process format: weights and Adam moments agree.
    one, _ = load_tensors(latest_checkpoint(tmp_path / "one" / "checkpoints") / "tensors.safetensors")
    two, _ = load_tensors(latest_checkpoint(tmp_path / "two" / "checkpoints") / "tensors.safetensors")
    assert one.keys() == two.keys() and any(".exp_avg_sq" in k for k in one)
    for k in one:
        if k != "rng.torch":
            torch.testing.assert_close(two[k], one[k], atol=2e-5, rtol=1e-4, msg=k)


def test_clip_gradients_on_whole_tensors_matches_torch():
    torch.manual_seed(0)
    a = [torch.nn.Parameter(torch.randn(5, 3)) for _ in range(3)]
    b = [torch.nn.Parameter(p.detach().clone()) for p in a]
    for p, q in zip(a, b, strict=True):
        p.grad = torch.randn_like(p) * 3
        q.grad = p.grad.clone()
    norm = clip_gradients(a, 1.0)
    expected = torch.nn.utils.clip_grad_norm_(b, 1.0)
    assert norm == pytest.approx(float(expected), rel=1e-6)
    for p, q in zip(a, b, strict=True):
        torch.testing.assert_close(p.grad, q.grad, atol=1e-6, rtol=1e-5)


def test_sharding_must_be_known():
    with pytest.raises(ValueError, match="sharding"):
        ARTrainConfig(sharding="zero3").validate()
