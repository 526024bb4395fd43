import json
from pathlib import Path
from typing import Any

import pytest
import torch

from avatarlm.autoencoder import DCAutoencoder
from avatarlm.config import AutoencoderConfig
from avatarlm.io import (
    atomic_write_json,
    load_model_folder,
    load_tensors,
    read_json,
    save_model_folder,
    save_tensors,
)


def small_config(**overrides: Any) -> AutoencoderConfig:
    base = dict(image_height=32, image_width=32, latent_channels=8, widths=(8, 16, 32), attention_head_dim=8)
    base.update(
        encoder_depths=(1, 1, 1), decoder_depths=(1, 1, 1), temporal_levels=3, temporal_attention_levels=2
    )
    return AutoencoderConfig.from_dict({**base, **overrides})


def randomize_temporal(model: DCAutoencoder, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.temporal_parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)


def _model(temporal: bool = True, seed: int = 0) -> DCAutoencoder:
    torch.manual_seed(seed)
    model = DCAutoencoder(small_config(temporal=temporal)).eval()
    if temporal:
        randomize_temporal(model, seed)
    return model


def test_round_trip_is_bit_exact(tmp_path: Path) -> None:
    model = _model()
    model.set_latent_stats(torch.linspace(-1, 1, 8), torch.linspace(0.5, 2, 8))
    model.save_pretrained(tmp_path / "ae")
    loaded = DCAutoencoder.from_pretrained(tmp_path / "ae").eval()
    assert loaded.config == model.config
    x = torch.rand(2, 3, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.equal(loaded.encode(x), model.encode(x))
        assert torch.equal(loaded.decode(model.encode(x)), model.decode(model.encode(x)))
    cfg = json.loads((tmp_path / "ae" / "config.json").read_text())
    assert cfg["kind"] == "autoencoder" and cfg["temporal"] is True and len(cfg["latent_scale"]) == 8
    assert sorted(p.name for p in (tmp_path / "ae").iterdir()) == ["config.json", "model.safetensors"]


def test_fp16_storage_upcasts_to_fp32(tmp_path: Path) -> None:
    model = _model()
    model.save_pretrained(tmp_path / "half", dtype=torch.float16)
    loaded = DCAutoencoder.from_pretrained(tmp_path / "half")
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    for (name, a), b in zip(model.state_dict().items(), loaded.state_dict().values(), strict=True):
        assert torch.allclose(a, b, rtol=1e-3, atol=1e-4), name
    assert (tmp_path / "half" / "model.safetensors").stat().st_size < 0.6 * sum(
        p.numel() * 4 for p in model.state_dict().values()
    )


def test_refuses_missing_files(tmp_path: Path) -> None:
    _model().save_pretrained(tmp_path / "ae")
    with pytest.raises(ValueError, match="does not exist"):
        DCAutoencoder.from_pretrained(tmp_path / "nowhere")
    (tmp_path / "ae" / "model.safetensors").unlink()
    with pytest.raises(ValueError, match="missing model.safetensors"):
        DCAutoencoder.from_pretrained(tmp_path / "ae")
    _model().save_pretrained(tmp_path / "ae2")
    (tmp_path / "ae2" / "config.json").unlink()
    with pytest.raises(ValueError, match="missing config.json"):
        DCAutoencoder.from_pretrained(tmp_path / "ae2")


def test_refuses_mismatched_weights(tmp_path: Path) -> None:
    _model().save_pretrained(tmp_path / "a")
    DCAutoencoder(small_config(widths=(8, 16, 64))).save_pretrained(tmp_path / "b")
    (tmp_path / "a" / "model.safetensors").replace(tmp_path / "a" / "other.safetensors")
    (tmp_path / "b" / "model.safetensors").replace(tmp_path / "a" / "model.safetensors")
    with pytest.raises(ValueError, match="do not match their config"):
        DCAutoencoder.from_pretrained(tmp_path / "a")


def test_refuses_other_kind_and_bad_json(tmp_path: Path) -> None:
    save_model_folder(tmp_path / "x", {"kind": "backbone"}, {"w": torch.zeros(2)})
    with pytest.raises(ValueError, match="expected 'autoencoder'"):
        DCAutoencoder.from_pretrained(tmp_path / "x")
    (tmp_path / "x" / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_model_folder(tmp_path / "x", "backbone")
    with pytest.raises(ValueError, match="kind"):
        save_model_folder(tmp_path / "y", {}, {"w": torch.zeros(2)})


def test_unknown_config_field_is_refused(tmp_path: Path) -> None:
    _model().save_pretrained(tmp_path / "ae")
    cfg = read_json(tmp_path / "ae" / "config.json")
    cfg["depth_of_field"] = 3
    atomic_write_json(tmp_path / "ae" / "config.json", cfg)
    with pytest.raises(ValueError, match="depth_of_field"):
        DCAutoencoder.from_pretrained(tmp_path / "ae")


def test_atomic_writes_leave_no_temp_files(tmp_path: Path) -> None:
    save_tensors(tmp_path / "t.safetensors", {"a": torch.arange(3.0)}, {"k": "v"})
    atomic_write_json(tmp_path / "c.json", {"a": 1})
    atomic_write_json(tmp_path / "c.json", {"a": 2})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.json", "t.safetensors"]
    tensors, meta = load_tensors(tmp_path / "t.safetensors")
    assert torch.equal(tensors["a"], torch.arange(3.0)) and meta == {"k": "v"}
    assert read_json(tmp_path / "c.json") == {"a": 2}
    (tmp_path / "bad.safetensors").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="cannot read"):
        load_tensors(tmp_path / "bad.safetensors")


def test_atomic_writes_get_the_usual_file_mode(tmp_path: Path) -> None:
    import os

    from avatarlm.io import atomic_write_json

    atomic_write_json(tmp_path / "a.json", {"x": 1})
    (tmp_path / "b.json").write_text("{}")  # what a plain open() makes under this umask
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == (tmp_path / "b.json").stat().st_mode & 0o777
    assert os.access(tmp_path / "a.json", os.R_OK)


def test_temporal_flag_on_load(tmp_path: Path) -> None:
    model = _model(temporal=True)
    model.save_pretrained(tmp_path / "t")
    spatial = DCAutoencoder.from_pretrained(tmp_path / "t", temporal=False)
    assert not spatial.config.temporal and not spatial.temporal_parameters()
    for name, p in spatial.state_dict().items():
        assert torch.equal(p, model.state_dict()[name])
