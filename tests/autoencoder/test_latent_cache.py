import numpy as np
import pytest

from ae_helpers import randomize_temporal, small_config
from avatarlm.autoencoder.latent_cache import encode_dataset, encode_frames, latent_path, load_latents
from avatarlm.autoencoder.model import DCAutoencoder
from avatarlm.data.shards import iter_samples, read_index


@pytest.mark.parametrize("temporal", [True, False])
def test_cached_latents_equal_streaming_encode_and_rerun_skips(tiny_dataset, temporal):
    """Every clip's stored latents equal its frames encoded now. The spatial-only encoder hands back a
    channels-last layout, which was once stored scrambled (safetensors writes memory as it lies)."""
    model = DCAutoencoder(small_config(image_height=64, image_width=64, temporal=temporal))
    if temporal:
        randomize_temporal(model)
    tag = f"t{int(temporal)}"
    assert encode_dataset(model, tiny_dataset, tag, show_progress=False) == len(
        read_index(tiny_dataset)["shards"]
    )
    latents = load_latents(tiny_dataset, tag)
    samples = list(iter_samples(tiny_dataset))
    assert len(latents) == len(samples) > 1
    for sample in samples:
        want = encode_frames(model, sample.frames, chunk=5)  # chunking does not matter: the encoder is causal
        assert want.flags["C_CONTIGUOUS"]
        assert latents[sample.key].shape == (len(sample.frames), *model.latent_shape)
        np.testing.assert_allclose(latents[sample.key], want, rtol=1e-2, atol=1e-2)  # stored as fp16
    assert encode_dataset(model, tiny_dataset, tag, show_progress=False) == 0


def test_missing_latents_and_wrong_size(tiny_dataset):
    with pytest.raises(FileNotFoundError, match="ae encode"):
        load_latents(tiny_dataset, "never-encoded")
    model = DCAutoencoder(small_config())  # 32x32: does not fit 64x64 frames
    with pytest.raises(ValueError, match="autoencoder takes 32x32"):
        encode_dataset(model, tiny_dataset, "wrong", show_progress=False)
    first = read_index(tiny_dataset)["shards"][0]["path"]
    assert not latent_path(tiny_dataset, "wrong", first).exists()


def test_a_cache_of_the_old_scrambled_version_is_refused_and_rewritten(tiny_dataset):
    """Shards without the cache version (written before the layout fix) cannot be loaded by mistake, and
    `ae encode` rewrites them instead of skipping them."""
    from safetensors.numpy import load_file, save_file

    model = DCAutoencoder(small_config(image_height=64, image_width=64, temporal=False))
    shards = read_index(tiny_dataset)["shards"]
    assert encode_dataset(model, tiny_dataset, "old", show_progress=False) == len(shards)
    path = latent_path(tiny_dataset, "old", shards[0]["path"])
    save_file(load_file(str(path)), str(path), metadata={"autoencoder": "{}"})  # as the old version wrote
    with pytest.raises(ValueError, match="older avatarlm that stored most clips scrambled"):
        load_latents(tiny_dataset, "old")
    assert encode_dataset(model, tiny_dataset, "old", show_progress=False) == 1
    assert len(load_latents(tiny_dataset, "old")) == len(list(iter_samples(tiny_dataset, frames=False)))
