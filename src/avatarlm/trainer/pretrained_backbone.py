"""AR training that starts from a pretrained LLM, as MIDAS starts from Qwen2.5-3B: the backbone's weights
come from a local Qwen2 / Qwen2.5 folder (``config.json`` + ``*.safetensors``, e.g. a Hugging Face snapshot
copied to the machine); ``avatarlm train ar --backbone-weights DIR``. The vocabulary and LM head are not
loaded (the backbone reads embeddings); the condition encoders, latent projections and the flow head start
fresh."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from avatarlm.ar_config import ARConfig
from avatarlm.backbone import Backbone
from avatarlm.model import ARModel

MATCHED = ("hidden_size", "num_layers", "num_heads", "num_kv_heads", "intermediate_size", "rope_theta",
           "rms_norm_eps")  # fmt: skip


def pretrained_init_state(
    config: ARConfig, folder: str | os.PathLike[str], seed: int
) -> dict[str, torch.Tensor]:
    """A state dict of ``ARModel(config)`` whose backbone holds the Qwen weights in ``folder`` and whose other
    parts are initialised as a fresh run with ``seed`` initialises them. The Qwen model's dimensions must be
    the config's backbone's (``paper`` = Qwen2.5-3B); one clear error lists the differences otherwise."""
    qwen = Backbone.from_pretrained_qwen(Path(folder))
    ours = config.backbone
    diffs = [
        f"{name} {getattr(qwen.config, name)} (the model's: {getattr(ours, name)})"
        for name in MATCHED
        if getattr(qwen.config, name) != getattr(ours, name)
    ]
    if diffs:
        raise ValueError(
            f"--backbone-weights {folder}: its dimensions differ from the model's backbone: {', '.join(diffs)}; "
            "pick the preset of that size or set the fields (--set model.backbone.FIELD=VALUE)"
        )
    torch.manual_seed(seed)
    model = ARModel(config)
    model.backbone.model.load_state_dict(qwen.model.state_dict())
    return model.state_dict()
