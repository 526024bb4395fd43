"""The WebSocket protocol of `avatarlm serve`: what each side sends, and its validation.

Client -> server
  * JSON text messages, one command each (``type`` picks it):
      ``{"type": "say", "text": "Hello!", "lang": "en"}``        the avatar speaks the text (espeak-ng voice)
      ``{"type": "stop"}``                                      it stops speaking at once (barge-in)
      ``{"type": "instruction", "text": "smile", "seconds": 2}`` an instruction for the next 2 s (no
                                                                ``seconds``: until replaced; "" clears)
      ``{"type": "pose", "rotation": [yaw, pitch, roll], "keypoints": [[x, y], ...]}``  (``null``: free)
      ``{"type": "audio_format", "sample_rate": 48000, "source": "microphone"}``  what the binary audio that
                                                                follows is: its rate, and its source
      ``{"type": "reset", "identity": 7}`` or ``{"type": "reset", "image": "<base64 PNG/JPEG>"}``  a new face
      ``{"type": "action", "id": 3}``                            world models only
      ``{"type": "conversation", "on": true, "lang": "en"}``      conversation mode: the microphone's turns
                                                                are transcribed, answered and spoken
  * binary messages: audio, mono PCM16 little-endian at the declared rate (16 kHz until ``audio_format``
    says otherwise). Source "microphone" (the default): a duplex model hears it as the partner (it
    listens), a one-stream model as its own voice (it lip-syncs the microphone); it is never sent back.
    Source "voice": the avatar's own voice, e.g. a voice agent's text-to-speech — queued like ``say``,
    lip-synced, and sent back with the frames.

Server -> client
  * JSON: ``ready`` (session facts), ``stats`` (once a second), ``warning``, ``error`` (the session goes on
    unless the server closes the socket right after); in conversation mode ``turn`` (what was heard, the
    answer) and ``barge_in``.
  * binary, a 13-byte header ``<B I d`` (kind, index, seconds of video time) then the payload:
      kind 1: a video frame, JPEG; kind 2: the avatar's voice for the frame of the same index, PCM16 mono at
      16 kHz. Each frame's sound leaves with it, so a client that plays what it receives keeps lips and
      sound in sync (the sound is delayed by the session's audio-to-lip latency).
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

HEADER = struct.Struct("<BId")
FRAME, VOICE = 1, 2
MAX_TEXT_CHARS = 500
MAX_IMAGE_BYTES = 4 * 1024 * 1024
MAX_IMAGE_PIXELS = 4096 * 4096
MAX_AUDIO_BYTES = 64 * 1024  # one binary message: 1 s at 32 kHz
MAX_JSON_BYTES = 6 * 1024 * 1024  # a base64 image and its envelope
SAMPLE_RATES = (8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000)
AUDIO_SOURCES = ("microphone", "voice")


class ProtocolError(ValueError):
    """A message the server refuses; its text goes back to the client as ``{"type": "error"}``."""


@dataclass(frozen=True)
class Say:
    text: str
    lang: str = "en"


@dataclass(frozen=True)
class Stop:
    pass


@dataclass(frozen=True)
class Instruction:
    text: str
    seconds: float | None = None


@dataclass(frozen=True)
class Pose:
    rotation: np.ndarray | None
    keypoints: np.ndarray | None


@dataclass(frozen=True)
class AudioFormat:
    sample_rate: int
    source: str = "microphone"  # or "voice"


@dataclass(frozen=True)
class Reset:
    identity: int | None = None
    image: bytes | None = None  # the encoded file, checked by decode_image


@dataclass(frozen=True)
class Action:
    id: int


@dataclass(frozen=True)
class Conversation:
    on: bool
    lang: str = "en"


Command = Say | Stop | Instruction | Pose | AudioFormat | Reset | Action | Conversation


def _field(msg: dict[str, Any], name: str, kind: type | tuple[type, ...], required: bool = True) -> Any:
    value = msg.get(name)
    if value is None:
        if required:
            raise ProtocolError(f"{msg['type']!r} needs {name!r}")
        return None
    if isinstance(value, bool) or not isinstance(value, kind):
        raise ProtocolError(f"{msg['type']}.{name} has the wrong type ({type(value).__name__})")
    return value


def _text(msg: dict[str, Any], name: str, required: bool = True) -> str | None:
    value = _field(msg, name, str, required)
    if value is not None and len(value) > MAX_TEXT_CHARS:
        raise ProtocolError(f"{msg['type']}.{name} is longer than {MAX_TEXT_CHARS} characters")
    return value


def _array(value: Any, shape: tuple[int, ...], what: str, bound: float) -> np.ndarray:
    try:
        with np.errstate(all="ignore"):  # huge numbers become inf, refused below
            array = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError, OverflowError):
        raise ProtocolError(f"pose.{what} must be numbers of shape {shape}") from None
    if array.shape != shape or not np.isfinite(array).all():
        raise ProtocolError(f"pose.{what} must be finite numbers of shape {shape}, got shape {array.shape}")
    if np.abs(array).max() > bound:
        raise ProtocolError(f"pose.{what} must lie within ±{bound:g}")
    return array


def parse_command(text: str, keypoints: int) -> Command:
    """One JSON text message -> a command; anything else raises :class:`ProtocolError` (never another error)."""
    if len(text) > MAX_JSON_BYTES:
        raise ProtocolError(f"message over {MAX_JSON_BYTES} bytes")
    try:
        msg = json.loads(text)
    except (ValueError, RecursionError):
        raise ProtocolError("a text message must be one JSON object") from None
    if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
        raise ProtocolError('a text message must be a JSON object with a "type"')
    kind = msg["type"]
    if kind == "say":
        return Say(str(_text(msg, "text")), str(_text(msg, "lang", required=False) or "en"))
    if kind == "stop":
        return Stop()
    if kind == "instruction":
        seconds = _field(msg, "seconds", (int, float), required=False)
        if seconds is not None and not 0 < seconds <= 600:
            raise ProtocolError("instruction.seconds must be in (0, 600]")
        return Instruction(str(_text(msg, "text")), None if seconds is None else float(seconds))
    if kind == "pose":
        if msg.get("rotation") is None:
            return Pose(None, None)
        return Pose(
            _array(msg["rotation"], (3,), "rotation", 180.0),  # degrees
            _array(msg.get("keypoints"), (keypoints, 2), "keypoints", 2.0),  # fractions of the image
        )
    if kind == "audio_format":
        rate = _field(msg, "sample_rate", int)
        if rate not in SAMPLE_RATES:
            raise ProtocolError(f"audio_format.sample_rate must be one of {SAMPLE_RATES}, got {rate}")
        source = _field(msg, "source", str, required=False) or "microphone"
        if source not in AUDIO_SOURCES:
            raise ProtocolError(f"audio_format.source must be one of {AUDIO_SOURCES}, got {source[:20]!r}")
        return AudioFormat(rate, source)
    if kind == "reset":
        identity = _field(msg, "identity", int, required=False)
        image = _field(msg, "image", str, required=False)
        if (identity is None) == (image is None):
            raise ProtocolError("reset needs exactly one of 'identity' or 'image'")
        if identity is not None:
            if not 0 <= identity < 2**31:
                raise ProtocolError("reset.identity must be in [0, 2^31)")
            return Reset(identity=identity)
        if "," in image[:100]:  # a data: URL
            image = image.split(",", 1)[1]
        try:
            data = base64.b64decode(image, validate=True)
        except (binascii.Error, ValueError):
            raise ProtocolError("reset.image must be base64 (or a data: URL)") from None
        if len(data) > MAX_IMAGE_BYTES:
            raise ProtocolError(f"reset.image is over {MAX_IMAGE_BYTES // 2**20} MiB")
        return Reset(image=data)
    if kind == "action":
        action = _field(msg, "id", int)
        if not 0 <= action < 2**16:
            raise ProtocolError("action.id must be in [0, 65536)")
        return Action(action)
    if kind == "conversation":
        on = msg.get("on")
        if not isinstance(on, bool):
            raise ProtocolError("conversation.on must be true or false")
        return Conversation(on, str(_text(msg, "lang", required=False) or "en"))
    raise ProtocolError(
        f"unknown message type {kind[:40]!r}; known: say, stop, instruction, pose, audio_format, reset, action, "
        "conversation"
    )


def parse_audio(data: bytes) -> np.ndarray:
    """A binary message -> float32 mono samples in [-1, 1]."""
    if len(data) > MAX_AUDIO_BYTES:
        raise ProtocolError(f"an audio message must be at most {MAX_AUDIO_BYTES} bytes")
    if len(data) % 2:
        raise ProtocolError("an audio message must be PCM16: an even number of bytes")
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0


def decode_image(data: bytes) -> Any:
    """The image file of a ``reset`` as an RGB PIL image, refusing decompression bombs before decoding."""
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(io.BytesIO(data))
        width, height = image.size
        if width * height > MAX_IMAGE_PIXELS:
            raise ProtocolError(f"reset.image is {width}x{height}: over {MAX_IMAGE_PIXELS} pixels")
        return image.convert("RGB")
    except ProtocolError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError, SyntaxError) as e:
        raise ProtocolError(f"reset.image cannot be read as an image ({type(e).__name__})") from None


def pack(kind: int, index: int, seconds: float, payload: bytes) -> bytes:
    return HEADER.pack(kind, index, seconds) + payload


def unpack(message: bytes) -> tuple[int, int, float, bytes]:
    """A server binary message -> (kind, index, seconds, payload)."""
    if len(message) < HEADER.size:
        raise ProtocolError("a binary message shorter than its header")
    kind, index, seconds = HEADER.unpack_from(message)
    return kind, index, seconds, message[HEADER.size :]
