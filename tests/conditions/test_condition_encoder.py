import pytest
import torch

from avatarlm.conditions import ConditionBatch, ConditionConfig, ConditionEncoder
from avatarlm.data.render import KEYPOINT_NAMES

B, F, K = 2, 6, len(KEYPOINT_NAMES)
ALL = ("audio", "pose", "text", "action")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _config(**overrides):
    return ConditionConfig.preset("tiny", modalities=ALL, num_actions=7, audio_streams=2, **overrides)


@pytest.fixture(scope="module")
def encoder():
    torch.manual_seed(0)
    return ConditionEncoder(_config(pose_tokens=2)).eval()


def _full_batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    return ConditionBatch(
        audio=0.2 * torch.randn(B, 2, F * 640, generator=g),
        pose=10 * torch.randn(B, F, 3, generator=g),
        keypoints=torch.rand(B, F, K, 2, generator=g),
        text=[["smile"] * F, [None, None, "nod", "nod", "", "look left"]],
        action=torch.tensor([[0, 1, 2, 3, 4, 5], [6, -1, -1, 0, 0, 0]]),
    )


def test_fixed_token_count_and_slot_layout(encoder):
    cfg = encoder.cfg
    assert cfg.tokens_per_frame == 2 + 2 + 1 + 1
    assert encoder.slots == {
        "audio": slice(0, 2),
        "pose": slice(2, 4),
        "text": slice(4, 5),
        "action": slice(5, 6),
    }
    with torch.no_grad():
        full = encoder(_full_batch())
        empty = encoder(ConditionBatch(batch_size=B, num_frames=F))
        audio_only = encoder(ConditionBatch(audio=_full_batch().audio))
    assert full.shape == empty.shape == audio_only.shape == (B, F, 6, cfg.d_model)


def test_missing_modalities_use_null_tokens(encoder):
    batch = _full_batch()
    with torch.no_grad():
        full = encoder(batch)
        no_pose = encoder(ConditionBatch(audio=batch.audio, text=batch.text, action=batch.action))
        empty = encoder(ConditionBatch(batch_size=B, num_frames=F))
    pose = encoder.slots["pose"]
    null_pose = encoder.null_tokens["pose"] + encoder.slot_embedding[pose]
    assert torch.equal(no_pose[:, :, pose], null_pose.expand(B, F, -1, -1))
    assert not torch.allclose(full[:, :, pose], no_pose[:, :, pose])
    others = [i for i in range(6) if i not in range(pose.start, pose.stop)]
    assert torch.equal(no_pose[:, :, others], full[:, :, others])  # modalities do not mix
    assert torch.equal(empty[0], empty[1])  # all-null frames are identical


def test_per_frame_absence_of_text_and_action(encoder):
    with torch.no_grad():
        out = encoder(_full_batch())
    text, action = encoder.slots["text"], encoder.slots["action"]
    null_text = encoder.null_tokens["text"] + encoder.slot_embedding[text]
    assert torch.equal(out[1, 0, text], null_text) and torch.equal(out[1, 4, text], null_text)
    assert not torch.allclose(out[1, 2, text], null_text)
    assert torch.equal(out[1, 2, text], out[1, 3, text])  # same instruction, same tokens
    null_action = encoder.null_tokens["action"] + encoder.slot_embedding[action]
    assert torch.equal(out[1, 1, action], null_action)
    assert torch.equal(out[0, 0, action], out[1, 3, action])  # action 0 in both


def test_pose_tokens_depend_on_pose(encoder):
    batch = _full_batch()
    with torch.no_grad():
        base = encoder(batch)
        batch.pose = batch.pose.clone()
        batch.pose[0, 3, 0] += 15.0  # yaw of one frame
        turned = encoder(batch)
        batch.keypoints = batch.keypoints.clone()
        batch.keypoints[1, 2, 0] += 0.05
        moved = encoder(batch)
    pose = encoder.slots["pose"]
    changed = (turned - base).abs().amax(dim=(2, 3)) > 0
    assert changed[0, 3] and changed.sum() == 1
    assert not torch.allclose(moved[1, 2, pose], turned[1, 2, pose])


def test_dropout_only_in_training():
    torch.manual_seed(0)
    encoder = ConditionEncoder(
        _config(audio_dropout=1.0, pose_dropout=1.0, text_dropout=1.0, action_dropout=1.0)
    )
    batch = _full_batch()
    with torch.no_grad():
        empty = encoder.eval()(ConditionBatch(batch_size=B, num_frames=F))
        assert not torch.allclose(encoder(batch), empty)
        assert torch.equal(encoder.train()(batch), empty)  # everything dropped -> all null


def test_pose_dropout_is_per_sample_and_random():
    torch.manual_seed(0)
    encoder = ConditionEncoder(
        _config(pose_dropout=0.5, audio_dropout=0.0, text_dropout=0.0, action_dropout=0.0)
    )
    batch = ConditionBatch(pose=torch.zeros(16, F, 3), keypoints=torch.full((16, F, K, 2), 0.5))
    pose = encoder.slots["pose"]
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        null = encoder.null_tokens["pose"] + encoder.slot_embedding[pose]
        dropped = (encoder.train()(batch, generator=g)[:, :, pose] == null).flatten(2).all(-1)  # (16, F)
    assert torch.equal(dropped.all(1), dropped.any(1))  # whole clips, not single frames
    assert 0 < int(dropped[:, 0].sum()) < 16


def test_streamed_audio_tokens_plug_in(encoder):
    batch = _full_batch()
    state = encoder.audio_stream(batch_size=B)
    tokens = torch.cat([state.push(batch.audio), state.flush()], dim=1)
    with torch.no_grad():
        from_samples = encoder(ConditionBatch(audio=batch.audio))
        from_tokens = encoder(ConditionBatch(audio_tokens=tokens))
    assert (from_samples - from_tokens).abs().max() < 1e-5


def test_inconsistent_or_unknown_inputs_raise(encoder):
    with pytest.raises(ValueError, match="batch, frames"):
        encoder(
            ConditionBatch(
                pose=torch.zeros(B, F, 3),
                keypoints=torch.zeros(B, F, K, 2),
                action=torch.zeros(B, F + 1, dtype=torch.long),
            )
        )
    with pytest.raises(ValueError, match="together"):
        encoder(ConditionBatch(pose=torch.zeros(B, F, 3)))
    with pytest.raises(ValueError, match="action ids"):
        encoder(ConditionBatch(action=torch.full((B, F), 7)))
    with pytest.raises(ValueError, match="num_frames"):
        encoder(ConditionBatch())
    audio_only = ConditionEncoder(ConditionConfig.preset("tiny", modalities=("audio",)))
    with pytest.raises(ValueError, match="not enabled"):
        audio_only(ConditionBatch(text=[["smile"]]))
