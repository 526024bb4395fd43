import numpy as np
import pytest
import torch

from ar_helpers import ae_config, ar_config, open_head
from avatarlm.autoencoder.model import DCAutoencoder
from avatarlm.cli import main
from avatarlm.eval.audio_use import audio_use, token_correlations
from avatarlm.model import ARModel
from avatarlm.pipeline.folder import load_pipeline, save_pipeline


def test_token_correlations_are_per_token_pearson():
    rng = np.random.default_rng(0)
    true = rng.standard_normal((50, 3, 4))
    pred = true.copy()
    pred[:, 1] *= -2.0  # anti-correlated token
    pred[:, 2] = rng.standard_normal((50, 4))  # unrelated token
    c = token_correlations(pred, true)
    assert c[0] == pytest.approx(1.0) and c[1] == pytest.approx(-1.0) and abs(c[2]) < 0.35
    with pytest.raises(ValueError, match="one shape"):
        token_correlations(pred[:, :2], true)


def test_audio_use_reports_train_and_held_out(tiny_dataset, tmp_path, capsys):
    torch.manual_seed(0)
    ae = DCAutoencoder(ae_config()).save_pretrained(tmp_path / "ae")
    model = open_head(ARModel(ar_config(target="delta")))
    folder = save_pipeline(tmp_path / "pipe", ae, model, "test")
    report = audio_use(load_pipeline(folder), tiny_dataset, "train", max_clips=1, max_frames=30, draws=1)
    assert report.clips == 1 and report.frames == 29 and report.moving.sum() >= 4
    assert np.isfinite(report.with_audio).all() and not np.allclose(report.with_audio, report.without_audio)
    assert main(["eval", "audio-use", "--model", str(folder), "--data", str(tiny_dataset), "--clips", "1",
                 "--frames", "20", "--splits", "train"]) == 0  # fmt: skip
    assert "audio gain" in capsys.readouterr().out
    assert (
        main(["eval", "audio-use", "--model", str(folder), "--data", str(tiny_dataset), "--frames", "5"]) == 2
    )
    pose = audio_use(load_pipeline(folder), tiny_dataset, "train", 1, 30, draws=1, condition="pose")
    assert np.array_equal(pose.moving, report.moving)  # the same clip and true changes
    assert not np.allclose(pose.without_audio, report.without_audio)  # null pose, not null audio
    assert main(["eval", "audio-use", "--model", str(folder), "--data", str(tiny_dataset), "--clips", "1",
                 "--frames", "20", "--splits", "train", "--condition", "pose"]) == 0  # fmt: skip
    assert "pose gain" in capsys.readouterr().out
    with pytest.raises(ValueError, match="no action condition"):
        audio_use(load_pipeline(folder), tiny_dataset, "train", 1, 30, draws=1, condition="action")


def test_audio_use_reports_the_mouth_channels_of_a_mouth_channel_model(tiny_dataset, tmp_path, capsys):
    """On an autoencoder with mouth channels the report adds the same correlations over those channels; an
    AR model that weighs other mouth channels than its autoencoder has is refused."""
    torch.manual_seed(0)
    ae = DCAutoencoder(ae_config().with_overrides({"mouth_channels": 2})).save_pretrained(tmp_path / "ae")
    model = open_head(ARModel(ar_config(target="delta", mouth_channels=2, mouth_loss_weight=4.0)))
    folder = save_pipeline(tmp_path / "pipe", ae, model, "test")
    report = audio_use(load_pipeline(folder), tiny_dataset, "train", max_clips=1, max_frames=30, draws=1)
    assert report.mouth_with is not None and report.mouth_gain is not None
    assert not np.allclose(report.mouth_with, report.with_audio)  # two channels are not all eight
    assert len(report.row().split()) == 9
    assert main(["eval", "audio-use", "--model", str(folder), "--data", str(tiny_dataset), "--clips", "1",
                 "--frames", "20", "--splits", "train"]) == 0  # fmt: skip
    assert "mouth: with" in capsys.readouterr().out
    wrong = ARModel(ar_config(target="delta", mouth_channels=3, mouth_loss_weight=4.0))
    with pytest.raises(ValueError, match="weighs 3 mouth channels but the autoencoder has 2"):
        save_pipeline(tmp_path / "bad", ae, wrong, "test")
