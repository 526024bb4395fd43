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
