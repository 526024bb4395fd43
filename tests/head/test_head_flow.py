import pytest
import torch

from avatarlm.head.flow import (
    euler_timesteps,
    interpolate,
    sample_train_timesteps,
    shift_timesteps,
    velocity_target,
)


def test_shift_keeps_endpoints_and_moves_mass_to_noise():
    t = torch.tensor([0.0, 0.25, 0.5, 1.0])
    s = shift_timesteps(t, 3.0)
    assert s[0] == 0.0 and s[-1] == 1.0
    assert s[2].item() == pytest.approx(0.75)
    assert torch.all(s[1:3] > t[1:3])
    assert torch.equal(shift_timesteps(t, 1.0), t)
    with pytest.raises(ValueError, match="shift"):
        shift_timesteps(t, 0.0)


def test_euler_grid_runs_from_noise_to_data():
    assert euler_timesteps(4, 1.0) == pytest.approx([1.0, 0.75, 0.5, 0.25, 0.0])
    assert euler_timesteps(4, 3.0) == pytest.approx([1.0, 0.9, 0.75, 0.5, 0.0])
    assert euler_timesteps(1, 3.0) == [1.0, 0.0]
    with pytest.raises(ValueError, match="steps"):
        euler_timesteps(0)


def test_path_endpoints_and_velocity():
    x0, eps = torch.randn(3, 4, 2), torch.randn(3, 4, 2)
    assert torch.equal(interpolate(x0, eps, torch.zeros(3)), x0)
    assert torch.equal(interpolate(x0, eps, torch.ones(3)), eps)
    t = torch.tensor([0.2, 0.5, 0.7])
    dt = 1e-3
    numeric = (interpolate(x0, eps, t + dt) - interpolate(x0, eps, t)) / dt
    assert torch.allclose(numeric, velocity_target(x0, eps), atol=1e-2)


@pytest.mark.parametrize("schedule", ["logit_normal", "uniform"])
def test_train_timesteps_in_open_interval_and_seeded(schedule):
    a = sample_train_timesteps(1000, schedule=schedule, shift=3.0, generator=torch.Generator().manual_seed(0))
    b = sample_train_timesteps(1000, schedule=schedule, shift=3.0, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b)
    assert a.min() >= 0 and a.max() <= 1
    assert a.median() > 0.6  # shift 3 moves the median (0.5 unshifted) to 0.75
    with pytest.raises(ValueError, match="bogus"):
        sample_train_timesteps(4, schedule="bogus")
