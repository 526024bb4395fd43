"""N `avatarlm serve` replicas on loopback ports behind Debian's nginx (``avatarlm serve-cluster``): the
balancing is nginx's ``upstream``, nothing home-made.

**Sticky routing: a cookie, hashed consistently** (``hash $avatarlm_sticky consistent``). The key is the
``avatarlm_replica`` cookie; a request without one gets a fresh random key (``$request_id``) and a
``Set-Cookie`` with it. A browser gets the cookie with the page, so its socket, ``/api`` calls and reconnects
land on the replica that served the page; a client without cookies is spread at random, request by request.
Not ``hash $remote_addr``: everyone behind one NAT, proxy or loopback (a tunnel, a test) shares an address
and would pile onto one replica, whose ``--max-sessions`` cap then refuses them while the others idle.
``consistent`` (ketama) remaps only the keys of a replica that is added or removed. Limits: a session lives
in one process (a reconnect starts a new one), and nginx does not know a replica is full (``busy``).

The socket (``/ws``) goes through HTTP/1.1 with the ``Upgrade``/``Connection`` headers, a one-hour read
timeout and no buffering. nginx runs as whoever starts it (``daemon off``; pid, logs and temp folders in the
run folder). The launcher waits until every replica and nginx answer ``/api/health``, and stops them all
(replicas first: their sessions close with 1012) on exit, Ctrl-C or SIGTERM; if it dies, they get SIGTERM.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

COOKIE = "avatarlm_replica"
SBIN_DIRS = ("/usr/sbin", "/sbin")  # where Debian puts nginx; not on a normal user's PATH


class ClusterError(ValueError):
    """A replica or nginx could not start, or died; the message names its log."""


@dataclass
class ClusterConfig:
    replicas: int = 2
    port: int = 8000  # where nginx listens
    host: str = "127.0.0.1"
    first_replica_port: int | None = None  # replicas on consecutive loopback ports (default: port + 1)
    serve_args: list[str] = field(default_factory=list)  # passed to every `avatarlm serve`
    threads: int | None = None  # torch threads per replica (default: the cores shared out)
    startup_seconds: float = 180.0

    def __post_init__(self) -> None:
        if self.replicas < 1:
            raise ValueError(f"--replicas must be >= 1, got {self.replicas}")
        for port in (self.port, *self.replica_ports):
            if not 0 < port < 65536:
                raise ValueError(f"ports must be in 1..65535, got {port}")
        if self.port in self.replica_ports:
            raise ValueError(f"--port {self.port} is among the replicas' ports {self.replica_ports}")

    @property
    def replica_ports(self) -> list[int]:
        first = self.first_replica_port or self.port + 1
        return list(range(first, first + self.replicas))

    def check_ports(self) -> None:
        check_port_free(self.host, self.port, "nginx, --port")
        for i, port in enumerate(self.replica_ports):
            check_port_free("127.0.0.1", port, f"replica {i}")


def find_nginx() -> str:
    """The nginx binary, on PATH or in /usr/sbin."""
    found = shutil.which("nginx", path=os.pathsep.join([os.environ.get("PATH", ""), *SBIN_DIRS]))
    if found is None:
        raise ValueError("nginx is not installed: apt-get install nginx (Debian/Ubuntu)")
    return found


def check_port_free(host: str, port: int, what: str) -> None:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            raise ValueError(f"port {port} ({what}) is in use or not bindable on {host}: {e.strerror}") from e


def nginx_config(host: str, port: int, replica_ports: list[int], run_dir: Path) -> str:
    """The whole nginx.conf: upstream of the replicas, cookie-sticky, the WebSocket proxied unbuffered."""
    servers = "\n".join(f"        server 127.0.0.1:{p};" for p in replica_ports)
    kinds = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    temp = "\n".join(f"    {kind}_temp_path {run_dir / 'temp' / kind};" for kind in kinds)
    headers = "\n".join(  # repeated in each location: nginx drops the outer ones where a location sets any
        f"            proxy_set_header {h};"
        for h in ("Host $host", "X-Forwarded-For $proxy_add_x_forwarded_for", "X-Forwarded-Proto $scheme")
    )
    listen = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return f"""# written by avatarlm serve-cluster; runs as `nginx -c {run_dir / "nginx.conf"} -p {run_dir}`
