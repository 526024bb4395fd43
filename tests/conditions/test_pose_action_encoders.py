import pytest
import torch

from avatarlm.conditions.action import ActionEncoder
from avatarlm.conditions.config import ConditionConfig
from avatarlm.conditions.pose import NUM_KEYPOINTS, PoseEncoder, pose_features


def test_pose_features_are_normalised():
    pose = torch.tensor([[[30.0, -15.0, 0.0]]])
    keypoints = torch.zeros(1, 1, NUM_KEYPOINTS, 2)
    keypoints[..., 0, :] = torch.tensor([1.0, 0.5])
    feats = pose_features(pose, keypoints)
    assert feats.shape == (1, 1, 3 + 2 * NUM_KEYPOINTS) and NUM_KEYPOINTS == 23
    assert feats[0, 0, :5].tolist() == [1.0, -0.5, 0.0, 1.0, 0.0]
    assert feats[0, 0, 5:].eq(-1.0).all()


def test_pose_encoder_shapes_and_errors():
    enc = PoseEncoder(ConditionConfig.preset("tiny", pose_tokens=2))
    out = enc(torch.zeros(3, 4, 3), torch.rand(3, 4, NUM_KEYPOINTS, 2))
    assert out.shape == (3, 4, 2, 256)
    with pytest.raises(ValueError, match="keypoints"):
        enc(torch.zeros(3, 4, 3), torch.rand(3, 4, 5, 2))
    with pytest.raises(ValueError, match="yaw/pitch/roll"):
        enc(torch.zeros(3, 4, 2), torch.rand(3, 4, NUM_KEYPOINTS, 2))


def test_action_encoder_embeds_ids_and_marks_none():
    enc = ActionEncoder(
        ConditionConfig.preset("tiny", modalities=("action",), num_actions=4, action_tokens=2)
    )
    tokens, present = enc(torch.tensor([[0, 3, -1, 3]]))
    assert tokens.shape == (1, 4, 2, 256)
    assert present.tolist() == [[True, True, False, True]]
    assert torch.equal(tokens[0, 1], tokens[0, 3]) and not torch.equal(tokens[0, 0], tokens[0, 1])
    with pytest.raises(ValueError, match="integer ids"):
        enc(torch.zeros(1, 4))


def _turning_pose(frames: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    pose = torch.cumsum(torch.randn(2, frames, 3, generator=g) * 3.0, dim=1)
    keypoints = 0.5 + torch.cumsum(torch.randn(2, frames, NUM_KEYPOINTS, 2, generator=g) * 0.01, dim=1)
    return pose, keypoints


def test_the_change_branch_starts_at_zero_and_then_reads_the_change_of_pose():
    torch.manual_seed(0)
    plain = PoseEncoder(ConditionConfig.preset("tiny"))
    delta = PoseEncoder(ConditionConfig.preset("tiny", pose_delta=True))
    assert delta.load_state_dict(plain.state_dict(), strict=False).missing_keys == [
        "delta.weight",
        "delta.bias",
    ]
    pose, keypoints = _turning_pose(6)
    torch.testing.assert_close(delta(pose, keypoints), plain(pose, keypoints), atol=0, rtol=0)
    torch.nn.init.normal_(delta.delta.weight)
    moved = delta(pose, keypoints)
    # the first frame has no frame before it: it reads no change, so it is still the plain encoder's
    torch.testing.assert_close(moved[:, 0], plain(pose, keypoints)[:, 0], atol=0, rtol=0)
    assert (moved[:, 1:] - plain(pose, keypoints)[:, 1:]).abs().amax() > 1e-3
    # a pose held still reads no change at all
    still = pose[:, :1].expand(-1, 4, -1), keypoints[:, :1].expand(-1, 4, -1, -1)
    torch.testing.assert_close(delta(*still), plain(*still), atol=0, rtol=0)


def test_the_change_branch_streamed_frame_by_frame_equals_the_whole_clip():
    enc = PoseEncoder(ConditionConfig.preset("tiny", pose_delta=True))
    torch.nn.init.normal_(enc.delta.weight)
    pose, keypoints = _turning_pose(7, seed=1)
    whole = enc(pose[:, 1:], keypoints[:, 1:], previous=(pose[:, 0], keypoints[:, 0]))
    frames = [
        enc(pose[:, i : i + 1], keypoints[:, i : i + 1], previous=(pose[:, i - 1], keypoints[:, i - 1]))
        for i in range(1, 7)
    ]
    torch.testing.assert_close(torch.cat(frames, dim=1), whole, atol=1e-6, rtol=0)
    assert not torch.allclose(
        whole[:, 0], enc(pose[:, 1:], keypoints[:, 1:])[:, 0]
    )  # the previous pose counts
    with pytest.raises(ValueError, match="previous pose"):
        enc(pose, keypoints, previous=(pose[:, 0, :2], keypoints[:, 0]))
