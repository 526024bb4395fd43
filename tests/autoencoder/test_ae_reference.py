from pathlib import Path

import numpy as np
import pytest
import torch

from ae_helpers import randomize_fusions, randomize_temporal, shapes_batch, small_config, to_frames
from avatarlm.autoencoder import DCAutoencoder
from avatarlm.autoencoder.reference import changed_l1, warp
from avatarlm.trainer import train_autoencoder
from avatarlm.trainer.ae_config import AETrainConfig

N_FRAMES = 6


@pytest.fixture(scope="module")
def model() -> DCAutoencoder:
    torch.manual_seed(0)
    m = DCAutoencoder(small_config(temporal=True, reference_levels=2)).eval()
    randomize_temporal(m)
    randomize_fusions(m)
    return m


@pytest.fixture(scope="module")
def clip() -> torch.Tensor:
    return to_frames(shapes_batch(np.random.default_rng(0), 2, N_FRAMES, 32))


@torch.no_grad()
def test_added_fusions_leave_a_trained_decoder_unchanged(tmp_path: Path, clip: torch.Tensor) -> None:
    torch.manual_seed(1)
    plain = DCAutoencoder(small_config()).eval()
    plain.save_pretrained(tmp_path)
    fused = DCAutoencoder.from_pretrained(tmp_path, reference_levels=2).eval()
    assert fused.config.reference_levels == 2 and len(fused.decoder.fusions) == 2
    torch.testing.assert_close(fused.reconstruct(clip, clip[:, 0]), plain.reconstruct(clip), rtol=0, atol=0)
    fused.save_pretrained(tmp_path / "fused")
    with pytest.raises(ValueError, match="cannot change"):
        DCAutoencoder.from_pretrained(tmp_path / "fused", reference_levels=1)
    assert DCAutoencoder.from_pretrained(tmp_path / "fused", reference_levels=2).config.reference_levels == 2


@torch.no_grad()
def test_the_decoder_reads_the_reference_and_skips_it_without_one(
    model: DCAutoencoder, clip: torch.Tensor
) -> None:
    z = model.encode(clip)
    with_a = model.decode(z, reference=model.reference_features(clip[:, 0]))
    with_b = model.decode(z, reference=model.reference_features(clip[:, -1]))
    assert (with_a - with_b).abs().max() > 1e-2
    no_fusion = DCAutoencoder(model.config.replace(reference_levels=0)).eval()
    plain = {
        k: v
        for k, v in model.state_dict().items()
        if not k.startswith(("decoder.fusions.", "decoder.blend.", "decoder.warp."))
    }
    no_fusion.load_state_dict(plain)
    torch.testing.assert_close(model.decode(z), no_fusion.decode(z), rtol=0, atol=0)


@torch.no_grad()
def test_streaming_with_a_reference_equals_batch_decode(model: DCAutoencoder, clip: torch.Tensor) -> None:
    reference = clip[:, -1]
    z = model.encode(clip)
    batch = model.decode(z, reference=model.reference_features(reference))
    cache = model.new_cache(reference)
    steps = torch.stack([model.decode_step(z[:, t], cache) for t in range(N_FRAMES)], dim=1)
    torch.testing.assert_close(steps, batch, rtol=0, atol=1e-5)
    cache.reset()  # a reset starts the stream over with the same reference
    again = torch.stack([model.decode_step(z[:, t], cache) for t in range(N_FRAMES)], dim=1)
    torch.testing.assert_close(again, batch, rtol=0, atol=1e-5)
    # causal: frames 0..k alone decode as the first k + 1 frames of the whole clip
    for k in (0, 3):
        part = model.decode(z[:, : k + 1], reference=model.reference_features(reference))
        torch.testing.assert_close(part, batch[:, : k + 1], rtol=0, atol=1e-5)


def test_bad_references_are_refused(model: DCAutoencoder, clip: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="reference image must have shape"):
        model.new_cache(torch.zeros(1, 3, 16, 16))
    with pytest.raises(ValueError, match="reference features for batch 1"):
        model.decode(model.encode(clip), reference=model.reference_features(clip[:1, 0]))
    with pytest.raises(ValueError, match="reference_levels"):
        small_config(reference_levels=3)  # three levels: the bottleneck has no finer features to read


