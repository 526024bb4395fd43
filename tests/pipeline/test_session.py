"""The streaming session: any chunking gives the same frames, the offline run agrees, the rolling window
keeps memory bounded and shows the model what training showed it, bad input is refused."""

import numpy as np
import pytest
import torch

from ae_helpers import randomize_fusions
from ar_helpers import random_pipeline_folder
from avatarlm.autoencoder import DCAutoencoder
from avatarlm.conditions.pose import NUM_KEYPOINTS
from avatarlm.conditions.projector import ConditionBatch
from avatarlm.pipeline.folder import Pipeline, load_pipeline
from avatarlm.pipeline.offline import generate_clip
from avatarlm.pipeline.session import SessionConfig, StreamingSession

SECONDS = 1.6  # 40 frames


@pytest.fixture(scope="module")
def audio():
    t = np.arange(int(SECONDS * 16000)) / 16000
    rng = np.random.default_rng(0)
    return (0.3 * np.sin(2 * np.pi * 220 * t) * (t % 0.4 < 0.2) + 0.01 * rng.standard_normal(len(t))).astype(
        np.float32
    )


def run(pipe, audio, chunks, config=None, identity_seed=7):
    session = StreamingSession(pipe, identity_seed=identity_seed, config=config)
    frames = []
    for chunk in np.split(audio, np.cumsum(chunks)[:-1]) if chunks else [audio]:
        session.push_audio(chunk)
        frames += [f for _, f in session.frames()]
    session.flush()
    out = session.frames()
    frames += [f for _, f in out]
    return np.stack(frames), session


