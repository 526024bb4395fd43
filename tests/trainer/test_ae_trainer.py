from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from ae_helpers import small_config
from avatarlm.autoencoder import DCAutoencoder
from avatarlm.io import load_tensors, read_json
from avatarlm.trainer import latest_checkpoint, train_autoencoder
from avatarlm.trainer.ae_config import AETrainConfig
from avatarlm.trainer.loss_log import LossLog

AE = small_config(temporal_attention_levels=1, temporal_window=2)


def clips(rng: np.random.Generator) -> np.ndarray:
    """Noisy gradients with a moving bright square, uint8 (2, 3, 32, 32, 3)."""
    base = rng.integers(0, 256, size=(2, 1, 1, 1, 3))
    ramp = np.linspace(0, 60, 32)[None, None, :, None, None]
    out = np.clip(base + ramp + rng.normal(0, 8, size=(2, 3, 32, 32, 3)), 0, 255)
    x = rng.integers(0, 24)
    for t in range(3):
        out[:, t, 8:16, x + t : x + t + 8] = 255
    return out.astype(np.uint8)


def config(**overrides: Any) -> AETrainConfig:
    values: dict[str, Any] = dict(autoencoder=AE, lr=1e-3, warmup_steps=2, checkpoint_every=3)
    values.update(latent_stats_batches=2, gan_weight=0.05, gan_start_step=2, disc_width=8)
    values.update(overrides)
    return AETrainConfig(**values)


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_tensors(folder / "model.safetensors")[0]


def test_resume_after_kill_gives_identical_weights(tmp_path: Path) -> None:
    cfg = config(stage="joint", log_every=1)
    train_autoencoder(cfg, clips, tmp_path / "straight", steps=6, progress=False)

    calls = {"n": 0}

    def dying_clips(rng: np.random.Generator) -> np.ndarray:
        calls["n"] += 1
        if calls["n"] == 5:  # killed during step 5, after the checkpoint at step 3
            raise KeyboardInterrupt
        return clips(rng)

    with pytest.raises(KeyboardInterrupt):
        train_autoencoder(cfg, dying_clips, tmp_path / "resumed", steps=6, progress=False)
    assert latest_checkpoint(tmp_path / "resumed" / "checkpoints").name == "step_00000003"
    train_autoencoder(cfg, clips, tmp_path / "resumed", steps=6, progress=False)

    a, b = weights(tmp_path / "straight" / "model"), weights(tmp_path / "resumed" / "model")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert read_json(tmp_path / "straight" / "model" / "config.json") == read_json(
        tmp_path / "resumed" / "model" / "config.json"
    )
    # the loss curve: one row a step, the repeated steps rewritten, the same losses as the straight run
    logs = [LossLog(tmp_path / run / "loss.csv", resume_step=6) for run in ("straight", "resumed")]
    assert logs[0].series("loss") == logs[1].series("loss")
    assert logs[0].series("loss")[0] == [1, 2, 3, 4, 5, 6]
    assert (tmp_path / "resumed" / "loss.png").stat().st_size > 1000


def test_compiled_training_computes_what_eager_training_does(tmp_path: Path) -> None:
    """``compile_model`` changes how the steps run, not what they compute: the same losses and weights to
    float tolerance, under the same weight names (the model folder loads as any other)."""
    cfg = config(stage="spatial", log_every=1, gan_weight=0.0)
    train_autoencoder(cfg, clips, tmp_path / "eager", steps=3, progress=False)
    train_autoencoder(cfg, clips, tmp_path / "compiled", steps=3, progress=False, compile_model=True)
    a, b = weights(tmp_path / "eager" / "model"), weights(tmp_path / "compiled" / "model")
    assert a.keys() == b.keys()
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-4
    logs = [LossLog(tmp_path / run / "loss.csv", resume_step=3) for run in ("eager", "compiled")]
    eager_loss, compiled_loss = (log.series("loss")[1] for log in logs)
    assert compiled_loss == pytest.approx(eager_loss, rel=1e-4)
    DCAutoencoder.from_pretrained(tmp_path / "compiled" / "model")


def test_latent_stats_are_stored_and_normalise(tmp_path: Path) -> None:
    model = train_autoencoder(config(gan_weight=0.0), clips, tmp_path, steps=2, progress=False)
    saved = read_json(tmp_path / "model" / "config.json")
    assert len(saved["latent_shift"]) == 8 and len(saved["latent_scale"]) == 8
    assert (tmp_path / "train_config.json").is_file()
    loaded = DCAutoencoder.from_pretrained(tmp_path / "model")
    x = torch.from_numpy(clips(np.random.default_rng(5))).permute(0, 1, 4, 2, 3).float() / 127.5 - 1
    with torch.no_grad():
        z = loaded.encode(x)
    assert abs(z.mean().item()) < 0.5 and 0.5 < z.std().item() < 2.0
    assert model.config == loaded.config


