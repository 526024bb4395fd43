"""The anchor against drift: it moves every channel but the mouth's toward the reference, streaming and
offline alike, bounds a free-running walk, and is on by default only where the mouth has channels of its own."""

import numpy as np
import pytest
import torch

from ar_helpers import random_pipeline_folder
from avatarlm.conditions.projector import ConditionBatch
from avatarlm.generation import GenerationState
from avatarlm.pipeline.anchor import DEFAULT_ANCHOR, anchor_step, default_anchor, resolve_anchor
from avatarlm.pipeline.folder import load_pipeline
from avatarlm.pipeline.offline import generate_clip, generate_latents
from avatarlm.pipeline.session import SessionConfig, StreamingSession

MOUTH = 2  # of the test autoencoder's 8 channels


@pytest.fixture(scope="module")
def mouth_pipe(tmp_path_factory):
    return load_pipeline(random_pipeline_folder(tmp_path_factory.mktemp("anchor"), mouth_channels=MOUTH))


def speech(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * 16000)) / 16000
    return (0.3 * np.sin(2 * np.pi * 200 * t) * (t % 0.4 < 0.2)).astype(np.float32)


def test_anchor_step_pulls_all_but_the_mouth_channels():
    latent = torch.randn(2, 16, 8)
    reference = torch.randn(16, 8)
    state = GenerationState(cache=None, seed=0, frame=3, latent=latent.clone())  # type: ignore[arg-type]
    anchor_step(state, reference, MOUTH, 0.25)
    torch.testing.assert_close(state.latent[..., :MOUTH], latent[..., :MOUTH])
    expected = latent[..., MOUTH:] + 0.25 * (reference[..., MOUTH:] - latent[..., MOUTH:])
    torch.testing.assert_close(state.latent[..., MOUTH:], expected)
    before = state.latent.clone()
    anchor_step(state, reference, MOUTH, 0.0)
    assert torch.equal(state.latent, before)


def test_default_anchor_only_for_talking_heads_with_mouth_channels(pipe, mouth_pipe, tmp_path):
    assert default_anchor(mouth_pipe.autoencoder, mouth_pipe.model) == DEFAULT_ANCHOR
    assert default_anchor(pipe.autoencoder, pipe.model) == 0.0  # no mouth channels: the mouth would be held
    world = load_pipeline(random_pipeline_folder(tmp_path, modalities=("action",), mouth_channels=MOUTH))
    assert default_anchor(world.autoencoder, world.model) == 0.0
    assert StreamingSession(mouth_pipe, identity_seed=1).config.anchor == DEFAULT_ANCHOR
    assert (
        StreamingSession(mouth_pipe, identity_seed=1, config=SessionConfig(anchor=0.0)).config.anchor == 0.0
    )
    with pytest.raises(ValueError, match="anchor must be in"):
        SessionConfig(anchor=1.0)
    with pytest.raises(ValueError, match="anchor must be in"):
        resolve_anchor(-0.1, pipe.autoencoder, pipe.model)


def test_anchored_session_agrees_with_the_anchored_offline_run(mouth_pipe):
    audio = speech(1.2)
    session = StreamingSession(
        mouth_pipe, identity_seed=3, config=SessionConfig(window_frames=64, anchor=0.2)
    )
    session.push_audio(audio)
    session.flush()
    streamed = np.stack([f for _, f in session.frames()])
    f = len(audio) // 640
    cond = ConditionBatch(audio=audio, num_frames=f)
    ae, model = mouth_pipe.autoencoder, mouth_pipe.model
    offline = generate_clip(ae, model, session.reference, cond, anchor=0.2)
    diff = np.abs(offline.astype(int) - streamed.astype(int))
    assert diff.max() <= 2 and diff.mean() < 0.01
    free = generate_clip(ae, model, session.reference, cond, anchor=0.0)
    assert np.abs(offline.astype(int) - free.astype(int)).mean() > 0.5  # the anchor changes the frames


def test_anchor_bounds_a_free_running_walk(mouth_pipe):
    """A random delta-target model walks away from its reference; anchored, the non-mouth channels stay
    within reach of it while the mouth channels still move as much as without the anchor."""
    model, ae = mouth_pipe.model, mouth_pipe.autoencoder
    reference = torch.randn(16, 8)
    cond = model.encode_conditions(ConditionBatch(audio=speech(6.0), num_frames=150))[0]
    walks = {a: generate_latents(model, reference, cond, anchor=a, free_channels=MOUTH) for a in (0.0, 0.2)}
    far = {a: (w[-50:, :, MOUTH:] - reference[:, MOUTH:]).norm(dim=(1, 2)).mean() for a, w in walks.items()}
    assert far[0.2] < 0.5 * far[0.0]
    motion = {a: (w[1:, :, :MOUTH] - w[:-1, :, :MOUTH]).abs().mean() for a, w in walks.items()}
    assert motion[0.2] > 0.5 * motion[0.0]
    assert ae.config.mouth_channels == MOUTH
