"""Within-frame consistency: tokens of a frame must share a random sign (mouth structure in miniature).

The per-token MLP head cannot know the other tokens' choice, so its tokens agree only by chance
(2^(1-T) for T tokens); the frame transformer head coordinates them.
"""

import torch
from toy_flow_problems import TOKENS, shared_sign_batch, slot_cond, train_toy_head


def sign_agreement(samples: torch.Tensor) -> float:
    positive = samples[..., 0] > 0
    return (positive.all(dim=1) | (~positive).all(dim=1)).float().mean().item()


def test_transformer_head_keeps_tokens_of_a_frame_consistent():
    cond = slot_cond(512)
    agreement = {}
    for architecture in ("mlp", "transformer"):
        head = train_toy_head(architecture, shared_sign_batch, steps=200)
        samples = head.sample(cond, steps=4, generator=torch.Generator().manual_seed(0))
        agreement[architecture] = sign_agreement(samples)
        if architecture == "transformer":
            assert (samples[..., 0].abs() - 1).abs().median() < 0.2  # on the modes, not between them
    chance = 2.0 ** (1 - TOKENS)
    assert agreement["mlp"] < chance + 0.1, agreement
    assert agreement["transformer"] > 0.85, agreement
