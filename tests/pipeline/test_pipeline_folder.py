import json

import pytest
import torch

from ar_helpers import ae_config, ar_config
from avatarlm.autoencoder.model import DCAutoencoder
from avatarlm.model import ARModel
from avatarlm.pipeline.folder import folder_megabytes, load_pipeline, pack_pipeline, save_pipeline


@pytest.fixture
def ae_folder(tmp_path):
    torch.manual_seed(0)
    return DCAutoencoder(ae_config()).save_pretrained(tmp_path / "ae")


def test_save_and_load_round_trip(ae_folder, tmp_path):
    torch.manual_seed(1)
    ar = ARModel(ar_config())
    folder = save_pipeline(tmp_path / "pipe", ae_folder, ar, "test")
    info = json.loads((folder / "pipeline.json").read_text())
    assert (info["fps"], info["chunk_size"], info["tokens_per_frame"], info["latent_grid"]) == (
        25,
        1,
        16,
        [4, 4],
    )
    pipe = load_pipeline(folder)
    for k, v in ar.state_dict().items():
        assert torch.equal(pipe.model.state_dict()[k], v), k
    assert pipe.fps == 25 and not pipe.model.training
    assert not (tmp_path / "pipe.tmp").exists()


def test_a_cpu_pipeline_decodes_channels_last_to_the_same_frames(ae_folder, tmp_path):
    folder = save_pipeline(tmp_path / "pipe", ae_folder, ARModel(ar_config()), "test")
    ae = load_pipeline(folder).autoencoder
    conv = next(m for m in ae.decoder.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    plain = DCAutoencoder.from_pretrained(ae_folder).eval()
    assert not next(
        m for m in plain.decoder.modules() if isinstance(m, torch.nn.Conv2d)
    ).weight.is_contiguous(memory_format=torch.channels_last)
    z = torch.randn(1, 3, *plain.latent_shape)
    with torch.no_grad():
        torch.testing.assert_close(
            ae.decode(z, ae.new_cache()), plain.decode(z, plain.new_cache()), atol=1e-4, rtol=0
        )
    saved = DCAutoencoder.from_pretrained(ae.save_pretrained(tmp_path / "again"))
    for k, v in plain.state_dict().items():
        assert torch.equal(saved.state_dict()[k], v), k


def test_pack_stores_fp16_weights_at_half_the_size(ae_folder, tmp_path, capsys):
    from safetensors import safe_open

    from avatarlm.cli import main

    torch.manual_seed(1)
    ar = ARModel(ar_config())
    source = save_pipeline(tmp_path / "pipe", ae_folder, ar, "test")
    assert main(["pack", str(source), "--out", str(tmp_path / "small")]) == 0
    small = tmp_path / "small"
    assert f"wrote {small}" in capsys.readouterr().out
    assert folder_megabytes(small) < 0.55 * folder_megabytes(source)
    for weights in small.glob("*/model.safetensors"):
        with safe_open(str(weights), "pt") as f:
            assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float16}  # noqa: SIM118 (not a dict)
    packed, original = load_pipeline(small), load_pipeline(source)
    assert packed.info["preset"] == "test"
    for k, v in original.model.state_dict().items():
        assert torch.equal(packed.model.state_dict()[k], v.half().float()), k
    with pytest.raises(ValueError, match="--out must differ"):
        pack_pipeline(source, source)
    assert main(["pack", str(tmp_path / "nothing"), "--out", str(tmp_path / "x")]) == 2
    assert "pipeline.json is missing" in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_mismatched_models_and_missing_files_are_refused(ae_folder, tmp_path):
    ar = ARModel(ar_config().replace(latent_channels=4, head=ar_config().head.replace(in_channels=4)))
    with pytest.raises(ValueError, match="autoencoder's latent is 4x4 tokens x 8 channels"):
        save_pipeline(tmp_path / "pipe", ae_folder, ar, "test")
    assert not (tmp_path / "pipe").exists()
    with pytest.raises(ValueError, match="pipeline.json is missing"):
        load_pipeline(tmp_path)


def test_the_bundled_pipeline_is_small_fp16_on_disk_and_loads_in_fp32():
    from safetensors import safe_open

    from avatarlm.pipeline.folder import BUNDLED

    files = [p for p in BUNDLED.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) <= 30 * 2**20
    for weights in BUNDLED.glob("*/model.safetensors"):
        with safe_open(str(weights), "pt") as f:
            assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float16}  # noqa: SIM118 (not a dict)
    pipe = load_pipeline()  # no folder: the bundled one
    assert pipe.fps == 25 and pipe.autoencoder.config.image_height == 128
    assert pipe.model.config.conditions.audio_streams == 2  # duplex: it hears its partner
    tensors = [*pipe.model.state_dict().values(), *pipe.autoencoder.state_dict().values()]
    assert all(t.dtype == torch.float32 for t in tensors if t.is_floating_point())


def test_load_pipeline_onto_a_device_checks_it(ae_folder, tmp_path, monkeypatch):
    folder = save_pipeline(tmp_path / "pipe", ae_folder, ARModel(ar_config()), "test")
    pipe = load_pipeline(folder, "cpu")
    assert pipe.device == torch.device("cpu") and next(pipe.autoencoder.parameters()).device.type == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="cuda: no CUDA device is available"):
        load_pipeline(folder, "cuda")
    with pytest.raises(ValueError, match="not a device"):
        load_pipeline(folder, "gpu0")
    with pytest.raises(ValueError, match="sessions run on cpu or cuda"):
        load_pipeline(folder, "meta")


def test_generate_or_serve_on_a_missing_gpu_is_one_clear_error(ae_folder, tmp_path, monkeypatch, capsys):
    from avatarlm.cli import main

    folder = save_pipeline(tmp_path / "pipe", ae_folder, ARModel(ar_config()), "test")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "clip.mp4"
    args = ["generate", "--model", str(folder), "--text", "hello", "--identity", "3", "--out", str(out)]
    assert main([*args, "--device", "cuda"]) == 2
    assert "--device cuda: no CUDA device is available" in capsys.readouterr().err
    assert not out.exists()
    assert main(["serve", "--model", str(folder), "--port", "0", "--device", "cuda"]) == 2
    assert "--device cuda: no CUDA device is available" in capsys.readouterr().err
