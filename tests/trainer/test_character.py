"""`avatarlm train character` end to end on a 64x64 random pipeline: ingestion of the person's videos, the
decoder-only autoencoder fine-tune, the AR fine-tune, the new pipeline and the before/after figures."""

from __future__ import annotations

import json

import numpy as np
import torch

from ar_helpers import random_pipeline_folder
from avatarlm.cli import main
from avatarlm.media import read_mp4
from avatarlm.pipeline.folder import load_pipeline
from avatarlm.trainer.character import run_character_training


def test_character_fine_tune_writes_a_pipeline_and_before_after_figures(videos, tmp_path):
    init = random_pipeline_folder(tmp_path)
    out = tmp_path / "run"
    path = run_character_training(init, [str(videos["talking"]), str(videos["two_shots"])], out,
                                  ae_steps=3, ar_steps=2, eval_seconds=2.0, progress=False)  # fmt: skip
    before, after = load_pipeline(init), load_pipeline(path)
    # The decoder learned; the encoder and the latent normalisation did not move (the AR model's latents
    # stay valid), and the AR model was fine-tuned from the init weights.
    b, a = before.autoencoder.state_dict(), after.autoencoder.state_dict()
    assert all(torch.equal(b[k], a[k]) for k in b if k.startswith("encoder."))
    assert any(not torch.equal(b[k], a[k]) for k in b if k.startswith("decoder."))
    assert before.autoencoder.config.latent_shift == after.autoencoder.config.latent_shift
    assert any(not torch.equal(v, after.model.state_dict()[k]) for k, v in before.model.state_dict().items())
    figures = json.loads((out / "character.json").read_text())
    assert figures["held_out"] == [str(videos["two_shots"])]  # the last of two videos
    for when in ("before", "after"):
        clips = figures[when]["clips"]
        assert len(clips) == 2 and all(c["frames"] == 50 for c in clips)  # both shots, 2 s each
        assert all(np.isfinite(c["reconstruction_psnr"]) and np.isfinite(c["session_psnr"]) for c in clips)
    assert "| autoencoder reconstruction PSNR, dB |" in (out / "character.md").read_text()
    frames, _ = read_mp4(out / "before_after.mp4")
    assert frames.shape == (50, 64, 3 * 64, 3)  # footage | before | after


def test_character_without_usable_footage_fails_clearly(videos, tmp_path, capsys):
    init = random_pipeline_folder(tmp_path)
    args = [
        "train",
        "character",
        "--model",
        str(init),
        "--video",
        str(videos["mute"]),
        "--out",
        str(tmp_path / "r"),
    ]
    assert main(args) == 2
    assert (
        "could be used" in capsys.readouterr().err
        and "no audio track" in (tmp_path / "r" / "footage" / "ingest_report.json").read_text()
    )
