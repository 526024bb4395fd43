import pytest
import torch

from ae_helpers import small_config
from avatarlm.autoencoder import DCAutoencoder
from avatarlm.config import AutoencoderConfig, config_from_dict
from avatarlm.trainer.ae_config import AETrainConfig

EXPECTED = {  # preset: (latent channels, latent height, latent width)
    "tiny": (32, 4, 4),
    "world64": (32, 4, 4),
    "small_f32": (32, 8, 8),
    "small_f64": (64, 4, 4),
    "paper": (128, 10, 6),
}


@pytest.mark.parametrize("name", list(EXPECTED))
@pytest.mark.parametrize("temporal", [False, True])
def test_preset_shapes_on_meta(name: str, temporal: bool) -> None:
    cfg = AutoencoderConfig.preset(name, temporal=temporal)
    c, h, w = EXPECTED[name]
    assert cfg.tokens_per_frame == h * w
    with torch.device("meta"):
        model = DCAutoencoder(cfg)
        frames = torch.empty(2, 3, 3, cfg.image_height, cfg.image_width)
        z = model.encode(frames)
        x = model.decode(z)
        cache = model.new_cache()
        z1 = model.encode_step(frames[:, 0], cache)
        x1 = model.decode_step(z1, cache)
    assert model.tokens_per_frame == h * w
    assert z.shape == (2, 3, c, h, w) and x.shape == frames.shape
    assert z1.shape == (2, c, h, w) and x1.shape == frames[:, 0].shape


def test_paper_preset_is_portrait_60_tokens() -> None:
    cfg = AutoencoderConfig.preset("paper")
    assert (cfg.image_width, cfg.image_height, cfg.downsample_factor) == (384, 640, 64)
    assert (cfg.latent_width, cfg.latent_height, cfg.tokens_per_frame) == (6, 10, 60)


def test_tiny_runs_for_real() -> None:
    torch.manual_seed(0)
    model = DCAutoencoder(AutoencoderConfig.preset("tiny", temporal=True)).eval()
    with torch.inference_mode():
        z = model.encode(torch.rand(1, 2, 3, 128, 128) * 2 - 1)
        x = model.decode(z)
    assert z.shape == (1, 2, 32, 4, 4) and x.shape == (1, 2, 3, 128, 128)
    assert torch.isfinite(x).all()


def test_bad_inputs_raise_clear_errors() -> None:
    model = DCAutoencoder(small_config())
    with pytest.raises(ValueError, match="frames must have shape"):
        model.encode(torch.zeros(1, 3, 32, 32))
    with pytest.raises(ValueError, match="frames must have shape"):
        model.encode(torch.zeros(1, 1, 3, 32, 48))
    with pytest.raises(ValueError, match="latents must have shape"):
        model.decode(torch.zeros(1, 1, 8, 5, 4))
    with pytest.raises(ValueError, match="frame must have shape"):
        model.encode_step(torch.zeros(1, 1, 3, 32, 32), model.new_cache())


def test_config_validation_and_round_trip() -> None:
    with pytest.raises(ValueError, match="unknown autoencoder preset 'huge'"):
        AutoencoderConfig.preset("huge")
    with pytest.raises(ValueError, match="unknown autoencoder config field"):
        AutoencoderConfig.preset("tiny", colour=True)
    with pytest.raises(ValueError, match="not a positive multiple"):
        AutoencoderConfig.preset("tiny", image_height=100)
    with pytest.raises(ValueError, match="latent_channels=48"):
        AutoencoderConfig.preset("tiny", latent_channels=48)
    with pytest.raises(ValueError, match="stage must be one of"):
        AETrainConfig.preset("tiny", stage="everything")
    cfg = AutoencoderConfig.preset("small_f64", temporal=True)
    assert config_from_dict(cfg.to_dict()) == cfg
    train = AETrainConfig.preset("tiny", stage="joint")
    assert AETrainConfig.from_dict(train.to_dict()) == train
    assert isinstance(train.autoencoder.widths, tuple)
