"""The FastAPI application of `avatarlm serve`: the page, a small HTTP API and the WebSocket ``/ws`` where
each connection owns one :class:`LiveSession` (protocol: ``protocol.py``).

Safety: sessions are capped (a connection past the cap gets a ``busy`` error and close code 1013); a
session that hears nothing for ``idle_seconds`` is closed (1000); with a token set, every API route and the
socket need it (``Authorization: Bearer`` or ``?token=``); every message is validated and a bad one gets an
``error`` message while the session goes on; a client sending more than ``max_messages_per_second`` is
closed (1008). Generation runs on worker threads, one tick at a time per session, so no state crosses
sessions.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import asdict, dataclass
from functools import partial
from importlib import resources
from typing import Any

from fastapi import FastAPI, Header, HTTPException, Query, WebSocket, WebSocketDisconnect
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

from avatarlm.conditions.pose import NUM_KEYPOINTS
from avatarlm.pipeline.folder import Pipeline
from avatarlm.pipeline.session import SessionConfig
from avatarlm.pipeline.step_batcher import StepBatcher
from avatarlm.serve import protocol as P
from avatarlm.serve.live_session import LiveSession, model_facts
from avatarlm.serve.live_world import LiveWorld, check_world

STATIC = resources.files("avatarlm.serve") / "static"
log = logging.getLogger("avatarlm.serve")


@dataclass
class ServeConfig:
    max_sessions: int = 2  # 2 cores keep about two `tiny` sessions in real time
    idle_seconds: float = 300.0
    token: str | None = None
    max_messages_per_second: float = 200.0
    jpeg_quality: int = 80
    tick_seconds: float = 0.02  # how often a session looks for new frames
    replica: str | None = None  # this process's name in /api/info (default: its pid), for many behind a proxy
    # batching: sessions' generation steps that are ready together run as one batch (continuous: a step
    # runs as soon as the model is free, and those arriving meanwhile join the next batch); batch_wait_ms
    # > 0 also lets a step wait that long for the others (and implies batching). See bench_serve.
    batching: bool = False
    batch_wait_ms: float = 0.0
    # A world model's game (crafter, vizdoom): its episodes' first frames start the sessions.
    env: str | None = None

    def __post_init__(self) -> None:
        if self.max_sessions < 1:
            raise ValueError(f"max_sessions must be >= 1, got {self.max_sessions}")
        if self.idle_seconds <= 0 or self.tick_seconds <= 0 or self.max_messages_per_second <= 0:
            raise ValueError("idle_seconds, tick_seconds and max_messages_per_second must be > 0")
        if not 0 <= self.batch_wait_ms <= 100:
            raise ValueError(f"batch_wait_ms must be in [0, 100], got {self.batch_wait_ms}")
        self.batching = self.batching or self.batch_wait_ms > 0
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be in [1, 100], got {self.jpeg_quality}")


class RateLimit:
    """A token bucket: ``allow()`` is False once more than ``rate`` messages a second (burst 2x) arrive."""

    def __init__(self, rate: float) -> None:
        self.rate, self.level, self.last = rate, 2 * rate, time.monotonic()

    def allow(self) -> bool:
        now = time.monotonic()
        self.level = min(2 * self.rate, self.level + (now - self.last) * self.rate)
        self.last = now
        self.level -= 1
        return self.level >= 0


def create_app(
    pipe: Pipeline, config: ServeConfig | None = None, session: SessionConfig | None = None
) -> FastAPI:
    cfg = config or ServeConfig()
    check_world(pipe, cfg.env)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(warm_up, pipe, session, cfg.env)  # the first frames of a process are slow
        yield
        for ws in list(app.state.live):  # graceful shutdown: tell every client
            with suppress(RuntimeError):
                await ws.close(code=1001)

    app = FastAPI(
        title="avatarlm",
        summary="A streaming talking-head generator: WebSocket /ws for live sessions (see the protocol in the README).",
        lifespan=lifespan,
    )
    app.state.live = set()  # the open sockets
    app.state.batcher = StepBatcher(pipe.model, cfg.batch_wait_ms / 1000) if cfg.batching else None

    def authorised(token: str | None, authorization: str | None) -> bool:
        if cfg.token is None:
            return True
        given = token or (authorization or "").removeprefix("Bearer ").strip()
        return hmac.compare_digest(given.encode(), cfg.token.encode())

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(str(STATIC / "index.html"))

    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")

    @app.get("/api/health")
    def health() -> dict[str, Any]:
        """Liveness: open sessions and the cap."""
        return {"ok": True, "sessions": len(app.state.live), "max_sessions": cfg.max_sessions}

    @app.get("/api/info")
    def info(token: str | None = Query(None), authorization: str | None = Header(None)) -> dict[str, Any]:
        """The model's facts (frame size and rate, audio rate and streams, conditions) and the session settings."""
        if not authorised(token, authorization):
            raise HTTPException(401, "a valid token is needed")
        replica = cfg.replica or str(os.getpid())
        return {
            **model_facts(pipe),
            "session": asdict((session or SessionConfig()).for_pipeline(pipe)),
            "replica": replica,
        }

    @app.websocket("/ws")
    async def live(
        ws: WebSocket, token: str | None = Query(None), identity: int = Query(0, ge=0, lt=2**31)
    ) -> None:
        await ws.accept()
        if not authorised(token, ws.headers.get("authorization")):
            await ws.send_json(
                {"type": "error", "code": "unauthorised", "message": "a valid token is needed"}
            )
            await ws.close(code=1008)
            return
        if len(app.state.live) >= cfg.max_sessions:
            message = f"the server is at its limit of {cfg.max_sessions} sessions; try again later"
            await ws.send_json({"type": "error", "code": "busy", "message": message})
            await ws.close(code=1013)
            return
        app.state.live.add(ws)
        try:
            await run_session(ws, pipe, cfg, session, identity, app.state.batcher)
        finally:
            app.state.live.discard(ws)

    return app