@pytest.mark.parametrize(
    "window",
    [
        SessionConfig(window_frames=64),
        SessionConfig(window_frames=6, evict_frames=2, roll="reencode"),
        SessionConfig(window_frames=6, evict_frames=2, roll="rotate"),
    ],
)
def test_any_chunking_gives_identical_frames(pipe, audio, window):
    whole, session = run(pipe, audio, None, window)
    assert whole.shape == (1 + len(audio) // 640, 64, 64, 3)
    rng = np.random.default_rng(1)
    sizes = []
    while sum(sizes) < len(audio):
        sizes.append(int(rng.integers(1, 2000)))
    sizes[-1] -= sum(sizes) - len(audio)
    pieces, _ = run(pipe, audio, sizes, window)
    np.testing.assert_array_equal(pieces, whole)
    assert [t.index for t in session.timings] == list(range(1, len(whole)))


def test_session_agrees_with_the_offline_run(pipe, audio):
    streamed, _ = run(pipe, audio, [320] * (len(audio) // 320), SessionConfig(window_frames=64))
    f = len(audio) // 640
    ref = StreamingSession(pipe, identity_seed=7).reference
    offline = generate_clip(pipe.autoencoder, pipe.model, ref, ConditionBatch(audio=audio, num_frames=f))
    assert offline.shape == streamed.shape
    diff = np.abs(offline.astype(int) - streamed.astype(int))
    assert diff.max() <= 2 and diff.mean() < 0.01  # batched audio encoding rounds differently (~1e-6)


def test_a_reference_reading_decoder_streams_as_it_decodes_offline(pipe, random_pipeline, audio):
    """The session hands its reference picture to the decoder, as `generate_clip(reference_image=)` does."""
    ae = DCAutoencoder.from_pretrained(random_pipeline / "ae", reference_levels=2).eval()
    randomize_fusions(ae)
    reading = Pipeline(ae, pipe.model, pipe.info)
    streamed, session = run(reading, audio, [320] * (len(audio) // 320), SessionConfig(window_frames=64))
    cond = ConditionBatch(audio=audio, num_frames=len(audio) // 640)
    ref, image = session.reference, session.reference_image
    offline = generate_clip(ae, pipe.model, ref, cond, reference_image=image)
    diff = np.abs(offline.astype(int) - streamed.astype(int))
    assert diff.max() <= 2 and diff.mean() < 0.01
    plain = generate_clip(pipe.autoencoder, pipe.model, ref, cond)
    assert np.abs(offline.astype(int) - plain.astype(int)).mean() > 0.5  # the picture is read


def test_guided_offline_run_agrees_with_a_guided_session(pipe, audio):
    """`eval lipsync --lip-strength` generates offline what a session with that lip strength streams."""
    cfg = SessionConfig(window_frames=64, lip_strength=3.0)
    streamed, _ = run(pipe, audio, [320] * (len(audio) // 320), cfg)
    f = len(audio) // 640
    ref = StreamingSession(pipe, identity_seed=7).reference
    cond = ConditionBatch(audio=audio, num_frames=f)
    offline = generate_clip(pipe.autoencoder, pipe.model, ref, cond, lip_strength=3.0)
    plain = generate_clip(pipe.autoencoder, pipe.model, ref, cond)
    diff = np.abs(offline.astype(int) - streamed.astype(int))
    assert diff.max() <= 2 and diff.mean() < 0.01
    assert np.abs(offline.astype(int) - plain.astype(int)).mean() > 0.01  # the guidance does something


def test_rolling_window_bounds_memory_and_matches_the_training_layout(pipe, audio):
    cfg = SessionConfig(window_frames=6, evict_frames=2, roll="reencode")
    frames, session = run(pipe, audio, None, cfg)
    model, state = pipe.model, session._state
    per_frame = model.config.cond_tokens_per_frame + model.config.tokens_per_frame
    assert state.cache.length <= cfg.window_frames * per_frame  # 40 frames in, at most 6 in the window
    # the next step after a roll sees what a training window with a reference from elsewhere shows:
    # [cond(j_s)][f_0][cond(j_s+1)][f_{j_s}] ... compare its hidden states with the full forward pass
    kept = session._kept
    last = kept[-1]
    cond_next = torch.randn(1, model.config.cond_tokens_per_frame, model.config.hidden_size)
    model.step(state, cond_next.clone())
    lat = torch.stack([session.reference] + [k.latent for k in kept])[None]
    noisy, sigmas = [], []
    for i, index in enumerate([0] + [k.index for k in kept]):
        x, s = model.history_latent(lat[:, i], index, cfg.seed)
        noisy.append(x)
        sigmas.append(s)
    conds = torch.stack([k.cond[0] for k in kept] + [cond_next[0]])[None]
    hidden, layout = model.hidden_states(torch.stack(noisy, 1), torch.tensor([sigmas]), conds)
    rows = layout.latent_index[-1]
    torch.testing.assert_close(state.hidden, hidden[:, rows], atol=1e-4, rtol=1e-4)
    assert last.index == len(frames) - 1


def test_a_rotated_roll_bounds_memory_without_a_pass_and_stays_close(pipe, audio):
    reencoded, _ = run(pipe, audio, None, SessionConfig(window_frames=6, evict_frames=2, roll="reencode"))
    rotated, session = run(pipe, audio, None, SessionConfig(window_frames=6, evict_frames=2, roll="rotate"))
    per_frame = pipe.model.config.cond_tokens_per_frame + pipe.model.config.tokens_per_frame
    assert session._state.cache.length <= 6 * per_frame
    assert [t.index for t in session.timings] == list(range(1, len(rotated)))
    np.testing.assert_array_equal(rotated[:8], reencoded[:8])  # identical until the first roll
    diff = np.abs(rotated.astype(int) - reencoded.astype(int))
    assert 0 < diff.mean() < 20  # afterwards close to, not equal to, the training layout
    with pytest.raises(ValueError, match="roll"):
        SessionConfig(roll="sideways")


def test_other_sample_rates_stream_through_one_resampler(pipe, audio):
    """44.1 kHz input: any chunking gives identical frames, close to the 16 kHz session's."""
    from scipy.signal import resample_poly

    native = resample_poly(audio, 441, 160).astype(np.float32)

    def frames_of(chunks):
        session = StreamingSession(pipe, identity_seed=7)
        out = []
        for c in chunks:
            session.push_audio(c, sample_rate=44100)
            out += [f for _, f in session.frames()]
        session.flush()
        return np.stack(out + [f for _, f in session.frames()])

    whole = frames_of([native])
    np.testing.assert_array_equal(frames_of(np.array_split(native, 37)), whole)
    at_16k, _ = run(pipe, audio, None)
    assert whole.shape == at_16k.shape
    assert np.abs(whole.astype(int) - at_16k.astype(int)).mean() < 3.0


def test_a_live_session_goes_on_in_silence_when_the_audio_stops(pipe, audio):
    session = StreamingSession(pipe, identity_seed=7, config=SessionConfig(grace_seconds=0.2))
    session.push_audio(audio[:8000])  # 0.5 s
    assert len(list(session.frames())) == 1 + 12 - 2  # the reference + 12 frames, less the look-ahead
    session.advance(now=0.6)  # within the grace period: nothing is invented
    assert session.silence_filled == 0 and not list(session.frames())
    session.advance(now=2.0)  # 1.5 s late: all but the last 0.2 s is silence
    assert session.silence_filled == int(1.8 * 16000) - 8000
    assert len(list(session.frames())) == int(1.8 * 25) - 2 - 10
    session.push_audio(audio[8000:9600])  # speech resumes after the silence
    assert session.frames_out == int(1.8 * 25) - 2 + 1 and len(list(session.frames())) == 2


def test_lip_strength_guides_the_audio_and_keeps_the_session_rules(pipe, audio):
    """Guidance 1 is the plain session; other strengths change the frames, stay chunking-invariant through
    window rolls, and a guided step with one condition in both rows equals the unguided step."""
    plain, _ = run(pipe, audio, None, SessionConfig(window_frames=6, evict_frames=2))
    same, _ = run(pipe, audio, None, SessionConfig(window_frames=6, evict_frames=2, lip_strength=1.0))
    np.testing.assert_array_equal(plain, same)
    cfg = SessionConfig(window_frames=6, evict_frames=2, lip_strength=3.0)
    strong, session = run(pipe, audio, None, cfg)
    assert strong.shape == plain.shape and not np.array_equal(strong, plain)
    pieces, _ = run(pipe, audio, [700] * (len(audio) // 700) + [len(audio) % 700], cfg)
    np.testing.assert_array_equal(pieces, strong)
    assert session._state.cache.keys[0].shape[0] == 2  # two rows over one history
    model = pipe.model
    ref = session.reference[None]
    cond = torch.randn(1, model.config.cond_tokens_per_frame, model.config.hidden_size)
    one = model.step(model.start(ref, seed=3), cond)
    two = model.step(model.start(ref.expand(2, -1, -1), seed=3), cond.expand(2, -1, -1), guidance=3.0)
    torch.testing.assert_close(two, one.expand(2, -1, -1))
    with pytest.raises(ValueError, match="2 rows"):
        model.step(model.start(ref, seed=3), cond, guidance=2.0)


@pytest.fixture(scope="module")
def pose_delta_pipe(tmp_path_factory):
    return load_pipeline(random_pipeline_folder(tmp_path_factory.mktemp("delta"), pose_delta=True))


@pytest.mark.parametrize("delta", [False, True], ids=["pose", "pose and its change"])
def test_pushed_pose_reaches_the_model_like_the_offline_conditions(pipe, pose_delta_pipe, audio, delta):
    pipe = pose_delta_pipe if delta else pipe
    n = 12
    rng = np.random.default_rng(3)
    pose = rng.uniform(-20, 20, (n, 3)).astype(np.float32)
    keypoints = rng.uniform(0, 1, (n, NUM_KEYPOINTS, 2)).astype(np.float32)
    session = StreamingSession(pipe, identity_seed=7, config=SessionConfig(window_frames=64))
    frames = [f for _, f in session.frames()]
    session.push_audio(audio[: 2 * 640])  # the look-ahead of frame 1
    for j in range(1, n):
        session.push_pose(pose[j], keypoints[j])
        session.push_audio(audio[(j + 1) * 640 : (j + 2) * 640])
        frames += [f for _, f in session.frames()]
    streamed = np.stack(frames)
    cond = ConditionBatch(
        audio=audio[: (n + 1) * 640], num_frames=n - 1, pose=torch.from_numpy(pose[None, 1:]),
        keypoints=torch.from_numpy(keypoints[None, 1:]),
    )  # fmt: skip
    offline = generate_clip(pipe.autoencoder, pipe.model, session.reference, cond)
    assert streamed.shape == offline.shape == (n, 64, 64, 3)
    to_offline = np.abs(offline.astype(int) - streamed.astype(int))
    assert to_offline.max() <= 2
    pose_free = run(pipe, audio[: (n + 1) * 640], None, SessionConfig(window_frames=64))[0][:n]
    assert np.abs(pose_free.astype(int) - streamed.astype(int)).mean() > 10 * to_offline.mean()
    with pytest.raises(ValueError, match="rotation"):
        session.push_pose(np.zeros(2))
    with pytest.raises(ValueError, match="finite"):
        session.push_pose(np.full(3, np.nan), keypoints[0])
    session.push_pose(None)  # cleared: null pose tokens again


def test_timed_instructions_reach_the_frames_they_span(pipe, audio):
    session = StreamingSession(pipe, identity_seed=7, config=SessionConfig(window_frames=64))
    session.push_text("smile", span=(0.2, 0.6))  # frames 5..14
    session.push_text("look left", span=(0.5, 0.7))  # frames 12..17: the later push wins where they overlap
    frames = [f for _, f in session.frames()]
    for chunk in np.split(audio, 8):
        session.push_audio(chunk)
        frames += [f for _, f in session.frames()]
    session.flush()
    frames += [f for _, f in session.frames()]
    n = len(frames) - 1
    texts = [None] * n
    for j in range(1, n + 1):
        texts[j - 1] = "look left" if 12 <= j < 18 else "smile" if 5 <= j < 15 else None
    cond = ConditionBatch(audio=audio, num_frames=n, text=[texts])
    offline = generate_clip(pipe.autoencoder, pipe.model, session.reference, cond)
    to_offline = np.abs(offline.astype(int) - np.stack(frames).astype(int))
    assert to_offline.max() <= 2
    plain, _ = run(pipe, audio, None, SessionConfig(window_frames=64))
    assert np.abs(plain.astype(int) - np.stack(frames).astype(int)).mean() > 10 * to_offline.mean()
    np.testing.assert_array_equal(plain[:5], np.stack(frames)[:5])  # before the first span: no instruction
    with pytest.raises(ValueError, match="span"):
        session.push_text("smile", span=(2.0, 1.0))


def test_bad_input_is_refused(pipe):
    with pytest.raises(ValueError, match="exactly one of"):
        StreamingSession(pipe)
    session = StreamingSession(pipe, reference=np.zeros((64, 64, 3), np.uint8))
    session.push_audio(np.zeros(441, np.float32), sample_rate=44100)
    with pytest.raises(ValueError, match="this session's self audio is 44100 Hz"):
        session.push_audio(np.zeros(100, np.float32))
    with pytest.raises(ValueError, match="1-D"):
        session.push_audio(np.zeros((2, 100), np.float32))
    with pytest.raises(ValueError, match="int16 or float"):
        session.push_audio(np.zeros(100, np.int32))
    with pytest.raises(ValueError, match="finite"):
        session.push_audio(np.full(100, np.nan, np.float32))
    with pytest.raises(ValueError, match="grace_seconds"):
        SessionConfig(grace_seconds=-1.0)
    with pytest.raises(ValueError, match="lip_strength"):
        SessionConfig(lip_strength=-1.0)
    with pytest.raises(ValueError, match="evict_frames"):
        SessionConfig(window_frames=4, evict_frames=4)
    with pytest.raises(ValueError, match="reference image must be uint8"):
        StreamingSession(pipe, reference=np.zeros((32, 32, 3), np.uint8))
    with pytest.raises(ValueError, match="partner audio needs a duplex model"):
        session.push_partner_audio(np.zeros(100, np.float32))
    session = StreamingSession(pipe, reference=np.zeros((64, 64, 3), np.uint8))
    session.push_audio((np.ones(1280) * 1000).astype(np.int16))  # int16 PCM is fine
    assert len(list(session.frames())) == 1  # only the reference: the look-ahead is still missing
