"""A small Python client of `avatarlm serve` (protocol: ``protocol.py``)::

async with AvatarClient("ws://127.0.0.1:8000/ws") as avatar:
    await avatar.say("Hello there!", lang="en")
    async for event in avatar.events():
        if isinstance(event, Frame):
            ...  # event.image: uint8 H x W x 3
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import cv2
import numpy as np

from avatarlm.serve import protocol as P


@dataclass
class Frame:
    index: int
    seconds: float
    jpeg: bytes

    @property
    def image(self) -> np.ndarray:
        """The frame decoded: uint8 (H, W, 3) RGB."""
        bgr = cv2.imdecode(np.frombuffer(self.jpeg, np.uint8), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f"frame {self.index} is not a readable JPEG")
        return bgr[:, :, ::-1].copy()


@dataclass
class Voice:
    """The avatar's voice that goes with frame ``index``: PCM16 mono at 16 kHz."""

    index: int
    seconds: float
    pcm: np.ndarray


class ServerError(RuntimeError):
    pass


class AvatarClient:
    def __init__(
        self, url: str = "ws://127.0.0.1:8000/ws", token: str | None = None, identity: int | None = None
    ):
        query = {k: v for k, v in (("token", token), ("identity", identity)) if v is not None}
        self.url = url + ("?" + urlencode(query) if query else "")
        self.ready: dict[str, Any] = {}
        self._ws: Any = None
        self._format = (16000, "microphone")

    async def __aenter__(self) -> AvatarClient:
        from websockets.asyncio.client import connect

        self._ws = await connect(self.url, max_size=P.MAX_JSON_BYTES)
        first = json.loads(await self._ws.recv())
        if first.get("type") != "ready":
            await self._ws.close()
            raise ServerError(first.get("message", f"unexpected first message {first}"))
        self.ready = first
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the session; what the server still sends meanwhile is read and dropped, so its closing
        message is not stuck behind unread frames (a client that stopped reading would wait 10 s)."""
        if self._ws is None:
            return
        drain = asyncio.create_task(self._drain())
        try:
            await self._ws.close()
        finally:
            drain.cancel()
            await asyncio.gather(drain, return_exceptions=True)

    async def _drain(self) -> None:
        from websockets.exceptions import ConcurrencyError, ConnectionClosed

        with contextlib.suppress(ConnectionClosed, ConcurrencyError):
            while True:
                await self._ws.recv()

    async def send(self, message: dict[str, Any]) -> None:
        await self._ws.send(json.dumps(message))

    async def say(self, text: str, lang: str = "en") -> None:
        await self.send({"type": "say", "text": text, "lang": lang})

    async def stop(self) -> None:
        await self.send({"type": "stop"})

    async def instruct(self, text: str, seconds: float | None = None) -> None:
        await self.send({"type": "instruction", "text": text, "seconds": seconds})

    async def reset(self, identity: int | None = None, image: str | Path | None = None) -> None:
        if image is not None:
            await self.send({"type": "reset", "image": base64.b64encode(Path(image).read_bytes()).decode()})
        else:
            await self.send({"type": "reset", "identity": identity or 0})

    async def send_audio(self, pcm: np.ndarray, sample_rate: int = 16000, source: str = "microphone") -> None:
        """Audio, float in [-1, 1] or int16, mono, in messages of at most 0.5 s. ``source="microphone"``: the
        user (the avatar listens, or lip-syncs it with a one-stream model); ``"voice"``: the avatar's own
        voice (say, a voice agent's speech), lip-synced and returned with the frames."""
        if (sample_rate, source) != self._format:
            await self.send({"type": "audio_format", "sample_rate": sample_rate, "source": source})
            self._format = (sample_rate, source)
        data = np.asarray(pcm)
        if data.dtype != np.int16:
            data = (np.clip(data, -1.0, 1.0) * 32767).astype(np.int16)
        step = sample_rate // 2
        for i in range(0, len(data), step):
            await self._ws.send(data[i : i + step].astype("<i2").tobytes())

    async def events(self) -> AsyncIterator[Frame | Voice | dict[str, Any]]:
        """Everything the server sends, decoded, until it closes the connection."""
        from websockets.exceptions import ConnectionClosed

        try:
            async for message in self._ws:
                if isinstance(message, str):
                    yield json.loads(message)
                    continue
                kind, index, seconds, payload = P.unpack(message)
                if kind == P.FRAME:
                    yield Frame(index, seconds, payload)
                elif kind == P.VOICE:
                    yield Voice(index, seconds, np.frombuffer(payload, "<i2"))
        except ConnectionClosed:
            return
