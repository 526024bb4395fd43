"""Both heads learn a conditional Gaussian mixture and their 4-step samples land on the selected mode."""

import pytest
import torch
from toy_flow_problems import CENTERS, mixture_batch, train_toy_head


@pytest.mark.parametrize("architecture", ["mlp", "transformer"])
def test_samples_land_on_the_selected_mode(architecture):
    head = train_toy_head(architecture, mixture_batch, steps=150)
    x, cond, mode = mixture_batch(512, torch.Generator().manual_seed(5))
    untrained_loss = train_toy_head(architecture, mixture_batch, steps=0).loss(x, cond, repeat=1)
    assert head.loss(x, cond, repeat=1) < 0.3 * untrained_loss
    for steps in (1, 4):
        samples = head.sample(cond, steps=steps, generator=torch.Generator().manual_seed(0))
        dist = (samples[..., None, :] - CENTERS).norm(dim=-1)  # (N, T, modes)
        accuracy = (dist.argmin(-1) == mode).float().mean().item()
        assert accuracy > 0.9, (steps, accuracy)
        if steps == 4:
            assert dist.gather(-1, mode[..., None]).mean().item() < 0.25
