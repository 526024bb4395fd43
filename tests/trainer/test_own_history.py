import pytest
import torch

from ar_helpers import open_head
from avatarlm.model import ARConfig, ARModel
from avatarlm.trainer.own_history import own_history, predict_next_frames
from test_model import make_model, toy_batch


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("target", ["delta", "frame"])
def test_a_predicted_frame_sees_only_the_true_frames_before_it(target):
    model = open_head(make_model(target=target))
    latents, cond = toy_batch(b=2, f=5)
    base = predict_next_frames(model, latents, cond, gen())
    assert base.shape == latents.shape and torch.equal(base[:, 0], latents[:, 0])
    assert not torch.allclose(base[:, 1:], latents[:, 1:])
    for m in range(1, 5):
        changed = latents.clone()
        changed[:, m] += 3.0
        moved = predict_next_frames(model, changed, cond, gen())
        torch.testing.assert_close(moved[:, : m + 1], base[:, : m + 1])  # f_m's own prediction is unchanged
        if m < 4:
            assert not torch.allclose(moved[:, m + 1], base[:, m + 1])


def test_delta_predictions_step_from_the_true_frame_before():
    model = make_model(target="delta", delta_scale=0.1)
    latents, cond = toy_batch(b=1, f=4)
    shifted = latents.clone()
    shifted[:, 2] += 1.0  # the frame f_3 steps from
    a = predict_next_frames(model, latents, cond, gen())
    b = predict_next_frames(model, shifted, cond, gen())
    change = (b[:, 3] - a[:, 3]).abs().mean()
    assert 0.8 < float(change) < 1.2  # the step rides on the frame before; the model's change differs little


def test_share_picks_which_history_frames_are_the_models_own():
    model = make_model(target="delta")
    latents, cond = toy_batch(b=3, f=6)
    assert own_history(model, latents, cond, 0.0, gen()) is latents
    keep_first = torch.tensor([True, False, False])
    mixed = own_history(model, latents, cond, 1.0, gen(), keep_first=keep_first)
    predicted = predict_next_frames(model, latents, cond, gen())
    torch.testing.assert_close(mixed[:, 0], latents[:, 0])
    torch.testing.assert_close(mixed[0, 1], latents[0, 1])  # a window whose f_1 has no true predecessor
    torch.testing.assert_close(mixed[1:, 1:], predicted[1:, 1:])
    torch.testing.assert_close(mixed[0, 2:], predicted[0, 2:])
    half = own_history(model, latents, cond, 0.5, gen(3))
    swapped = ~torch.isclose(half, latents).all(dim=(2, 3))
    assert 0 < int(swapped.sum()) < 15 and not swapped[:, 0].any()
    with pytest.raises(ValueError, match="share must be in"):
        own_history(model, latents, cond, 1.5)


def test_the_loss_reads_the_history_and_targets_the_true_frames():
    model = make_model(target="delta")
    latents, cond = toy_batch(b=2, f=4)
    history = latents + 0.3 * torch.randn(latents.shape, generator=gen(9))
    history[:, 0] = latents[:, 0]
    plain = model.loss(latents, cond, gen())
    assert torch.equal(model.loss(latents, cond, gen(), history=latents), plain)
    own = model.loss(latents, cond, gen(), history=history)
    assert not torch.allclose(own, plain)
    other_start = latents.clone()
    other_start[:, 0] += 1.0  # f_0 is read from the history and is never a target
    assert torch.equal(model.loss(other_start, cond, gen(), history=history), own)
    with pytest.raises(ValueError, match="history must match"):
        model.loss(latents, cond, history=history[:, :3])


def test_config_checks_the_share():
    from avatarlm.trainer.ar_config import ARTrainConfig

    with pytest.raises(ValueError, match="own_history must be in"):
        ARTrainConfig(model=ARConfig(), own_history=1.5)
    assert isinstance(make_model(), ARModel)


def test_a_rollout_is_the_models_own_free_running_generation():
    """Rolled-out windows hold the frames a session-style run (start + step, history noise) makes; the
    others stay true, and windows whose reference is elsewhere are never rolled out."""
    from avatarlm.trainer.own_history import roll_out

    model = open_head(make_model(target="delta")).eval()
    latents, cond = toy_batch(b=3, f=5)
    rolled = roll_out(model, latents, cond, gen(4))
    g = gen(4)
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=g))
    state = model.start(latents[:, 0], seed=seed)
    for j in range(4):
        torch.testing.assert_close(rolled[:, j + 1], model.step(state, cond[:, j + 1], generator=g))
    torch.testing.assert_close(rolled[:, 0], latents[:, 0])
    keep_first = torch.tensor([False, True, False])
    mixed = own_history(model, latents, cond, 1.0, gen(), keep_first=keep_first, mode="rollout")
    assert torch.equal(mixed[1], latents[1])
    assert not torch.allclose(mixed[0, 1:], latents[0, 1:]) and not torch.allclose(
        mixed[2, 1:], latents[2, 1:]
    )
    with pytest.raises(ValueError, match="mode must be one of"):
        own_history(model, latents, cond, 0.5, mode="dream")


def test_rollouts_follow_a_chunked_model_a_chunk_at_a_time():
    from avatarlm.trainer.own_history import roll_out

    model = open_head(make_model(target="delta", chunk_size=2)).eval()
    latents, cond = toy_batch(b=2, f=6)  # 5 generated frames: chunks of 2, the last one partial
    rolled = roll_out(model, latents, cond, gen(1))
    assert rolled.shape == latents.shape and torch.isfinite(rolled).all()


@pytest.mark.parametrize("pull", [1.0, 0.25])
def test_the_delta_target_undoes_the_pulled_share_of_a_history_error(pull, monkeypatch):
    model = make_model(target="delta", delta_scale=0.1)
    latents, cond = toy_batch(b=1, f=3)
    history = latents.clone()
    history[:, 1] += 0.5  # f_1 is off by 0.5 everywhere
    seen = {}

    def capture(target, *args, **kwargs):
        seen["target"] = target
        return target.sum() * 0

    monkeypatch.setattr(model.head, "loss", capture)
    model.loss(latents, cond, gen(), history=history, history_pull=pull)
    truth = (latents[:, 1:] - latents[:, :-1]) / 0.1
    expected = truth.clone()
    expected[:, 1] -= pull * 0.5 / 0.1  # f_2's target pulls back that share of f_1's error
    torch.testing.assert_close(seen["target"].reshape(expected.shape), expected)