def warm_up(pipe: Pipeline, session: SessionConfig | None, env: str | None = None) -> None:
    """Generate a few frames once, so the first visitor does not wait for PyTorch's first calls."""
    live = LiveWorld(pipe, env, 0, session) if env is not None else LiveSession(pipe, 0, session)
    live.tick(0.3)


async def run_session(
    ws: WebSocket,
    pipe: Pipeline,
    cfg: ServeConfig,
    session_config: SessionConfig | None,
    identity: int,
    batcher: StepBatcher | None = None,
) -> None:
    """Two tasks: one reads and applies messages, one ticks the session and sends what it makes. A lock
    keeps them off the session at the same time (all session work runs on worker threads). With a
    ``batcher`` the session's generation steps run batched with the other sessions'."""
    live: LiveSession | LiveWorld = await asyncio.to_thread(
        partial(LiveWorld, pipe, cfg.env, identity, session_config, cfg.jpeg_quality, batcher=batcher)
        if cfg.env is not None
        else partial(LiveSession, pipe, identity, session_config, cfg.jpeg_quality, batcher=batcher)
    )
    lock = asyncio.Lock()
    last_heard = time.monotonic()
    limit = RateLimit(cfg.max_messages_per_second)
    await ws.send_json(live.ready_message())

    async def send_error(message: str) -> None:
        await ws.send_json({"type": "error", "message": message})

    async def receive() -> None:
        nonlocal last_heard
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            last_heard = time.monotonic()
            if not limit.allow():
                await send_error(f"more than {cfg.max_messages_per_second:.0f} messages a second; closing")
                await ws.close(code=1008)
                return
            try:
                async with lock:
                    if message.get("bytes") is not None:
                        await asyncio.to_thread(live.hear, message["bytes"])
                    else:
                        command = P.parse_command(message.get("text") or "", NUM_KEYPOINTS)
                        await asyncio.to_thread(live.handle, command)
            except ValueError as e:  # ProtocolError, or a value the session itself refuses
                await send_error(str(e))

    async def generate() -> None:
        next_stats = time.monotonic() + 1.0
        while True:
            if time.monotonic() - last_heard > cfg.idle_seconds:
                await send_error(f"closing an idle session (nothing heard for {cfg.idle_seconds:.0f} s)")
                await ws.close(code=1000)
                return
            async with lock:
                out = await asyncio.to_thread(live.tick)
            for item in out:
                if isinstance(item, bytes):
                    await ws.send_bytes(item)
                else:
                    await ws.send_json(item)
            if time.monotonic() >= next_stats:
                next_stats += 1.0
                await ws.send_json(live.stats.summary())
            await asyncio.sleep(cfg.tick_seconds)

    if batcher is not None:
        batcher.join()
    tasks = [asyncio.create_task(receive()), asyncio.create_task(generate())]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            error = task.exception()
            if error is not None and not isinstance(error, (WebSocketDisconnect, RuntimeError, OSError)):
                # a bug, not the client's fault: log it, tell the client, end only this session
                log.error("session failed", exc_info=error)
                with suppress(RuntimeError, WebSocketDisconnect):
                    await send_error(f"internal error ({type(error).__name__}); the session ends")
                    await ws.close(code=1011)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if batcher is not None:
            batcher.leave()
