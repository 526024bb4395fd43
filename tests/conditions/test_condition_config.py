import pytest

from avatarlm.conditions.config import ConditionConfig
from avatarlm.config import config_from_dict


@pytest.mark.parametrize("name", ["tiny", "small", "paper"])
def test_presets_round_trip_through_json(name):
    cfg = ConditionConfig.preset(name)
    assert config_from_dict(cfg.to_dict()) == cfg
    assert cfg.samples_per_frame == 640 and cfg.mel_frames_per_frame == 4


def test_token_count_follows_enabled_modalities():
    cfg = ConditionConfig.preset("tiny", audio_streams=2, audio_tokens=2, pose_tokens=3)
    assert cfg.tokens_per_frame == 4 + 3 + 1
    world = ConditionConfig.preset("tiny", modalities=("action",), num_actions=5, action_tokens=2)
    assert world.tokens_per_frame == 2


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (dict(fps=24), "fps=24"),
        (dict(modalities=("audio", "smell")), "smell"),
        (dict(modalities=("pose", "audio")), "order"),
        (dict(modalities=("action",)), "num_actions"),
        (dict(audio_streams=3), "audio_streams"),
        (dict(lookahead_frames=-1), "lookahead_frames"),
        (dict(text_encoder="bert"), "bert"),
        (dict(pose_dropout=1.5), "pose_dropout"),
        (dict(d_model=0), "d_model"),
    ],
)
def test_bad_values_raise_naming_them(overrides, message):
    with pytest.raises(ValueError, match=message):
        ConditionConfig.preset("tiny", **overrides)
