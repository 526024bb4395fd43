"""`avatarlm serve-cluster`: the nginx config it writes, its refusals, and a real cluster — two `avatarlm
serve` replicas of the bundled model behind Debian's nginx — that streams frames over the proxied socket,
keeps a client (its cookie) on one replica, spreads clients over both, and leaves no process behind."""

from __future__ import annotations

import asyncio
import json
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from avatarlm.cli import main
from avatarlm.serve import cluster
from avatarlm.serve import protocol as P
from avatarlm.serve.cluster import COOKIE, nginx_config


def nginx_or_fail() -> str:
    try:
        return cluster.find_nginx()
    except ValueError:
        pytest.fail("nginx is not installed: scripts/test.sh installs it (apt-get install nginx)")


def free_ports(n: int) -> int:
    """The first of ``n`` consecutive free loopback ports."""
    for _ in range(100):
        base = random.randint(20000, 60000 - n)
        try:
            for port in range(base, base + n):
                cluster.check_port_free("127.0.0.1", port, "test")
            return base
        except ValueError:
            continue
    raise RuntimeError("no free ports")


def test_config_lists_every_replica_and_proxies_the_socket(tmp_path):
    text = nginx_config("127.0.0.1", 9000, [9001, 9002, 9003], tmp_path)
    upstream = text[text.index("upstream avatarlm") : text.index("server {")]
    assert [f"server 127.0.0.1:{p};" in upstream for p in (9001, 9002, 9003)] == [True] * 3
    assert "hash $avatarlm_sticky consistent;" in upstream and f"$cookie_{COOKIE}" in text
    assert "listen 127.0.0.1:9000;" in text and "daemon off;" in text
    socket_block = text[text.index("location /ws") : text.index("location / ")]
    for line in (
        "proxy_set_header Upgrade $http_upgrade;",
        "proxy_set_header Connection $connection_upgrade;",
        "proxy_read_timeout 3600s;",
    ):
        assert line in socket_block
    assert "proxy_http_version 1.1;" in text and "proxy_buffering off;" in text
    files = [
        line.split() for line in text.splitlines() if line.strip().startswith(("pid", "error_", "access_"))
    ]
    files += [line.split() for line in text.splitlines() if "_temp_path" in line]
    assert len(files) == 8 and all(f[1].startswith(f"{tmp_path}/") for f in files)  # all in the run folder
    (tmp_path / "temp").mkdir()
    (tmp_path / "nginx.conf").write_text(text)
    checked = subprocess.run(
        [nginx_or_fail(), "-t", "-c", str(tmp_path / "nginx.conf"), "-p", str(tmp_path), "-e", "/dev/null"],
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stderr  # the real nginx accepts it


def test_bad_input_fails_in_one_line(capsys, monkeypatch, tmp_path):
    def error(argv: list[str]) -> str:
        assert main(["serve-cluster", *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("avatarlm: error:") and "\n" not in err
        return err

    base = free_ports(3)
    assert "--replicas" in error(["--replicas", "0", "--port", str(base)])
    assert "among the replicas" in error(["--port", str(base), "--first-replica-port", str(base)])
    nginx_or_fail()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", base + 1))
        taken.listen()
        assert f"port {base + 1} (replica 0) is in use" in error(["--port", str(base)])
        assert f"port {base + 1} (nginx, --port) is in use" in error(["--port", str(base + 1)])
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(cluster, "SBIN_DIRS", ())
    assert "apt-get install nginx" in error(["--port", str(base)])


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


def get_info(url: str, cookie: str | None = None) -> tuple[str, str | None]:
    """(replica, the Set-Cookie nginx sent, if any) of one GET /api/info."""
    headers = {"Cookie": f"{COOKIE}={cookie}"} if cookie else {}
    with urllib.request.urlopen(urllib.request.Request(url + "/api/info", headers=headers), timeout=10) as r:
        return json.loads(r.read())["replica"], r.headers.get("Set-Cookie")


async def stream_then_stop(url: str, cookies: list[str], launcher: subprocess.Popen, ports: list[int]):
    """One socket per cookie through nginx: wait for frames on each, check each replica holds one session,
    then Ctrl-C the launcher with the sockets open. Returns (frames per socket, sessions per replica, close
    codes)."""
    ws_url = url.replace("http://", "ws://") + "/ws"
    sockets = [await connect(ws_url, additional_headers={"Cookie": f"{COOKIE}={c}"}) for c in cookies]
    frames = [0] * len(sockets)

    async def read(i: int) -> None:
        assert json.loads(await sockets[i].recv())["type"] == "ready"
        async for message in sockets[i]:
            if isinstance(message, bytes) and P.unpack(message)[0] == P.FRAME:
                frames[i] += 1

    readers = [asyncio.create_task(read(i)) for i in range(len(sockets))]
    deadline = time.monotonic() + 30
    while min(frames) < 10 and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    sessions = []
    for port in ports:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=10) as r:
            sessions.append(json.loads(r.read())["sessions"])
    counted = list(frames)
    launcher.send_signal(signal.SIGINT)
    await asyncio.wait_for(asyncio.gather(*readers, return_exceptions=True), 30)
    return counted, sessions, [ws.close_code for ws in sockets]


def test_two_replicas_behind_nginx(tmp_path):
    nginx_or_fail()
    base = free_ports(3)
    url, ports = f"http://127.0.0.1:{base}", [base + 1, base + 2]
    argv = ["serve-cluster", "--replicas", "2", "--port", str(base), "--threads", "1"]
    launcher = subprocess.Popen(
        [sys.executable, "-m", "avatarlm.cli", *argv, "--run-dir", str(tmp_path / "run")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    threading.Thread(
        target=lambda: [lines.append(line) for line in launcher.stdout or []], daemon=True
    ).start()
    try:
        deadline = time.monotonic() + 90
        while not any("avatarlm: serving" in line for line in lines):
            assert launcher.poll() is None, "".join(lines)
            assert time.monotonic() < deadline, "the cluster did not start: " + "".join(lines)
            time.sleep(0.2)
        processes = descendants(launcher.pid)
        names = {pid: Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ") for pid in processes}
        replicas = {get_info(f"http://127.0.0.1:{p}")[0] for p in ports}

        first, set_cookie = get_info(url)  # a new client gets a cookie...
        assert set_cookie is not None and set_cookie.startswith(f"{COOKIE}=")
        cookie = set_cookie.split(";")[0].split("=", 1)[1]
        again = [get_info(url, cookie) for _ in range(6)]  # ...and stays on its replica with it
        assert again == [(first, None)] * 6
        placed = {c: get_info(url, c)[0] for c in (f"client-{i}" for i in range(24))}
        assert set(placed.values()) == replicas  # clients spread over both
        cookies = [next(c for c, r in placed.items() if r == replica) for replica in sorted(replicas)]
        frames, sessions, codes = asyncio.run(stream_then_stop(url, cookies, launcher, ports))
        returncode = launcher.wait(timeout=30)
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
    output = "".join(lines)
    assert len(processes) == 4, names  # 2 replicas, nginx master and worker
    assert sum("nginx" in n for n in names.values()) == 2
    assert replicas == {f"{pid}:{p}" for pid in processes for p in ports if f"--port {p} " in names[pid]}
    assert min(frames) >= 10 and sessions == [1, 1]  # frames through nginx on both; one session each
    assert set(codes) <= {1001, 1012}  # the replicas told their sessions they stopped
    assert returncode == 0 and "stopped 2 replicas and nginx" in output
    time.sleep(0.5)
    alive = [pid for pid in processes if Path(f"/proc/{pid}").exists()]
    assert alive == [], {pid: names[pid] for pid in alive}
    assert (tmp_path / "run" / "nginx.conf").exists()
