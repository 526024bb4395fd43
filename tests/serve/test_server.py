"""The server over a real socket: the protocol end to end with the package's client, tokens, the session
cap, idle and rate limits, and malformed messages that neither crash the server nor reach another session."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosedError

from avatarlm.serve.app import ServeConfig, create_app
from avatarlm.serve.client import AvatarClient, Frame, ServerError, Voice
from serve_helpers import running


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    """(status, body) of a GET, errors included."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def ws_url(base: str) -> str:
    return base.replace("http://", "ws://") + "/ws"


async def collect(client: AvatarClient, seconds: float) -> tuple[list[Frame], list[Voice], list[dict]]:
    frames, voices, notices = [], [], []

    async def gather():
        async for event in client.events():
            if isinstance(event, Frame):
                frames.append(event)
            elif isinstance(event, Voice):
                voices.append(event)
            else:
                notices.append(event)

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(gather(), seconds)
    return frames, voices, notices


def test_talk_to_the_avatar(mono_pipe):
    async def session(url):
        async with AvatarClient(url) as avatar:
            assert avatar.ready["fps"] == 25 and avatar.ready["width"] == 64
            await avatar.say("Hello there.", lang="en")
            await avatar.instruct("smile", seconds=1.0)
            frames, voices, notices = await collect(avatar, 3.0)
        return frames, voices, notices

    with running(create_app(mono_pipe)) as base:
        frames, voices, notices = asyncio.run(session(ws_url(base)))
        for _ in range(50):  # the server notices the close a moment after the client leaves
            health = json.loads(get(base + "/api/health")[1])
            if health["sessions"] == 0:
                break
            time.sleep(0.05)
        info = json.loads(get(base + "/api/info")[1])
        page = get(base + "/")
        script = get(base + "/static/app.js")
        schema = json.loads(get(base + "/openapi.json")[1])
    assert len(frames) >= 40  # ~25 fps for 3 s, less the look-ahead and start-up
    assert [f.index for f in frames] == list(range(len(frames)))
    assert frames[-1].image.shape == (64, 64, 3)
    assert sum(int(np.abs(v.pcm).max()) > 0 for v in voices if len(v.pcm)) >= 10  # it spoke
    assert [n["type"] for n in notices if n["type"] != "stats"] == []
    assert any(n["type"] == "stats" and n["frames"] > 0 for n in notices)
    assert health == {"ok": True, "sessions": 0, "max_sessions": 2}
    assert info["audio_streams"] == 1 and info["fps"] == 25
    assert page[0] == 200 and "avatarlm" in page[1]
    assert script[0] == 200 and "WebSocket" in script[1]
    assert "/api/info" in schema["paths"]


def test_concurrent_sessions_share_batched_steps(mono_pipe):
    async def two(url):
        async with AvatarClient(url) as a, AvatarClient(url) as b:
            await a.say("Hello there, how are you?", lang="en")
            await b.say("Buenos dias.", lang="es")
            return await asyncio.gather(collect(a, 2.0), collect(b, 2.0))

    app = create_app(mono_pipe, ServeConfig(batch_wait_ms=20))
    with running(app) as base:
        runs = asyncio.run(two(ws_url(base)))
        for _ in range(50):  # the server notices the closes
            if app.state.batcher.sessions == 0:
                break
            time.sleep(0.1)
    for frames, _, notices in runs:
        assert len(frames) >= 20 and [f.index for f in frames] == list(range(len(frames)))
        assert not [n for n in notices if n["type"] in ("error", "warning")]
    batcher = app.state.batcher
    assert batcher.steps >= 40 and batcher.batches < batcher.steps  # frames of both went through together
    assert batcher.sessions == 0
    assert create_app(mono_pipe, ServeConfig(batch_wait_ms=0)).state.batcher is None
    continuous = create_app(mono_pipe, ServeConfig(batching=True)).state.batcher
    assert continuous is not None and continuous.max_wait == 0.0
    with pytest.raises(ValueError, match="batch_wait_ms"):
        ServeConfig(batch_wait_ms=-1)


