"""The protocol's parsing: every valid command, every refusal a clear ProtocolError, never another error."""

from __future__ import annotations

import base64
import contextlib
import io
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from avatarlm.conditions.pose import NUM_KEYPOINTS
from avatarlm.serve import protocol as P


def parse(message) -> P.Command:
    return P.parse_command(json.dumps(message), NUM_KEYPOINTS)


def png(width: int, height: int, mode: str = "RGB") -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new(mode, (width, height)).save(buf, format="PNG")
    return buf.getvalue()


def test_valid_commands():
    assert parse({"type": "say", "text": "hi"}) == P.Say("hi", "en")
    assert parse({"type": "say", "text": "hallo", "lang": "de"}) == P.Say("hallo", "de")
    assert parse({"type": "stop"}) == P.Stop()
    assert parse({"type": "instruction", "text": "smile", "seconds": 2}) == P.Instruction("smile", 2.0)
    assert parse({"type": "instruction", "text": ""}) == P.Instruction("", None)
    assert parse({"type": "audio_format", "sample_rate": 48000}) == P.AudioFormat(48000)
    assert parse({"type": "audio_format", "sample_rate": 16000, "source": "voice"}) == P.AudioFormat(
        16000, "voice"
    )
    assert parse({"type": "reset", "identity": 7}) == P.Reset(identity=7)
    assert parse({"type": "action", "id": 3}) == P.Action(3)
    pose = parse({"type": "pose", "rotation": [10, 0, -5], "keypoints": [[0.5, 0.5]] * NUM_KEYPOINTS})
    assert isinstance(pose, P.Pose) and pose.rotation.tolist() == [10, 0, -5]
    assert parse({"type": "pose", "rotation": None}) == P.Pose(None, None)


def test_reset_image_accepts_base64_and_data_urls():
    data = png(8, 8)
    b64 = base64.b64encode(data).decode()
    assert parse({"type": "reset", "image": b64}).image == data
    assert parse({"type": "reset", "image": "data:image/png;base64," + b64}).image == data
    assert P.decode_image(data).size == (8, 8)


@pytest.mark.parametrize(
    ("message", "says"),
    [
        ("not json", "JSON object"),
        ("[1, 2]", '"type"'),
        ('{"type": 3}', '"type"'),
        ('{"type": "dance"}', "unknown message type"),
        ('{"type": "say"}', "needs 'text'"),
        ('{"type": "say", "text": 5}', "wrong type"),
        ('{"type": "say", "text": "' + "a" * 600 + '"}', "longer than"),
        ('{"type": "instruction", "text": "smile", "seconds": -1}', "seconds"),
        ('{"type": "instruction", "text": "smile", "seconds": true}', "wrong type"),
        ('{"type": "audio_format", "sample_rate": 12345}', "sample_rate"),
        ('{"type": "audio_format", "sample_rate": "48000"}', "wrong type"),
        ('{"type": "audio_format", "sample_rate": 16000, "source": "ears"}', "source"),
        ('{"type": "reset"}', "exactly one"),
        ('{"type": "reset", "identity": 1, "image": "AAAA"}', "exactly one"),
        ('{"type": "reset", "identity": -1}', "identity"),
        ('{"type": "reset", "image": "***"}', "base64"),
        ('{"type": "pose", "rotation": [1, 2]}', "rotation"),
        ('{"type": "pose", "rotation": [1, 2, "x"], "keypoints": []}', "rotation"),
        ('{"type": "pose", "rotation": [1, 2, 3], "keypoints": [[0, 0]]}', "keypoints"),
        ('{"type": "pose", "rotation": [1e30, 2, 3], "keypoints": []}', "within"),
        ('{"type": "action", "id": 99999999}', "action.id"),
        ("[" * 100_000 + "]" * 100_000, "JSON"),
    ],
)
def test_refusals_say_what_is_wrong(message, says):
    with pytest.raises(P.ProtocolError, match=says):
        P.parse_command(message, NUM_KEYPOINTS)


def test_audio_messages():
    pcm = np.array([0, 16384, -32768], "<i2").tobytes()
    assert np.allclose(P.parse_audio(pcm), [0.0, 0.5, -1.0])
    with pytest.raises(P.ProtocolError, match="even"):
        P.parse_audio(b"\x00\x01\x02")
    with pytest.raises(P.ProtocolError, match="at most"):
        P.parse_audio(bytes(P.MAX_AUDIO_BYTES + 2))


def test_images_refused_before_decoding_a_bomb():
    bomb = png(5000, 5000, mode="1")  # 25 M pixels in a few kB
    assert len(bomb) < 100_000
    with pytest.raises(P.ProtocolError, match="over"):
        P.decode_image(bomb)
    with pytest.raises(P.ProtocolError, match="cannot be read"):
        P.decode_image(b"GIF89a-not-really")
    with pytest.raises(P.ProtocolError, match="cannot be read"):
        P.decode_image(png(8, 8)[:40])  # truncated


def test_binary_header_round_trip():
    message = P.pack(P.FRAME, 12, 0.48, b"jpeg")
    assert P.unpack(message) == (P.FRAME, 12, 0.48, b"jpeg")
    with pytest.raises(P.ProtocolError):
        P.unpack(b"\x01")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
message_types = st.sampled_from(
    ["say", "stop", "instruction", "pose", "audio_format", "reset", "action", "x"]
)


@settings(max_examples=300, deadline=None)
@given(
    st.text(max_size=200)
    | st.builds(
        lambda t, d: json.dumps({**d, "type": t}),
        message_types,
        st.dictionaries(
            st.sampled_from(
                ["text", "lang", "seconds", "rotation", "keypoints", "sample_rate", "identity", "image", "id"]
            ),
            json_values,
            max_size=4,
        ),
    )
)
def test_fuzzed_messages_parse_or_are_refused(message):
    with contextlib.suppress(P.ProtocolError):
        P.parse_command(message, NUM_KEYPOINTS)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_fuzzed_binary_never_escapes(data):
    for parse_bytes in (P.parse_audio, P.decode_image):
        with contextlib.suppress(P.ProtocolError):
            parse_bytes(data)