def test_save_load_round_trip_keeps_the_fusions(
    tmp_path: Path, model: DCAutoencoder, clip: torch.Tensor
) -> None:
    model.save_pretrained(tmp_path)
    loaded = DCAutoencoder.from_pretrained(tmp_path).eval()
    assert loaded.config == model.config
    with torch.no_grad():
        ref = clip[:, 0]
        torch.testing.assert_close(
            loaded.reconstruct(clip, ref), model.reconstruct(clip, ref), rtol=0, atol=0
        )


def test_a_decoder_stage_learns_to_use_the_reference(tmp_path: Path) -> None:
    """Pairs of frames of one scene: the reference holds the detail a 2-channel latent cannot."""
    ae = small_config(latent_channels=2, widths=(8, 16, 32), temporal=False)
    base = AETrainConfig(
        autoencoder=ae, lr=3e-3, warmup_steps=1, checkpoint_every=100, latent_stats_batches=1
    )
    rng_data = np.random.default_rng(0)

    def pairs(rng: np.random.Generator) -> np.ndarray:
        clips = shapes_batch(rng, 8, 3, 32)
        # a per-scene texture of 4x4 blocks, the same in all frames
        noise = rng_data.integers(0, 80, size=(8, 1, 8, 8, 3)).repeat(4, axis=2).repeat(4, axis=3)
        return np.clip(clips.astype(int) + noise, 0, 255).astype(np.uint8)

    train_autoencoder(
        base.replace(gan_weight=0.0), lambda r: pairs(r)[:, 1:], tmp_path / "s1", 30, progress=False
    )
    dec = base.replace(stage="decoder", init_from=str(tmp_path / "s1" / "model"), gan_weight=0.0,
                       reference_dropout=0.0, autoencoder=ae.replace(reference_levels=2))  # fmt: skip
    model = train_autoencoder(dec, pairs, tmp_path / "dec", 150, progress=False)
    assert model.config.reference_levels == 2
    x = to_frames(pairs(np.random.default_rng(9)))
    with torch.no_grad():
        with_ref = (model.reconstruct(x[:, 1:], x[:, 0]) - x[:, 1:]).abs().mean()
        without = (model.reconstruct(x[:, 1:]) - x[:, 1:]).abs().mean()
    assert with_ref < 0.8 * without


def test_warp_reads_the_reference_along_the_flow() -> None:
    x = torch.randn(2, 3, 16, 16)
    torch.testing.assert_close(warp(x, torch.zeros(2, 2, 4, 4)), x, rtol=0, atol=1e-6)
    right = torch.cat([torch.full((4, 1, 4, 4), 2 / 16), torch.zeros(4, 1, 4, 4)], dim=1)  # one pixel
    shifted = warp(x, right)  # two frames per stream: the reference repeats for each
    assert shifted.shape == (4, 3, 16, 16)
    torch.testing.assert_close(shifted[::2, ..., :-1], x[..., 1:], rtol=0, atol=1e-5)


def test_changed_l1_counts_only_pixels_the_reference_gets_wrong() -> None:
    reference = torch.zeros(1, 3, 8, 8)
    frames = torch.zeros(1, 2, 3, 8, 8)
    frames[:, :, :, :2] = 1.0  # two rows changed in both frames
    assert changed_l1(frames, frames, reference) == 0
    off = frames.clone()
    off[:, :, :, 4:] += 0.5  # wrong only where the reference was right: not counted
    assert changed_l1(off, frames, reference) == 0
    off[:, :, :, :2] -= 0.25  # wrong by 0.25 on every changed pixel
    torch.testing.assert_close(changed_l1(off, frames, reference), torch.tensor(0.25))


@torch.no_grad()
def test_one_streams_features_expand_to_many(model: DCAutoencoder, clip: torch.Tensor) -> None:
    reference = clip[:1, 0]
    once = model.reference_features(reference).expand(3)
    each = model.reference_features(reference.expand(3, -1, -1, -1))
    z = model.encode(clip[:1].expand(3, -1, -1, -1, -1))
    torch.testing.assert_close(
        model.decode(z, reference=once), model.decode(z, reference=each), rtol=0, atol=1e-5
    )
    with pytest.raises(ValueError, match="one stream"):
        each.expand(6)
