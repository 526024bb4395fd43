import numpy as np
import pytest
import torch

from ar_helpers import ae_config
from avatarlm.autoencoder.model import DCAutoencoder
from avatarlm.data.face import FACE_STATE_FIELDS, FaceState
from avatarlm.data.splits import split_identities
from avatarlm.eval.pixel_probe import PROBED, PixelProbe, PixelProbeConfig, state_targets, unscale
from avatarlm.eval.pixel_probe_train import evaluate_probe, score_readings, train_probe


def states(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        out.append(
            FaceState(
                yaw=float(rng.uniform(-30, 30)),
                mouth_open=float(rng.uniform(0, 1)),
                blink=float(rng.choice([0.0, 1.0])),
                expression=int(rng.integers(5)),
                expression_strength=float(rng.uniform(0, 1)),
            ).to_vector()
        )
    return np.stack(out)


def test_targets_scale_by_the_renderer_limits_and_weak_expressions_read_neutral():
    s = states(50)
    controls, expression = state_targets(s)
    assert controls.shape == (50, len(PROBED)) and np.abs(controls).max() <= 1.0 + 1e-6
    yaw = s[:, FACE_STATE_FIELDS.index("yaw")]
    np.testing.assert_allclose(unscale(controls[:, PROBED.index("yaw")], "yaw"), yaw, atol=1e-4)
    weak = s[:, FACE_STATE_FIELDS.index("expression_strength")] < 0.3
    assert (expression[weak] == 0).all() and weak.sum() > 5


def test_scores_reach_the_ceiling_for_the_truth_and_zero_for_the_mean():
    s = states(80)
    controls, expression = state_targets(s)
    perfect = score_readings(controls, expression, s)
    assert all(v == pytest.approx(1.0) for v in perfect.r2.values())
    assert perfect.blink_accuracy == 1.0 and perfect.expression_accuracy == 1.0
    still = score_readings(np.repeat(controls.mean(0, keepdims=True), 80, 0), np.zeros(80, int), s)
    assert still.r2["yaw"] == pytest.approx(0.0, abs=1e-6) and still.expression_accuracy < 0.7


def test_a_short_training_learns_to_read_renders(tmp_path):
    """32x32 renders, 200 steps: the probe starts to read the head yaw of unseen faces."""
    torch.set_num_threads(2)
    cfg = PixelProbeConfig(size=32, width=8)
    before = evaluate_probe(PixelProbe(cfg), count=64, render_size=32)["renders"]
    probe = train_probe(
        cfg, tmp_path / "probe", steps=250, batch=16, lr=3e-3, render_size=32, identities=50, progress=False
    )
    after = evaluate_probe(probe, count=64, render_size=32)["renders"]
    assert after.r2["yaw"] > 0.3 and after.r2["yaw"] > before.r2["yaw"] + 0.3
    loaded = PixelProbe.from_pretrained(tmp_path / "probe")
    frames = np.zeros((3, 40, 40, 3), np.uint8)
    np.testing.assert_allclose(loaded.read(frames)[0], probe.read(frames)[0], atol=2e-2)  # fp16 folder
    with pytest.raises(ValueError, match="uint8"):
        probe.read(np.zeros((2, 32, 32, 3), np.float32))
    assert set(split_identities("test", 5)).isdisjoint(split_identities("val", 50))


def test_training_and_scoring_through_an_autoencoder(tmp_path):
    """Half of each training batch and the second score row go through the autoencoder (64x64 here)."""
    torch.manual_seed(0)
    ae = DCAutoencoder(ae_config())
    probe = train_probe(PixelProbeConfig(size=32, width=4), tmp_path / "p", steps=2, batch=4, render_size=64,
                        identities=5, progress=False, ae=ae)  # fmt: skip
    scores = evaluate_probe(probe, count=16, ae=ae, render_size=64)
    assert set(scores) == {"renders", "reconstructions"}
    assert all(np.isfinite(list(s.r2.values())).all() for s in scores.values())


def test_a_stopped_training_leaves_the_probe_it_last_saved(tmp_path, monkeypatch):
    """The folder is written every ``save_every`` steps: stopped during step 5, the step-4 probe is there."""
    from avatarlm.eval import pixel_probe_train

    saves: list[dict[str, torch.Tensor]] = []
    real_save, real_targets = PixelProbe.save_pretrained, pixel_probe_train.state_targets

    def recording_save(self, folder):
        saves.append({k: v.detach().clone() for k, v in self.state_dict().items()})
        return real_save(self, folder)

    def stop_at_step_5(states):
        if len(saves) == 2:  # step 5 begins after the second save
            raise KeyboardInterrupt
        return real_targets(states)

    monkeypatch.setattr(PixelProbe, "save_pretrained", recording_save)
    monkeypatch.setattr(pixel_probe_train, "state_targets", stop_at_step_5)
    cfg = PixelProbeConfig(size=32, width=4)
    with pytest.raises(KeyboardInterrupt):
        train_probe(cfg, tmp_path / "p", steps=6, batch=4, render_size=32, identities=5, progress=False,
                    save_every=2)  # fmt: skip
    assert len(saves) == 2  # after steps 2 and 4
    loaded = PixelProbe.from_pretrained(tmp_path / "p").state_dict()
    assert all(torch.allclose(loaded[k], saves[1][k].float(), atol=1e-2) for k in loaded)  # fp16 folder
    assert any(not torch.equal(saves[0][k], saves[1][k]) for k in loaded)
    with pytest.raises(ValueError, match="save_every"):
        train_probe(cfg, tmp_path / "x", steps=2, batch=4, save_every=0)


def test_the_bundled_probe_reads_unseen_faces():
    from pathlib import Path

    models = Path(__file__).resolve().parents[2] / "models"
    probe = PixelProbe.from_pretrained(models / "probe")
    scores = evaluate_probe(probe, count=64, ae=DCAutoencoder.from_pretrained(models / "tiny" / "ae"))
    clean, recon = scores["renders"], scores["reconstructions"]
    assert min(clean.r2[n] for n in ("mouth_open", "yaw", "pitch", "roll")) > 0.9, clean
    assert clean.blink_accuracy > 0.9 and clean.expression_accuracy > 0.75, clean
    # through the bundled autoencoder, each frame read with a picture of the same face
    assert min(recon.r2[n] for n in ("mouth_open", "yaw", "pitch", "roll")) > 0.8, recon