def test_token_is_required_when_set(mono_pipe):
    async def attempt(url):
        with pytest.raises(ServerError, match="token"):
            async with AvatarClient(url):
                pass
        async with AvatarClient(url, token="s3cret") as avatar:
            return avatar.ready["type"]

    with running(create_app(mono_pipe, ServeConfig(token="s3cret"))) as base:
        assert asyncio.run(attempt(ws_url(base))) == "ready"
        assert get(base + "/api/info")[0] == 401
        assert get(base + "/api/info?token=wrong")[0] == 401
        assert get(base + "/api/info", {"Authorization": "Bearer s3cret"})[0] == 200


def test_sessions_past_the_cap_are_refused(mono_pipe):
    async def crowd(url):
        async with AvatarClient(url), AvatarClient(url), connect(url) as third:
            refusal = json.loads(await third.recv())
            await third.wait_closed()
            return refusal, third.close_code

    with running(create_app(mono_pipe, ServeConfig(max_sessions=2))) as base:
        refusal, code = asyncio.run(crowd(ws_url(base)))
        time.sleep(0.3)
        after = json.loads(get(base + "/api/health")[1])
    assert refusal["code"] == "busy" and "limit of 2" in refusal["message"] and code == 1013
    assert after["sessions"] == 0  # closed sessions free their places


def test_idle_sessions_and_floods_are_closed(mono_pipe):
    async def idle(url):
        async with connect(url) as ws:
            async for message in ws:
                if isinstance(message, str) and json.loads(message)["type"] == "error":
                    last = json.loads(message)
            await ws.wait_closed()
            return last["message"], ws.close_code

    async def flood(url):
        async with connect(url) as ws:
            for _ in range(100):
                await ws.send('{"type": "stop"}')
            await ws.wait_closed()
            return ws.close_code

    with running(create_app(mono_pipe, ServeConfig(idle_seconds=1.0))) as base:
        message, code = asyncio.run(idle(ws_url(base)))
    assert "idle" in message and code == 1000
    with running(create_app(mono_pipe, ServeConfig(max_messages_per_second=10))) as base:
        assert asyncio.run(flood(ws_url(base))) == 1008


def test_malformed_messages_keep_the_session_and_stay_in_it(mono_pipe):
    rng = np.random.default_rng(0)
    garbage: list[str | bytes] = [
        "not json",
        "{}",
        '{"type": "say", "text": 12}',
        '{"type": "say", "text": "hi", "lang": "klingon"}',
        '{"type": "reset", "image": "aGVsbG8="}',
        '{"type": "pose", "rotation": [1, 2, 3], "keypoints": "x"}',
        '{"type": "audio_format", "sample_rate": 7}',
        '{"type": "action", "id": 1}',
        b"\x01\x02\x03",
        *[rng.bytes(int(rng.integers(1, 200))) for _ in range(5)],
        *["".join(map(chr, rng.integers(32, 0x2FF, 50))) for _ in range(5)],
    ]

    # every text message here is refused, and odd-length audio; even-length random bytes are valid PCM
    expected = sum(1 for m in garbage if isinstance(m, str) or len(m) % 2)

    async def both(url):
        async with AvatarClient(url) as victim, connect(url, max_queue=None) as attacker:
            await attacker.recv()  # ready
            for message in garbage:
                await attacker.send(message)
            errors = 0
            while True:  # every bad message gets its error; the socket stays open
                message = await asyncio.wait_for(attacker.recv(), 10)
                if isinstance(message, str) and json.loads(message)["type"] == "error":
                    errors += 1
                    if errors == expected:
                        break
            await attacker.send('{"type": "say", "text": "still here"}')
            _, _, attacker_notices = await collect_raw(attacker, 1.0)
            frames, _, notices = await collect(victim, 1.0)
            return errors, attacker_notices, frames, notices

    async def collect_raw(ws, seconds):
        frames, notices = 0, []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                message = await asyncio.wait_for(ws.recv(), end - time.monotonic())
            except TimeoutError:
                break
            if isinstance(message, bytes):
                frames += 1
            else:
                notices.append(json.loads(message))
        return frames, None, notices

    with running(create_app(mono_pipe)) as base:
        errors, attacker_notices, frames, notices = asyncio.run(both(ws_url(base)))
    assert errors == expected
    assert not [n for n in attacker_notices if n["type"] == "error"]  # a good message after the bad ones
    assert frames and not [n for n in notices if n["type"] in ("error", "warning")]  # nothing leaked across


