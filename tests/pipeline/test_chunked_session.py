"""A session with a chunked model (n = 3, the paper's layout with n = 6): frames come a chunk at a time,
once the chunk's conditions are complete; any chunking of the audio gives the same frames, the offline run
agrees, and the window rolls by whole chunks."""

import numpy as np
import pytest

from ar_helpers import random_pipeline_folder
from avatarlm.conditions.projector import ConditionBatch
from avatarlm.pipeline.folder import load_pipeline
from avatarlm.pipeline.offline import generate_clip
from avatarlm.pipeline.session import SessionConfig, StreamingSession

N = 3


@pytest.fixture(scope="module")
def chunked(tmp_path_factory):
    return load_pipeline(random_pipeline_folder(tmp_path_factory.mktemp("chunked"), chunk_size=N))


@pytest.fixture(scope="module")
def audio():
    t = np.arange(int(1.32 * 16000)) / 16000  # 33 frames: a last partial chunk
    return (0.3 * np.sin(2 * np.pi * 180 * t) * (t % 0.4 < 0.2)).astype(np.float32)


def stream(pipe, audio, sizes, config):
    session = StreamingSession(pipe, identity_seed=4, config=config)
    frames, counts = [f for _, f in session.frames()], []
    for chunk in np.split(audio, np.cumsum(sizes)[:-1]):
        session.push_audio(chunk)
        got = [f for _, f in session.frames()]
        counts.append(len(got))
        frames += got
    session.flush()
    frames += [f for _, f in session.frames()]
    return np.stack(frames), counts, session


def test_frames_come_a_chunk_at_a_time_and_match_the_offline_run(chunked, audio):
    big = SessionConfig(window_frames=60, evict_frames=30)
    frames, counts, session = stream(chunked, audio, [640] * (len(audio) // 640) + [len(audio) % 640], big)
    assert frames.shape == (1 + 33, 64, 64, 3)
    assert set(counts) <= {0, N}  # a chunk's frames all at once, when its conditions are complete
    f = len(audio) // 640
    offline = generate_clip(
        chunked.autoencoder, chunked.model, session.reference, ConditionBatch(audio=audio, num_frames=f)
    )
    assert np.abs(offline.astype(int) - frames.astype(int)).max() <= 2
    rng = np.random.default_rng(0)
    sizes = []
    while sum(sizes) < len(audio):
        sizes.append(int(rng.integers(1, 3000)))
    sizes[-1] -= sum(sizes) - len(audio)
    again, _, _ = stream(chunked, audio, sizes, big)
    np.testing.assert_array_equal(again, frames)


def test_the_window_rolls_by_whole_chunks(chunked, audio):
    config = SessionConfig(window_frames=6, evict_frames=3)
    frames, _, session = stream(chunked, audio, [len(audio)], config)
    assert len(frames) == 34
    per_chunk = N * (chunked.model.config.cond_tokens_per_frame + chunked.model.config.tokens_per_frame)
    assert session._state.cache.length <= (1 + 6 // N + 1) * per_chunk  # first chunk + window + one chunk
    with pytest.raises(ValueError, match="whole chunks"):
        StreamingSession(chunked, identity_seed=4, config=SessionConfig(window_frames=7, evict_frames=3))
    with pytest.raises(ValueError, match="whole chunks"):
        StreamingSession(chunked, identity_seed=4, config=SessionConfig(roll="reencode"))


def test_the_default_window_rounds_to_whole_chunks_and_set_values_must_be_multiples(chunked):
    sizes = {n: SessionConfig().for_chunks(n) for n in (1, 3, 4, 6)}
    assert {n: (c.window_frames, c.evict_frames) for n, c in sizes.items()} == {
        1: (30, 10),
        3: (30, 9),
        4: (28, 8),
        6: (30, 12),
    }
    session = StreamingSession(chunked, identity_seed=4)  # the defaults serve a chunked model as they are
    assert (session.config.window_frames, session.config.evict_frames) == (30, 9)
    assert SessionConfig(window_frames=12, evict_frames=6).for_chunks(N).window_frames == 12
    with pytest.raises(ValueError, match="whole chunks"):
        SessionConfig(window_frames=12, evict_frames=4).for_chunks(N)
