"""Actions in a streaming session: a world model (actions, no audio) is clocked by its actions and agrees
with the offline run; a model that hears audio and takes actions holds the running action."""

import numpy as np
import pytest
import torch

from ar_helpers import random_pipeline_folder
from avatarlm.conditions.projector import ConditionBatch
from avatarlm.pipeline.folder import load_pipeline
from avatarlm.pipeline.offline import generate_clip
from avatarlm.pipeline.session import SessionConfig, StreamingSession

ACTIONS = [0, 3, 3, 1, 4, 4, 4, 2, None, 0, 1, 1]


def loud_actions(pipe):
    """Untrained action embeddings are tiny (std 0.02); make them large enough to reach the frames."""
    with torch.no_grad():
        pipe.model.conditions.encoders["action"].embedding.weight.normal_(0.0, 1.0)
    return pipe


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    folder = random_pipeline_folder(tmp_path_factory.mktemp("world"), modalities=("action",))
    return loud_actions(load_pipeline(folder))


@pytest.fixture(scope="module")
def hearing(tmp_path_factory):
    folder = random_pipeline_folder(tmp_path_factory.mktemp("hear"), modalities=("audio", "action"))
    return loud_actions(load_pipeline(folder))


def play(pipe, pushes, config=None):
    session = StreamingSession(pipe, identity_seed=3, config=config)
    frames = [f for _, f in session.frames()]
    for action, repeat in pushes:
        session.push_action(action, repeat)
        frames += [f for _, f in session.frames()]
    return np.stack(frames), session


def test_world_session_is_clocked_by_actions_and_matches_the_offline_run(world):
    one_by_one, session = play(world, [(a, 1) for a in ACTIONS])
    assert len(one_by_one) == 1 + len(ACTIONS)  # every action gives its frame at once
    held, _ = play(world, [(0, 1), (3, 2), (1, 1), (4, 3), (2, 1), (None, 1), (0, 1), (1, 2)])
    np.testing.assert_array_equal(held, one_by_one)
    ids = torch.tensor([[-1 if a is None else a for a in ACTIONS]])
    offline = generate_clip(world.autoencoder, world.model, session.reference, ConditionBatch(action=ids))
    diff = np.abs(offline.astype(int) - one_by_one.astype(int))
    assert diff.max() <= 1 and diff.mean() < 0.01
    other, _ = play(world, [(((a or 0) + 1) % 5, 1) for a in ACTIONS])
    assert not np.array_equal(other[1:], one_by_one[1:]), "actions must reach the frames"


def test_guidance_on_a_world_model_is_on_its_actions(world):
    """The unguided row drops the actions: at strength 0 only that row is sampled, so the frames no longer
    depend on the actions; at 3 they differ from the plain session's."""
    other = [((a or 0) + 1) % 5 for a in ACTIONS]
    at = lambda s, actions: play(world, [(a, 1) for a in actions], SessionConfig(lip_strength=s))[0]  # noqa: E731
    np.testing.assert_array_equal(at(0.0, ACTIONS), at(0.0, other))
    plain = play(world, [(a, 1) for a in ACTIONS])[0]
    assert not np.array_equal(at(3.0, ACTIONS)[1:], plain[1:])


def test_world_session_rolls_its_window_and_ends_on_flush(world):
    frames, session = play(
        world, [(a, 1) for a in ACTIONS * 3], SessionConfig(window_frames=6, evict_frames=2)
    )
    assert len(frames) == 1 + 3 * len(ACTIONS) and session._state.cache.length < 40 * 16
    session.advance(100.0)  # no audio to fill: frames wait for their actions
    session.flush()
    assert list(session.frames()) == [] and session.silence_filled == 0


def test_hearing_model_holds_the_running_action(hearing):
    audio = (0.2 * np.sin(np.arange(16000 * 0.8) / 16000 * 2 * np.pi * 200)).astype(np.float32)
    runs = {}
    for action in (None, 2):
        session = StreamingSession(hearing, identity_seed=3)
        session.push_action(action)
        session.push_audio(audio)
        session.flush()
        runs[action] = np.stack([f for _, f in session.frames()])
    frames = len(audio) // 640
    ids = torch.full((1, frames), 2)
    offline = generate_clip(
        hearing.autoencoder,
        hearing.model,
        session.reference,
        ConditionBatch(audio=audio, action=ids, num_frames=frames),
    )
    assert np.abs(offline.astype(int) - runs[2].astype(int)).max() <= 2
    assert not np.array_equal(runs[2], runs[None]), "the running action must reach the frames"


def test_bad_actions_and_audio_to_a_world_model_are_refused(world, pipe):
    session = StreamingSession(world, identity_seed=1)
    for bad, message in [(5, r"action ids are 0..4"), (-2, r"action ids are 0..4"), (1.5, "integer id"),
                         (True, "integer id")]:  # fmt: skip
        with pytest.raises(ValueError, match=message):
            session.push_action(bad)
    with pytest.raises(ValueError, match="positive integer"):
        session.push_action(1, frames=0)
    with pytest.raises(ValueError, match="driven by push_action"):
        session.push_audio(np.zeros(640, np.float32))
    with pytest.raises(ValueError, match="takes no action condition"):
        StreamingSession(pipe, identity_seed=1).push_action(1)
