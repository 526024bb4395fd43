import numpy as np
import pytest
import torch

from ae_helpers import randomize_temporal, shapes_batch, small_config, to_frames
from avatarlm.autoencoder import DCAutoencoder

N_FRAMES = 7  # longer than temporal_window=3 and kernel=3, so the cache has to roll


@pytest.fixture(scope="module")
def model() -> DCAutoencoder:
    torch.manual_seed(0)
    m = DCAutoencoder(small_config(temporal=True)).eval()
    randomize_temporal(m)
    return m


@pytest.fixture(scope="module")
def clip() -> torch.Tensor:
    return to_frames(shapes_batch(np.random.default_rng(0), 2, N_FRAMES, 32))


@torch.no_grad()
def test_decode_and_encode_are_causal(model: DCAutoencoder, clip: torch.Tensor) -> None:
    z = model.encode(clip)
    x = model.decode(z)
    for k in (0, 2, 4):
        assert torch.allclose(model.encode(clip[:, : k + 1]), z[:, : k + 1], atol=1e-5)
        assert torch.allclose(model.decode(z[:, : k + 1]), x[:, : k + 1], atol=1e-5)
    # changing a later frame leaves earlier outputs untouched
    z2 = z.clone()
    z2[:, 4] += 1.0
    x2 = model.decode(z2)
    assert torch.allclose(x2[:, :4], x[:, :4], atol=1e-5)
    assert not torch.allclose(x2[:, 4:], x[:, 4:], atol=1e-3)


@torch.no_grad()
def test_temporal_layers_mix_frames(model: DCAutoencoder, clip: torch.Tensor) -> None:
    z = model.encode(clip)
    alone = model.decode(z[:, 3:4])  # frame 3 without history
    in_clip = model.decode(z)[:, 3:4]
    assert not torch.allclose(alone, in_clip, atol=1e-3)


@torch.no_grad()
def test_streaming_equals_batch(model: DCAutoencoder, clip: torch.Tensor) -> None:
    z_batch = model.encode(clip)
    x_batch = model.decode(z_batch)
    cache = model.new_cache()
    z_steps, x_steps = [], []
    for t in range(N_FRAMES):
        z_t = model.encode_step(clip[:, t], cache)
        z_steps.append(z_t)
        x_steps.append(model.decode_step(z_t, cache))
    assert torch.allclose(torch.stack(z_steps, 1), z_batch, atol=1e-5)
    assert torch.allclose(torch.stack(x_steps, 1), x_batch, atol=1e-5)
    assert cache.decoder.frames_seen == N_FRAMES
    # chunked streaming (3 + 4 frames) agrees too, and the cache stays bounded
    chunked = model.new_cache()
    first = model.decode(z_batch[:, :3], chunked)
    size = chunked.decoder.nbytes()
    second = model.decode(z_batch[:, 3:], chunked)
    assert torch.allclose(torch.cat([first, second], 1), x_batch, atol=1e-5)
    assert chunked.decoder.nbytes() == size


@torch.no_grad()
def test_cache_refuses_other_batch_size(model: DCAutoencoder, clip: torch.Tensor) -> None:
    cache = model.new_cache()
    model.encode_step(clip[:, 0], cache)
    with pytest.raises(ValueError, match="batch"):
        model.encode_step(clip[:1, 1], cache)


@torch.no_grad()
def test_temporal_layers_start_as_identity(tmp_path, clip: torch.Tensor) -> None:
    torch.manual_seed(1)
    spatial = DCAutoencoder(small_config()).eval()
    spatial.save_pretrained(tmp_path / "stage1")
    temporal = DCAutoencoder.from_pretrained(tmp_path / "stage1", temporal=True).eval()
    assert temporal.config.temporal and len(temporal.temporal_parameters()) > 0
    x_spatial = spatial.reconstruct(clip)
    assert torch.equal(temporal.reconstruct(clip), x_spatial)
    cache = temporal.new_cache()
    for t in range(3):
        frame = temporal.decode_step(temporal.encode_step(clip[:, t], cache), cache)
        assert torch.allclose(frame, x_spatial[:, t], atol=1e-6)


def test_training_after_inference_mode(clip: torch.Tensor) -> None:
    torch.manual_seed(2)
    m = DCAutoencoder(small_config(temporal=True))
    with torch.inference_mode():
        m.reconstruct(clip)
    m.reconstruct(clip).square().mean().backward()
    assert all(p.grad is not None for p in m.temporal_parameters())
