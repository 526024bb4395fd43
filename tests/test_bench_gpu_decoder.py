"""``benchmarks/bench_gpu_decoder.py`` (the README's decoder-layout table) on the CPU: every mode streams the
bundled decoder through its cache, and a mode that only changes the layout draws the same frames."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
bench = importlib.import_module("bench_gpu_decoder")


def test_modes_time_the_bundled_decoder_and_layouts_keep_the_picture():
    row = bench.run("bundled", ["fp32", "tf32+cl", "bf16"], frames=2, warmup=1, device=torch.device("cpu"))
    assert row["tokens"] == 16 and row["size"] == "128x128"
    assert row["fp32"]["max_diff"] == 0 and row["tf32+cl"]["max_diff"] < 0.5  # on [0, 255]
    assert all(row[m]["ms"] > 0 for m in ("fp32", "tf32+cl", "bf16"))


def test_an_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="unknown mode"), bench.mode_context(torch.device("cpu"), "fp8"):
        pass