text_garbage = st.one_of(
    st.text(max_size=300),
    st.builds(
        json.dumps,
        st.fixed_dictionaries(
            {
                "type": st.sampled_from(
                    [
                        "say",
                        "stop",
                        "instruction",
                        "pose",
                        "audio_format",
                        "reset",
                        "action",
                        "conversation",
                        "?",
                    ]
                )
            },
            optional={
                "text": st.one_of(st.text(max_size=30), st.integers()),
                "lang": st.text(max_size=5),
                "seconds": st.one_of(st.floats(allow_nan=True), st.integers()),
                "rotation": st.lists(st.floats(allow_nan=True), max_size=4),
                "sample_rate": st.integers(),
                "identity": st.integers(),
                "image": st.text(max_size=50),
                "on": st.integers(),
            },
        ),
    ),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(st.one_of(text_garbage, st.binary(max_size=400)), min_size=1, max_size=6))
def test_fuzzed_messages_never_crash_the_server_nor_reach_another_session(fuzz_server, batch):
    from websockets.sync.client import connect as connect_sync

    url, victim = fuzz_server
    with connect_sync(url, max_size=2**23) as attacker:
        assert json.loads(attacker.recv(10))["type"] == "ready"
        for message in batch:
            attacker.send(message)
        attacker.send('{"type": "sentinel"}')  # refused: its error comes after every earlier reply
        while True:
            message = attacker.recv(30)
            if isinstance(message, str) and "sentinel" in message:
                break
    seen = []
    deadline = time.monotonic() + 0.3
    while time.monotonic() < deadline:
        try:
            seen.append(victim.recv(0.3))
        except TimeoutError:
            break
    assert any(isinstance(m, bytes) for m in seen)  # the other session streams on
    assert not [m for m in seen if isinstance(m, str) and json.loads(m)["type"] in ("error", "warning")]


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory):
    from websockets.sync.client import connect as connect_sync

    from ar_helpers import random_pipeline_folder
    from avatarlm.pipeline.folder import load_pipeline

    pipe = load_pipeline(random_pipeline_folder(tmp_path_factory.mktemp("fuzz")))
    with running(create_app(pipe, ServeConfig(max_sessions=3))) as base:
        url = ws_url(base)
        with connect_sync(url, max_size=2**23, max_queue=None) as victim:
            yield url, victim


def test_a_failing_session_ends_alone(mono_pipe, monkeypatch):
    from avatarlm.serve.live_session import LiveSession

    handle = LiveSession.handle

    def buggy(self, command):
        if getattr(command, "text", None) == "trigger a bug":
            raise ZeroDivisionError("a bug")
        return handle(self, command)

    monkeypatch.setattr(LiveSession, "handle", buggy)

    async def two(url):
        async with AvatarClient(url) as bystander, connect(url, max_queue=None) as failing:
            await failing.recv()
            await failing.send('{"type": "say", "text": "trigger a bug"}')
            messages = []
            with contextlib.suppress(ConnectionClosedError):  # 1011 is not a normal close
                async for m in failing:
                    if isinstance(m, str):
                        messages.append(m)
            frames, _, notices = await collect(bystander, 1.0)
            return json.loads(messages[-1]), failing.close_code, frames, notices

    with running(create_app(mono_pipe)) as base:
        last, code, frames, notices = asyncio.run(two(ws_url(base)))
    assert (
        last["type"] == "error" and "internal error (ZeroDivisionError)" in last["message"] and code == 1011
    )
    assert frames and not [n for n in notices if n["type"] == "error"]
