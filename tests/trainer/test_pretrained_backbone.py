"""``train ar --backbone-weights DIR``: the backbone starts from a local Qwen2 folder's weights, the rest as a
fresh run; a folder of other dimensions is one clear error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from ar_helpers import TAG, D, ar_config, encoded_dataset, train_config
from avatarlm.cli import main
from avatarlm.model import ARModel
from avatarlm.trainer.pretrained_backbone import pretrained_init_state


def qwen_folder(path: Path, hidden: int = D) -> Qwen2ForCausalLM:
    """A saved Qwen2 model with the dimensions of ``ar_helpers.ar_config``'s backbone (at ``hidden`` = D)."""
    torch.manual_seed(3)
    qcfg = Qwen2Config(vocab_size=50, hidden_size=hidden, intermediate_size=128, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-6,
                       rope_parameters={"rope_type": "default", "rope_theta": 10_000.0})  # fmt: skip
    model = Qwen2ForCausalLM(qcfg).eval()
    model.save_pretrained(path)
    return model


def _backbone_weights(qwen: Qwen2ForCausalLM) -> dict[str, torch.Tensor]:
    return {f"backbone.model.{k}": v for k, v in qwen.model.state_dict().items() if "embed_tokens" not in k}


def test_init_state_holds_the_qwen_weights_and_a_fresh_rest(tmp_path):
    qwen = qwen_folder(tmp_path / "qwen")
    cfg = ar_config()
    state = pretrained_init_state(cfg, tmp_path / "qwen", seed=5)
    for key, value in _backbone_weights(qwen).items():
        assert torch.equal(state[key], value), key
    torch.manual_seed(5)
    fresh = ARModel(cfg).state_dict()
    rest = [k for k in state if not k.startswith("backbone.")]
    assert rest and all(torch.equal(state[k], fresh[k]) for k in rest)
    ARModel(cfg).load_state_dict(state)  # strict: every key, no extra


def test_other_dimensions_are_one_clear_error(tmp_path):
    qwen_folder(tmp_path / "qwen", hidden=32)
    with pytest.raises(ValueError, match=r"hidden_size 32 \(the model's: 64\)"):
        pretrained_init_state(ar_config(), tmp_path / "qwen", seed=0)


def test_train_ar_starts_from_the_qwen_weights(tiny_dataset, tmp_path, capsys):
    ae = encoded_dataset(tiny_dataset)
    qwen = qwen_folder(tmp_path / "qwen")
    preset = tmp_path / "preset.json"
    preset.write_text(json.dumps(train_config().to_dict()))
    base = ["train", "ar", "--data", str(tiny_dataset), "--ae", str(ae), "--tag", TAG, "--steps", "1",
            "--preset", str(preset)]  # fmt: skip
    assert main([*base, "--out", str(tmp_path / "run"), "--backbone-weights", str(tmp_path / "qwen")]) == 0
    trained = ARModel.from_pretrained(tmp_path / "run" / "pipeline" / "ar").state_dict()
    for key, value in _backbone_weights(qwen).items():  # one small step away from the Qwen weights
        assert (trained[key] - value).abs().max() < 2e-3, key
    assert main([*base, "--out", str(tmp_path / "bad"), "--backbone-weights", str(tmp_path / "none")]) == 2
    assert "no config.json in Qwen folder" in capsys.readouterr().err