daemon off;
worker_processes 1;
pid {run_dir / "nginx.pid"};
error_log {run_dir / "nginx-error.log"} warn;
events {{ worker_connections 1024; }}
http {{
    access_log {run_dir / "nginx-access.log"};
{temp}
    client_max_body_size 1m;
    client_body_buffer_size 1m;  # bodies stay in memory: the workers never write a temp file
    map $cookie_{COOKIE} $avatarlm_sticky {{ "" $request_id; default $cookie_{COOKIE}; }}
    map $cookie_{COOKIE} $avatarlm_set_cookie {{ "" "{COOKIE}=$request_id; Path=/; HttpOnly; SameSite=Lax"; }}
    map $http_upgrade $connection_upgrade {{ default upgrade; "" close; }}
    upstream avatarlm {{
        hash $avatarlm_sticky consistent;
{servers}
        keepalive 16;
    }}
    server {{
        listen {listen};
        add_header Set-Cookie $avatarlm_set_cookie always;
        proxy_http_version 1.1;
        proxy_buffering off;
        proxy_max_temp_file_size 0;
        location /ws {{
            proxy_pass http://avatarlm;
{headers}
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_read_timeout 3600s;  # frames flow all the time; a silent socket is closed by the server
            proxy_send_timeout 3600s;
        }}
        location / {{
            proxy_pass http://avatarlm;
{headers}
            proxy_set_header Connection "";
        }}
    }}
}}
"""


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the launcher dies (Linux prctl PR_SET_PDEATHSIG)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/api/health", timeout=2):
            return True  # urlopen raises on anything but 2xx
    except OSError:
        return False


@dataclass
class Child:
    name: str
    url: str
    log: Path
    process: subprocess.Popen[bytes]


class Cluster:
    """``with Cluster(config, run_dir):`` starts replicas and nginx, waits until healthy, stops all on leaving."""

    def __init__(self, config: ClusterConfig, run_dir: Path) -> None:
        self.config, self.run_dir = config, Path(run_dir).resolve()
        self.nginx = find_nginx()
        self.children: list[Child] = []
        host = config.host if config.host not in ("0.0.0.0", "::") else "127.0.0.1"
        self.url = f"http://{f'[{host}]' if ':' in host else host}:{config.port}"

    def __enter__(self) -> Cluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        cfg = self.config
        cfg.check_ports()
        (self.run_dir / "temp").mkdir(parents=True, exist_ok=True)
        conf = self.run_dir / "nginx.conf"
        conf.write_text(nginx_config(cfg.host, cfg.port, cfg.replica_ports, self.run_dir))
        threads = cfg.threads or max(1, (os.cpu_count() or 1) // cfg.replicas)
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1"}
        for i, port in enumerate(cfg.replica_ports):
            argv = [sys.executable, "-m", "avatarlm.cli", "serve", "--port", str(port), *cfg.serve_args]
            self._spawn(f"replica {i}", f"http://127.0.0.1:{port}", f"replica-{i}.log", argv, env)
        self._wait_healthy(self.children)
        prefix = str(self.run_dir)
        argv = [self.nginx, "-c", str(conf), "-p", prefix, "-e", f"{prefix}/nginx-error.log"]
        self._spawn("nginx", self.url, "nginx.log", argv, env)
        self._wait_healthy(self.children[-1:])

    def _spawn(self, name: str, url: str, log_name: str, argv: list[str], env: dict[str, str]) -> None:
        with (log := self.run_dir / log_name).open("wb") as out:  # the child keeps its own descriptor
            process = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,  # a terminal's Ctrl-C reaches the launcher only; it stops them in order
                preexec_fn=_die_with_parent,
            )
        self.children.append(Child(name, url, log, process))

    def _wait_healthy(self, children: list[Child]) -> None:
        deadline = time.monotonic() + self.config.startup_seconds
        while children:
            self.check_alive()
            children = [c for c in children if not healthy(c.url)]
            if children and time.monotonic() > deadline:
                names = ", ".join(c.name for c in children)
                raise ClusterError(f"{names} not healthy in time; see the logs in {self.run_dir}")
            time.sleep(0.25 if children else 0)

    def check_alive(self) -> None:
        """Raises ClusterError naming the first child that exited, with the last line of its log."""
        for c in self.children:
            code = c.process.poll()
            if code is not None:
                lines = c.log.read_text(errors="replace").strip().splitlines() or ["(empty log)"]
                raise ClusterError(f"{c.name} exited with code {code}: {lines[-1].strip()} (log: {c.log})")

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the replicas (their sessions close with 1012), then nginx (fast shutdown); SIGKILL what
        is still running after ``timeout`` seconds. Every child is waited for: no orphan, no zombie."""
        replicas = [c for c in self.children if c.name != "nginx"]
        nginx = [c for c in self.children if c.name == "nginx"]
        for group in (replicas, nginx):
            for c in group:
                if c.process.poll() is None:
                    c.process.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + timeout
            for c in group:
                try:
                    c.process.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    c.process.kill()
                    c.process.wait()
        self.children = []
