"""`avatarlm serve-cluster`: N `avatarlm serve` replicas behind Debian's nginx, cookie-sticky (see
``avatarlm.serve.cluster``)."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

from avatarlm.cli_options import add_anchor_argument, add_lip_strength_argument


def add_serve_cluster_parser(sub: Any) -> None:
    cluster = sub.add_parser(
        "serve-cluster",
        help="serve the live avatar from several processes behind nginx (sticky sessions)",
        description="Starts --replicas `avatarlm serve` processes on loopback ports and nginx on --host:--port "
        "in front of them (needs nginx: apt-get install nginx). Ctrl-C stops them all.",
    )
    cluster.add_argument("--replicas", type=int, default=2, help="server processes (default: 2)")
    cluster.add_argument("--port", type=int, default=8000, help="where nginx listens (default: 8000)")
    cluster.add_argument("--host", default="127.0.0.1", help="address nginx binds (default: loopback only)")
    cluster.add_argument(
        "--first-replica-port", type=int, default=None, help="replicas on consecutive ports (default: port+1)"
    )
    cluster.add_argument("--model", default=None, help="pipeline folder (default: the bundled models/tiny)")
    cluster.add_argument("--token", default=None, help="API token (default: $AVATARLM_TOKEN; none: open)")
    cluster.add_argument("--max-sessions", type=int, default=2, help="concurrent sessions per replica")
    cluster.add_argument("--idle-seconds", type=float, default=300.0, help="close sessions silent this long")
    add_lip_strength_argument(cluster, default=1.0)
    cluster.add_argument("--seed", type=int, default=0, help="noise seed of every session")
    add_anchor_argument(cluster)
    cluster.add_argument(
        "--threads", type=int, default=None, help="torch threads per replica (default: cores/N)"
    )
    cluster.add_argument("--run-dir", default=None, help="config, pid and logs (default: a temporary folder)")


def run_serve_cluster(args: argparse.Namespace) -> None:
    from avatarlm.cli_serve import serve_token
    from avatarlm.serve.cluster import Cluster, ClusterConfig, find_nginx

    if args.max_sessions < 1:
        raise ValueError(f"--max-sessions must be >= 1, got {args.max_sessions}")
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    if args.model is not None and not Path(args.model).is_dir():
        raise ValueError(f"--model {args.model} is not a pipeline folder")
    serve_args = [
        *(["--model", args.model] if args.model else []),
        *("--max-sessions", str(args.max_sessions), "--idle-seconds", str(args.idle_seconds)),
        *("--lip-strength", str(args.lip_strength), "--seed", str(args.seed)),
        *(["--anchor", str(args.anchor)] if args.anchor is not None else []),
    ]
    config = ClusterConfig(
        replicas=args.replicas,
        port=args.port,
        host=args.host,
        first_replica_port=args.first_replica_port,
        serve_args=serve_args,
        threads=args.threads,
    )
    find_nginx()  # fail before anything starts
    config.check_ports()
    token = serve_token(args)
    if token:
        os.environ["AVATARLM_TOKEN"] = token  # the replicas read it there, not from argv where `ps` shows it
    temporary = args.run_dir is None
    run_dir = Path(tempfile.mkdtemp(prefix="avatarlm-cluster-") if temporary else args.run_dir)
    previous = {s: signal.signal(s, signal.default_int_handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:  # Ctrl-C and SIGTERM stop the cluster (SIGINT too where the shell had it ignored)
        with Cluster(config, run_dir) as cluster:
            ports = ", ".join(str(p) for p in config.replica_ports)
            print(
                f"avatarlm: serving {args.model or 'the bundled model'} on {cluster.url}/ from {args.replicas} "
                f"replicas (ports {ports}) behind nginx; logs in {run_dir} (Ctrl-C stops)",
                flush=True,
            )
            while True:
                cluster.check_alive()
                time.sleep(0.5)
    except KeyboardInterrupt:
        print(f"avatarlm: stopped {args.replicas} replicas and nginx", flush=True)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if temporary:
        shutil.rmtree(run_dir, ignore_errors=True)
