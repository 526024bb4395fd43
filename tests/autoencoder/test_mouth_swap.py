from pathlib import Path

import numpy as np
import pytest
import torch

from ae_helpers import randomize_fusions, small_config
from avatarlm.autoencoder.loss import AutoencoderLoss
from avatarlm.autoencoder.model import DCAutoencoder
from avatarlm.autoencoder.mouth_swap import MouthSwapLoss, mouth_invariance, swap_mouth
from avatarlm.autoencoder.reference import changed_l1
from avatarlm.config import AutoencoderConfig
from avatarlm.data.mouth_swap import MouthSwapSampler
from avatarlm.io import read_json
from avatarlm.trainer import train_autoencoder
from avatarlm.trainer.ae import clips_to_tensor, uses_mouth_swap
from avatarlm.trainer.ae_config import AETrainConfig

AE = small_config(temporal=False, mouth_channels=2)


def test_swap_takes_the_mouth_channels_of_every_token_from_the_donor() -> None:
    face, donor = torch.zeros(2, 1, 8, 4, 4), torch.ones(2, 1, 8, 4, 4)
    mixed = swap_mouth(face, donor, 3)
    assert torch.equal(mixed[:, :, :3], donor[:, :, :3]) and torch.equal(mixed[:, :, 3:], face[:, :, 3:])
    with pytest.raises(ValueError, match="mouth_channels must be in 1..7"):
        swap_mouth(face, donor, 8)
    with pytest.raises(ValueError, match="differ in shape"):
        swap_mouth(face, donor[:1], 3)


def test_invariance_ignores_the_mouth_channels_and_the_latent_scale() -> None:
    g = torch.Generator().manual_seed(0)
    face = torch.randn(6, 8, 4, 4, generator=g)
    target = face.clone()
    target[:, :2] += 5.0  # another mouth: only the mouth channels move
    assert float(mouth_invariance(face, target, 2)) == 0.0
    target[:, 2:] += 0.1 * torch.randn(6, 6, 4, 4, generator=g)
    small = mouth_invariance(face, target, 2)
    assert float(small) > 0
    torch.testing.assert_close(mouth_invariance(10 * face, 10 * target, 2), small)  # shrinking doesn't pay


def test_config_keeps_some_channels_for_the_rest_of_the_face() -> None:
    with pytest.raises(ValueError, match="mouth_channels=8 must be in 0..7"):
        small_config(mouth_channels=8)
    assert AutoencoderConfig.preset("tiny").mouth_channels == 0


def test_mouth_swap_loss_falls_on_a_fixed_batch() -> None:
    torch.manual_seed(0)
    model = DCAutoencoder(AE)
    loss_fn = MouthSwapLoss(AutoencoderLoss(ssim_weight=0.0, temporal_weight=0.0), AE.mouth_channels)
    triples = clips_to_tensor(MouthSwapSampler([1, 2, 3], size=32)(np.random.default_rng(0), 4), 32, 32)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for step in range(40):
        loss, recon, parts = loss_fn(model, triples, step)
        assert recon.shape == (4, 1, 3, 32, 32) and {"swap_l1", "invariance", "l1"} <= parts.keys()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.6 * losses[0], losses[::8]
    with pytest.raises(ValueError, match=r"\(B, 3, 3, H, W\) triples"):
        loss_fn(model, triples[:, :1], 0)


def test_mouth_weight_counts_the_pixels_where_the_two_mouths_differ_again() -> None:
    torch.manual_seed(0)
    model = DCAutoencoder(AE)
    batch = clips_to_tensor(MouthSwapSampler([1, 2], size=32)(np.random.default_rng(1), 2), 32, 32)
    plain = AutoencoderLoss(ssim_weight=0.0, temporal_weight=0.0)
    base, _, parts = MouthSwapLoss(plain, AE.mouth_channels)(model, batch)
    weighed, _, more = MouthSwapLoss(plain, AE.mouth_channels, mouth_weight=3.0)(model, batch)
    assert "mouth_l1" not in parts and more["mouth_l1"] > 0
    torch.testing.assert_close(weighed, base + 3.0 * more["mouth_l1"], rtol=1e-5, atol=1e-6)
    mouth = (batch[:, 0] - batch[:, 1]).abs().amax(dim=1).gt(0.05)  # face vs target: the mouth alone
    assert 0 < float(mouth.float().mean()) < 0.2
    with pytest.raises(ValueError, match="loss weights must be non-negative"):
        AETrainConfig(autoencoder=AE, mouth_weight=-1.0)


def triples(rng: np.random.Generator) -> np.ndarray:
    return MouthSwapSampler([1, 2, 3, 4], size=32)(rng, 2)


