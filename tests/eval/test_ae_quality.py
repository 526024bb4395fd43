import numpy as np

from ae_helpers import randomize_temporal, small_config
from avatarlm.autoencoder.model import DCAutoencoder
from avatarlm.eval.ae_quality import evaluate_autoencoder, reconstruct_clip


def test_metrics_on_an_untrained_model(tiny_dataset):
    model = DCAutoencoder(small_config(image_height=64, image_width=64))
    q = evaluate_autoencoder(model, tiny_dataset, "train", max_clips=3, window=1000)
    assert q.clips == 3 and q.frames > 200
    assert 0 < q.psnr < 25 and np.isfinite(q.mouth_psnr)  # random weights reconstruct badly
    assert q.mouth_probe_truth > 0.5  # the true frames show the mouth-open label
    assert q.flicker_truth > 0


def test_streaming_matches_per_frame_without_temporal_layers(tiny_dataset):
    frames = np.random.default_rng(0).integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)
    spatial = DCAutoencoder(small_config(image_height=64, image_width=64, temporal=False))
    a, b = reconstruct_clip(spatial, frames, True), reconstruct_clip(spatial, frames, False)
    assert np.abs(a.astype(int) - b).max() <= 1  # float rounding only
    temporal = DCAutoencoder(small_config(image_height=64, image_width=64, temporal=True))
    randomize_temporal(temporal)
    assert not np.array_equal(
        reconstruct_clip(temporal, frames, True), reconstruct_clip(temporal, frames, False)
    )


def test_world_rollouts_have_no_mouth_but_the_rest_is_measured(tmp_path):
    import pytest

    pytest.importorskip("vizdoom")
    from avatarlm.data.world import WorldConfig, collect_world

    cfg = WorldConfig(env="vizdoom", hours=0.001, out=str(tmp_path), size=64, episode_steps=20)
    collect_world(cfg, show_progress=False)
    model = DCAutoencoder(small_config(image_height=64, image_width=64))
    q = evaluate_autoencoder(model, tmp_path, "test", max_clips=2)
    assert q.clips == 2 and 0 < q.psnr < 25 and q.flicker_truth > 0 and np.isfinite(q.ssim)
    assert np.isnan(q.mouth_psnr) and np.isnan(q.mouth_probe_recon)
