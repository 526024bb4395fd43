"""`avatarlm serve` as users start it: bad arguments fail in one line; a running server answers, and on
SIGTERM it tells its open sessions and exits cleanly."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
import urllib.request

import pytest
from websockets.asyncio.client import connect

from ar_helpers import random_pipeline_folder
from avatarlm.cli import main
from serve_helpers import free_port


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return random_pipeline_folder(tmp_path_factory.mktemp("cli-serve"))


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--model", "/nonexistent/pipeline"], "nonexistent"),
        (["--port", "70000"], "--port"),
        (["--max-sessions", "0"], "max_sessions"),
    ],
)
def test_bad_arguments_fail_in_one_line(folder, capsys, args, says):
    argv = ["serve", "--model", str(folder), *args] if args[0] != "--model" else ["serve", *args]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("avatarlm: error:") and says in err and "\n" not in err


def test_serve_runs_and_shuts_down_gracefully(folder):
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "avatarlm.cli", "serve", "--model", str(folder), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=1) as r:
                    health = json.loads(r.read())
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "the server did not start"
                time.sleep(0.2)

        async def session():
            async with connect(f"ws://127.0.0.1:{port}/ws") as ws:
                assert json.loads(await ws.recv())["type"] == "ready"
                await ws.recv()  # frames flow
                server.send_signal(signal.SIGTERM)
                try:
                    while True:
                        await asyncio.wait_for(ws.recv(), 15)
                except Exception:
                    pass
                return ws.close_code

        code = asyncio.run(session())
        returncode = server.wait(timeout=20)  # uvicorn re-raises the signal after its graceful shutdown
    finally:
        if server.poll() is None:
            server.kill()
    output = server.stdout.read() if server.stdout else ""
    assert health["ok"] and f"http://127.0.0.1:{port}/" in output
    assert returncode in (0, -signal.SIGTERM)
    assert code in (1001, 1012)  # going away / service restart: the client knows the server stopped
