import numpy as np
import pytest
import torch

from avatarlm.conditions.audio import AudioEncoder
from avatarlm.conditions.config import ConditionConfig

SPF = 640  # samples per 40 ms video frame


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Hundreds of tiny ops: one thread is faster and immune to oversubscription on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def encoder():
    torch.manual_seed(0)
    return AudioEncoder(ConditionConfig.preset("tiny", lookahead_frames=2)).eval()


@pytest.fixture(scope="module")
def audio():
    g = torch.Generator().manual_seed(1)
    t = torch.arange(20 * SPF + 123) / 16_000
    return 0.3 * torch.sin(2 * np.pi * 220 * t * (1 + t)) + 0.05 * torch.randn(t.shape, generator=g)


def _stream(encoder, audio, sizes):
    state = encoder.stream()
    outs, pos, i = [], 0, 0
    while pos < audio.shape[-1]:
        n = sizes[i % len(sizes)]
        outs.append(state.push(audio[..., pos : pos + n]))
        pos, i = pos + n, i + 1
    available = torch.cat(outs, dim=1)
    return available, torch.cat([available, state.flush()], dim=1)


def test_shapes_and_frame_count(encoder, audio):
    with torch.no_grad():
        tokens = encoder.encode(audio)
        assert tokens.shape == (1, audio.shape[-1] // SPF, 1, 256)
        assert encoder.encode(audio, num_frames=30).shape[1] == 30
        assert encoder.encode(audio[:100]).shape == (1, 0, 1, 256)


@pytest.mark.parametrize("j", [0, 5, 14])
def test_tokens_see_audio_up_to_the_lookahead_horizon_and_no_further(encoder, audio, j):
    horizon = (j + 1 + encoder.cfg.lookahead_frames) * SPF  # position j reads samples < horizon
    with torch.no_grad():
        base = encoder.encode(audio)
        after = audio.clone()
        after[horizon:] = torch.randn(after.shape[0] - horizon)
        changed_after = encoder.encode(after)
        inside = audio.clone()
        inside[horizon - 1] += 0.5
        changed_inside = encoder.encode(inside)
    assert torch.equal(changed_after[:, : j + 1], base[:, : j + 1])
    assert not torch.allclose(changed_after[:, j + 1], base[:, j + 1])  # the bound is tight
    assert not torch.allclose(changed_inside[:, j], base[:, j])
    assert torch.equal(changed_inside[:, :j], base[:, :j])


@pytest.mark.parametrize("sizes", [[320], [1, 2, 3, 700], [SPF], [7, 1999, 640, 33], [100_000]], ids=str)
def test_streaming_is_bit_identical_for_any_chunking(encoder, audio, sizes):
    available, flushed = _stream(encoder, audio, sizes)
    exact = encoder.encode_exact(audio)
    assert torch.equal(flushed, exact)
    n = audio.shape[-1]
    assert available.shape[1] == n // SPF - encoder.cfg.lookahead_frames  # horizon reached
    with torch.no_grad():
        assert (flushed - encoder.encode(audio)).abs().max() < 1e-5  # batched matmuls round differently


def test_random_chunk_sizes_match_offline(encoder, audio):
    rng = np.random.default_rng(3)
    _, flushed = _stream(encoder, audio, [int(s) for s in rng.integers(1, 2500, size=24)])
    assert torch.equal(flushed, encoder.encode_exact(audio))


def test_tokens_become_available_when_their_horizon_arrives(encoder, audio):
    state = encoder.stream()
    lookahead = encoder.cfg.lookahead_frames
    assert state.push(audio[: (1 + lookahead) * SPF - 1]).shape[1] == 0
    assert state.push(audio[(1 + lookahead) * SPF - 1 : (1 + lookahead) * SPF]).shape[1] == 1
    state.flush()
    with pytest.raises(ValueError, match="flushed"):
        state.push(audio[:10])


def test_two_streams_share_weights_and_differ_by_the_stream_embedding():
    torch.manual_seed(0)
    encoder = AudioEncoder(ConditionConfig.preset("tiny", audio_streams=2)).eval()
    mono = torch.randn(8 * SPF) * 0.2
    with torch.no_grad():
        tokens = encoder.encode(torch.stack([mono, mono])[None])
    assert tokens.shape == (1, 8, 2, 256)
    difference = tokens[:, :, 1] - tokens[:, :, 0]
    expected = encoder.stream_embedding.weight[1] - encoder.stream_embedding.weight[0]
    assert (difference - expected).abs().max() < 1e-6
    state = encoder.stream()
    streamed = torch.cat([state.push(torch.stack([mono, mono])), state.flush()], dim=1)
    assert torch.equal(streamed, encoder.encode_exact(torch.stack([mono, mono])))


def test_bad_audio_shapes_raise():
    encoder = AudioEncoder(ConditionConfig.preset("tiny", audio_streams=2))
    with pytest.raises(ValueError, match="streams=2"):
        encoder.encode(torch.zeros(1, 3, 4 * SPF))
    with pytest.raises(ValueError, match="num_frames"):
        encoder.encode(torch.zeros(2, 4 * SPF), num_frames=-1)