def test_training_with_mouth_channels_resumes_and_records_them(tmp_path: Path) -> None:
    cfg = AETrainConfig(autoencoder=AE, lr=1e-3, warmup_steps=1, checkpoint_every=2, latent_stats_batches=1)
    model = train_autoencoder(cfg, triples, tmp_path / "a", steps=3, progress=False)
    assert read_json(tmp_path / "a" / "model" / "config.json")["mouth_channels"] == 2
    calls = {"n": 0}

    def dying(rng: np.random.Generator) -> np.ndarray:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return triples(rng)

    with pytest.raises(KeyboardInterrupt):
        train_autoencoder(cfg, dying, tmp_path / "b", steps=3, progress=False)
    resumed = train_autoencoder(cfg, triples, tmp_path / "b", steps=3, progress=False)
    for (name, a), b in zip(model.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_mouth_channels_given_to_a_trained_model_and_refused_outside_the_spatial_stage(
    tmp_path: Path,
) -> None:
    plain = DCAutoencoder(small_config(temporal=False))
    plain.save_pretrained(tmp_path / "plain")
    cfg = AETrainConfig(
        autoencoder=AE, init_from=str(tmp_path / "plain"), warmup_steps=1, latent_stats_batches=1
    )
    model = train_autoencoder(cfg, triples, tmp_path / "run", steps=1, progress=False)
    assert model.config.mouth_channels == 2
    with pytest.raises(ValueError, match="use it in the spatial stage"):
        train_autoencoder(cfg.replace(stage="joint"), triples, tmp_path / "joint", steps=1, progress=False)


def test_a_model_with_mouth_channels_keeps_them_in_every_later_run(tmp_path: Path) -> None:
    cfg = AETrainConfig(autoencoder=AE, warmup_steps=1, latent_stats_batches=1)
    train_autoencoder(cfg, triples, tmp_path / "mouth", steps=1, progress=False)
    again = AETrainConfig(
        autoencoder=small_config(temporal=False), init_from=str(tmp_path / "mouth" / "model"), warmup_steps=1,
        latent_stats_batches=1,
    )  # fmt: skip
    assert uses_mouth_swap(again)  # a further spatial run goes on with the swap, on triples
    assert (
        train_autoencoder(again, triples, tmp_path / "more", steps=1, progress=False).config.mouth_channels
        == 2
    )
    temporal = again.replace(stage="temporal")
    assert not uses_mouth_swap(temporal)  # the temporal stage trains on clips and keeps the channels

    def clips(rng: np.random.Generator) -> np.ndarray:
        return MouthSwapSampler([1, 2], size=32)(rng, 2)  # any (B, T, H, W, 3) clips

    model = train_autoencoder(temporal, clips, tmp_path / "temporal", steps=1, progress=False)
    assert model.config.mouth_channels == 2 and model.config.temporal


REFERENCE_AE = small_config(temporal=False, mouth_channels=2, reference_levels=2)


def with_references(rng: np.random.Generator, batch: int = 2) -> np.ndarray:
    return MouthSwapSampler([1, 2, 3], size=32, references=True)(rng, batch)


def test_a_reference_reading_decoder_reads_each_rows_own_identitys_reference() -> None:
    """Face and swap decode with the face's reference, the donor with the donor's."""
    torch.manual_seed(0)
    model = DCAutoencoder(REFERENCE_AE).eval()
    randomize_fusions(model)
    batch = clips_to_tensor(with_references(np.random.default_rng(0)), 32, 32)
    plain = AutoencoderLoss(ssim_weight=0.0, temporal_weight=0.0)
    loss_fn = MouthSwapLoss(plain, 2, mouth_weight=1.0, change_weight=2.0)
    decoded: list[torch.Tensor] = []
    decode = model.decode_raw

    def recording(latents, cache=None, reference=None):  # type: ignore[no-untyped-def]
        decoded.append(decode(latents, cache, reference).view(2, 3, 3, 32, 32))  # face, donor, swap
        return decoded[-1].flatten(0, 1)[:, None]

    model.decode_raw = recording  # type: ignore[method-assign]
    with torch.no_grad():
        loss, recon, parts = loss_fn(model, batch)
        other = batch.clone()
        other[:, 4] = -other[:, 4]  # another donor reference: only the donor's decode may change
        loss_fn(model, other)
        _, _, alone = loss_fn(model, batch[:, :3])  # without references: decoded alone
        base, _, _ = MouthSwapLoss(plain, 2, mouth_weight=1.0)(model, batch)
    first, second, without = decoded[:3]
    assert torch.equal(first[:, [0, 2]], second[:, [0, 2]]) and not torch.equal(first[:, 1], second[:, 1])
    assert not torch.equal(first[:, 0], without[:, 0])  # the reference is read
    assert recon.shape == (2, 1, 3, 32, 32) and "changed_l1" not in alone
    truth = batch[:, [0, 2, 1]].reshape(6, 1, 3, 32, 32)
    pictures = batch[:, [3, 4, 3]].reshape(6, 3, 32, 32)
    changed = changed_l1(first.reshape(6, 1, 3, 32, 32), truth, pictures)
    assert parts["changed_l1"] == pytest.approx(float(changed), rel=1e-5)
    torch.testing.assert_close(loss, base + 2.0 * changed, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="reads none"):
        loss_fn(DCAutoencoder(AE), batch)
    with pytest.raises(ValueError, match=r"\(B, 5, \.\.\. with references\)"):
        loss_fn(model, batch[:, :4])


def test_mouth_swap_with_references_trains_and_saves_a_reference_reading_model(tmp_path: Path) -> None:
    cfg = AETrainConfig(autoencoder=REFERENCE_AE, lr=1e-3, warmup_steps=1, latent_stats_batches=1)
    batch = with_references(np.random.default_rng(0), 4)
    losses: list[float] = []
    model = train_autoencoder(
        cfg, lambda rng: batch, tmp_path / "run", steps=30, progress=False,
        on_step=lambda step, parts: losses.append(parts["loss"]),
    )  # fmt: skip
    assert model.config.reference_levels == 2 and model.config.mouth_channels == 2
    assert float(model.decoder.blend.gate.detach()) != 0.0  # the decoder learned to copy from the reference
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5]), losses[::5]
    always_dropped = cfg.replace(reference_dropout=1.0)
    dropped = train_autoencoder(
        always_dropped, lambda rng: batch, tmp_path / "dropped", steps=2, progress=False
    )
    assert float(dropped.decoder.blend.gate.detach()) == 0.0  # never given a reference, never opened
