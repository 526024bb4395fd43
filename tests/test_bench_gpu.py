"""``benchmarks/bench_gpu.py`` (the README's GPU table) on the CPU at ``tiny``: its streaming row and its
training steps run the real session and the real trainer, and its figures are consistent."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
bench_gpu = importlib.import_module("bench_gpu")
scaling_systems = importlib.import_module("scaling_systems")

TINY = {s.name: s for s in scaling_systems.systems()}["tiny"]


def test_streaming_row_runs_the_session_on_the_pipeline_device():
    pipe = bench_gpu.build_pipeline(TINY, torch.device("cpu"))
    assert pipe.device.type == "cpu" and not pipe.model.training
    row = bench_gpu.streaming(pipe, TINY, 0.4, "fp32")
    assert row["real_time_factor"] > 0
    assert set(row["stages_ms"]) == {"conditions", "backbone+head", "window roll", "decode"}
    assert row["compute_ms"]["p50"] <= row["compute_ms"]["p95"]
    assert row["audio_to_lip_ms"]["p50"] >= row["compute_ms"]["p50"]  # waiting for the audio comes first


def test_training_steps_count_the_window_tokens_of_the_trainer():
    t = bench_gpu.training(
        TINY, torch.device("cpu"), steps=2, batch=2, micro=1, window=8, checkpointing=False
    )
    layout_tokens = 8 * (16 + 3)  # 8 frames of 16 latent tokens, each with its 3 condition tokens
    assert t["window_tokens"] == layout_tokens
    assert abs(t["tokens_per_s"] * t["step_s"] - 2 * layout_tokens) < 1e-6
    assert t["parameters"] == sum(p.numel() for p in bench_gpu.ARModel(TINY.ar).parameters())
    assert 0 < t["step_s"] < t["call_s"]
