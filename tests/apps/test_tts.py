import numpy as np
import pytest

from avatarlm.apps.tts import SpeechStream, TTSConfig, stream_reply, synthesize_reply
from avatarlm.data.speech.utterance import SAMPLE_RATE

REPLY = "Hello! It is nice to meet you."


@pytest.fixture(scope="module")
def stream() -> SpeechStream:
    return stream_reply(REPLY)


def test_reply_streams_in_20ms_chunks_that_rebuild_the_utterance(stream):
    utterance = stream.utterance
    assert utterance.text == REPLY and utterance.language == "en" and utterance.engine == "espeak"
    assert 1.0 < utterance.duration < 5.0 and len(utterance.phonemes) > 10
    fresh = SpeechStream(utterance, stream.chunk_samples)
    chunks = list(fresh)
    assert fresh.chunk_samples == 320 and len(chunks) == fresh.total_chunks
    assert all(c.shape == (320,) and c.dtype == np.float32 for c in chunks)
    joined = np.concatenate(chunks)
    n = len(utterance.audio)
    assert np.array_equal(joined[:n], utterance.audio) and not joined[n:].any()  # last chunk: padded
    assert fresh.done and not fresh.stopped and fresh.position_s == pytest.approx(utterance.duration)
    assert fresh.next_chunk() is None


def test_stop_cuts_the_stream_mid_way(stream):
    fresh = SpeechStream(stream.utterance, 320)
    played = [fresh.next_chunk() for _ in range(10)]
    assert all(c is not None for c in played)
    assert fresh.position_s == pytest.approx(10 * 320 / SAMPLE_RATE) and not fresh.done
    fresh.stop()
    assert fresh.done and fresh.stopped and fresh.next_chunk() is None and list(fresh) == []
    assert fresh.position_s == pytest.approx(0.2)  # nothing more was handed out


def test_chunk_length_and_other_languages():
    cfg = TTSConfig(language="es", voice="f2", chunk_s=0.04, rate=1.2)
    spanish = stream_reply("Hola, ¿cómo estás?", cfg)
    assert spanish.utterance.language == "es" and spanish.chunk_samples == 640
    assert next(iter(spanish)).shape == (640,)
    # the same reply twice is the same audio (espeak is reproducible)
    assert np.array_equal(synthesize_reply(REPLY).audio, synthesize_reply(REPLY).audio)


@pytest.mark.parametrize("text", ["", "   ", None])
def test_empty_reply_is_rejected(text):
    with pytest.raises(ValueError, match="non-empty text"):
        stream_reply(text)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"language": "xx"}, "unknown language 'xx'"),
        ({"engine": "festival"}, "engine must be one of"),
        ({"engine": "piper", "language": "es"}, "speaks only 'en'"),
        ({"voice": "nobody"}, "unknown espeak voice 'nobody'"),
        ({"rate": 5.0}, "rate must be"),
        ({"pitch": 120.0}, "pitch must be"),
        ({"chunk_s": 0.0}, "chunk_s must be"),
        ({"chunk_s": 0.0201}, "whole number"),
    ],
)
def test_bad_settings_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TTSConfig(**kwargs)


def test_a_stream_needs_positive_chunks(stream):
    with pytest.raises(ValueError, match="chunk_samples"):
        SpeechStream(stream.utterance, 0)