def test_temporal_stage_trains_only_temporal_layers(tmp_path: Path) -> None:
    train_autoencoder(config(gan_weight=0.0), clips, tmp_path / "s1", steps=2, progress=False)
    cfg = config(stage="temporal", init_from=str(tmp_path / "s1" / "model"), gan_weight=0.0)
    model = train_autoencoder(cfg, clips, tmp_path / "s2", steps=2, progress=False)
    assert model.config.temporal
    before, after = weights(tmp_path / "s1" / "model"), weights(tmp_path / "s2" / "model")
    assert all(torch.equal(before[k], after[k]) for k in before)  # spatial weights frozen
    temporal = [k for k in after if ".temporal." in f".{k}"]
    assert temporal and any(after[k].abs().sum() > 0 for k in temporal if k.endswith("out.weight"))


def test_decoder_stage_keeps_encoder_and_latent_normalisation(tmp_path: Path) -> None:
    train_autoencoder(config(gan_weight=0.0), clips, tmp_path / "s1", steps=2, progress=False)
    cfg = config(stage="decoder", init_from=str(tmp_path / "s1" / "model"), gan_weight=0.0)
    train_autoencoder(cfg, clips, tmp_path / "dec", steps=3, progress=False)
    before, after = weights(tmp_path / "s1" / "model"), weights(tmp_path / "dec" / "model")
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("encoder."))
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("decoder."))
    stats = [read_json(tmp_path / d / "model" / "config.json") for d in ("s1", "dec")]
    assert (
        stats[0]["latent_shift"] == stats[1]["latent_shift"]
        and stats[0]["latent_scale"] == stats[1]["latent_scale"]
    )
    with pytest.raises(ValueError, match="init_from"):
        train_autoencoder(config(stage="decoder"), clips, tmp_path / "x", steps=1, progress=False)


def test_temporal_stage_in_the_decoder_alone_keeps_the_latents(tmp_path: Path) -> None:
    train_autoencoder(config(gan_weight=0.0), clips, tmp_path / "s1", steps=2, progress=False)
    cfg = config(
        stage="temporal",
        init_from=str(tmp_path / "s1" / "model"),
        gan_weight=0.0,
        autoencoder=AE.replace(temporal_encoder=False),
    )
    model = train_autoencoder(cfg, clips, tmp_path / "s2", steps=3, progress=False)
    assert model.config.temporal and not model.config.temporal_encoder
    after = weights(tmp_path / "s2" / "model")
    temporal = [k for k in after if ".temporal." in f".{k}"]
    assert temporal and all(k.startswith("decoder.") for k in temporal)
    assert any(after[k].abs().sum() > 0 for k in temporal if k.endswith("out.weight"))  # it learned time
    saved = [read_json(tmp_path / d / "model" / "config.json") for d in ("s1", "s2")]
    assert saved[0]["latent_shift"] == saved[1]["latent_shift"]  # normalisation kept, not re-estimated
    before = DCAutoencoder.from_pretrained(tmp_path / "s1" / "model")
    loaded = DCAutoencoder.from_pretrained(tmp_path / "s2" / "model")
    x = torch.from_numpy(clips(np.random.default_rng(3))).permute(0, 1, 4, 2, 3).float() / 127.5 - 1
    with torch.no_grad():
        assert torch.equal(before.encode(x), loaded.encode(x))  # latents (and AR models) stay valid
        batch = loaded.decode(loaded.encode(x))
        cache = loaded.new_cache()
        stream = torch.stack([loaded.decode_step(z, cache) for z in loaded.encode(x).unbind(1)], 1)
    torch.testing.assert_close(stream, batch, atol=1e-5, rtol=0)


def test_bad_clip_batches_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="uint8"):
        train_autoencoder(
            config(), lambda rng: np.zeros((1, 1, 32, 32, 3)), tmp_path, steps=1, progress=False
        )
    with pytest.raises(ValueError, match=r"\(B, T, 32, 32, 3\)"):
        train_autoencoder(
            config(), lambda rng: np.zeros((1, 1, 16, 32, 3), np.uint8), tmp_path, steps=1, progress=False
        )
    with pytest.raises(ValueError, match="log_every must be >= 1"):
        config(log_every=0)


def test_reference_pairs_mix_clips_with_rendered_faces_of_two_mouths(tiny_dataset) -> None:
    from avatarlm.data.frame_sampler import FrameSampler
    from avatarlm.data.mouth_swap import MouthSwapSampler
    from avatarlm.trainer.ae_run import mixed_reference_pairs

    clips = FrameSampler(tiny_dataset, "train", window=1, reference=True)
    triples = MouthSwapSampler(range(10), size=64)
    batch = mixed_reference_pairs(clips, triples, 6, 2)(np.random.default_rng(0))
    assert batch.shape == (6, 2, 64, 64, 3) and batch.dtype == np.uint8
    same = (batch[:, 0] == batch[:, 1]).all(axis=-1)  # (6, 64, 64): pixels the reference gets right
    rendered = same[4:].reshape(2, -1).mean(axis=1)
    assert (rendered > 0.9).all()  # one face in one pose: only the mouth differs
    assert (rendered < 1.0).all()
    expected = triples(np.random.default_rng(0), 2)[:, :2]
    assert any((batch[4, 0] == e).all() for e in expected[0])  # the face or its re-mouthed self first
