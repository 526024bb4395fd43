"""A duplex session hears two streams (its own voice, the partner's) pushed independently, in any chunking
and at any rate, and agrees with the offline run on the aligned two-stream audio."""

import numpy as np
import pytest
import torch

from ar_helpers import random_pipeline_folder
from avatarlm.conditions.projector import ConditionBatch
from avatarlm.pipeline.audio_input import AudioInput
from avatarlm.pipeline.folder import load_pipeline
from avatarlm.pipeline.generate import generate_video
from avatarlm.pipeline.offline import generate_clip
from avatarlm.pipeline.session import SessionConfig, StreamingSession

N = 16000  # 1 s, 25 frames


@pytest.fixture(scope="module")
def duplex(tmp_path_factory):
    return load_pipeline(random_pipeline_folder(tmp_path_factory.mktemp("duplex"), audio_streams=2))


@pytest.fixture(scope="module")
def voices():
    t = np.arange(N) / 16000
    rng = np.random.default_rng(0)
    own = 0.3 * np.sin(2 * np.pi * 200 * t) * (t < 0.5) + 0.01 * rng.standard_normal(N)
    partner = 0.3 * np.sin(2 * np.pi * 300 * t) * (t >= 0.5) + 0.01 * rng.standard_normal(N)
    return own.astype(np.float32), partner.astype(np.float32)


def pieces(audio, seed):
    rng = np.random.default_rng(seed)
    cuts = np.sort(rng.choice(np.arange(1, len(audio)), size=12, replace=False))
    return np.split(audio, cuts)


def run(pipe, own_chunks, partner_chunks):
    session = StreamingSession(pipe, identity_seed=3, config=SessionConfig(window_frames=64))
    frames = [f for _, f in session.frames()]
    for i in range(max(len(own_chunks), len(partner_chunks))):
        if i < len(own_chunks):
            session.push_audio(own_chunks[i])
        if i < len(partner_chunks):
            session.push_partner_audio(partner_chunks[i])
        frames += [f for _, f in session.frames()]
    session.flush()
    frames += [f for _, f in session.frames()]
    return np.stack(frames), session


def test_two_streams_in_any_chunking_give_identical_frames_and_match_offline(duplex, voices):
    own, partner = voices
    whole, session = run(duplex, [own], [partner])
    assert whole.shape == (26, 64, 64, 3)
    split, _ = run(duplex, pieces(own, 1), pieces(partner, 2))
    np.testing.assert_array_equal(split, whole)
    audio = torch.from_numpy(np.stack([own, partner]))[None]
    offline = generate_clip(
        duplex.autoencoder, duplex.model, session.reference, ConditionBatch(audio=audio, num_frames=25)
    )
    assert np.abs(offline.astype(int) - whole.astype(int)).max() <= 2


def test_the_streams_reach_the_encoder_aligned_and_in_their_slots(duplex, voices):
    own, partner = voices
    encoder = duplex.model.conditions.encoders["audio"]
    audio_in = AudioInput(duplex.model.conditions.audio_stream(1))
    got = [audio_in.push(1, p) for p in pieces(partner, 3)] + [audio_in.push(0, p) for p in pieces(own, 4)]
    tokens = torch.cat([*got, audio_in.flush()], dim=1)
    with torch.no_grad():
        offline = encoder.encode(torch.from_numpy(np.stack([own, partner]))[None])
        swapped = encoder.encode(torch.from_numpy(np.stack([partner, own]))[None])
    assert tokens.shape == offline.shape == (1, 25, 2, duplex.model.config.hidden_size)
    torch.testing.assert_close(tokens, offline, atol=1e-5, rtol=0)
    assert (swapped - offline).abs().max() > 1e-2  # the slots differ: the model knows who speaks


def test_a_frame_waits_for_both_streams_and_a_silent_partner_is_filled_on_the_clock(duplex, voices):
    own, partner = voices
    session = StreamingSession(duplex, identity_seed=3, config=SessionConfig(grace_seconds=0.2))
    list(session.frames())  # the reference
    session.push_audio(own)
    assert not list(session.frames())  # the partner's stream has not arrived
    session.push_partner_audio(partner[:3200])  # 0.2 s of it: frames whose look-ahead it covers
    assert len(list(session.frames())) == 3
    session.advance(now=0.8)  # the partner went quiet: silence up to 0.6 s
    assert session.silence_filled == int(0.6 * 16000) - 3200
    assert len(list(session.frames())) == 15 - 3 - 2  # 0.6 s = 15 frames, less the look-ahead of 2
    with pytest.raises(ValueError, match="partner audio is 16000 Hz"):
        session.push_partner_audio(partner[:441], sample_rate=44100)


def test_generate_a_duplex_clip_with_both_voices_in_stereo(duplex, voices, tmp_path):
    import av

    own, partner = voices
    report = generate_video(duplex, own[:12000], tmp_path / "talk.mp4", identity_seed=3, partner=partner)
    assert report.frames == 26  # the longer stream (1 s) sets the length
    with av.open(str(tmp_path / "talk.mp4")) as box:
        (sound,) = box.streams.audio
        assert sound.channels == 2 and box.streams.video[0].frames == 26
