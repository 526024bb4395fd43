"""`avatarlm serve`: the live avatar in a browser (and over a WebSocket API)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any

from avatarlm.cli_options import add_anchor_argument, add_device_argument, add_lip_strength_argument

if TYPE_CHECKING:
    from avatarlm.pipeline.folder import Pipeline
    from avatarlm.pipeline.session import SessionConfig
    from avatarlm.serve.app import ServeConfig


def add_serve_parser(sub: Any) -> None:
    serve = sub.add_parser(
        "serve",
        help="serve the live avatar: a web page and a WebSocket API",
        description="Open http://HOST:PORT/ in a browser. Binds to loopback unless --host says otherwise; "
        "set a token (--token or AVATARLM_TOKEN) before exposing it. Protocol: avatarlm.serve.protocol.",
    )
    serve.add_argument("--model", default=None, help="pipeline folder (default: the bundled models/tiny)")
    add_device_argument(serve)
    add_anchor_argument(serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--max-sessions", type=int, default=2, help="concurrent sessions (default: 2)")
    serve.add_argument("--idle-seconds", type=float, default=300.0, help="close sessions silent this long")
    serve.add_argument("--token", default=None, help="API token (default: $AVATARLM_TOKEN; none: open)")
    add_lip_strength_argument(serve, default=1.0)
    serve.add_argument("--seed", type=int, default=0, help="noise seed of every session")
    serve.add_argument(
        "--env",
        default=None,
        help="a world model's game (crafter, vizdoom): the page plays it from the keyboard",
    )
    serve.add_argument("--replica-name", default=None, help="name in /api/info (default: PID:PORT)")
    serve.add_argument(
        "--batching", action="store_true",
        help="run the sessions' frames that are ready together as one batch (continuous: none waits)",
    )  # fmt: skip
    serve.add_argument(
        "--batch-wait-ms", type=float, default=0.0,
        help="with batching, a frame also waits this long for the other sessions' (implies --batching)",
    )  # fmt: skip


def serve_token(args: argparse.Namespace) -> str | None:
    """The API token (``--token``, else ``$AVATARLM_TOKEN``); warns when a non-loopback ``--host`` has none."""
    token = args.token or os.environ.get("AVATARLM_TOKEN") or None
    if args.host not in ("127.0.0.1", "localhost", "::1") and token is None:
        print(
            f"warning: serving on {args.host} without a token: anyone who reaches it can use it",
            file=sys.stderr,
        )
    return token


def run_serve(args: argparse.Namespace) -> None:
    from avatarlm.pipeline.folder import BUNDLED, load_for_command
    from avatarlm.pipeline.session import SessionConfig
    from avatarlm.serve.app import ServeConfig

    token = serve_token(args)
    replica = args.replica_name or f"{os.getpid()}:{args.port}"
    config = ServeConfig(
        max_sessions=args.max_sessions, idle_seconds=args.idle_seconds, token=token, replica=replica,
        batching=args.batching, batch_wait_ms=args.batch_wait_ms, env=args.env,
    )  # fmt: skip
    session = SessionConfig(seed=args.seed, lip_strength=args.lip_strength, anchor=args.anchor)
    serve_pipeline(
        load_for_command(args.model, args.device),
        config,
        session,
        args.host,
        args.port,
        args.model or str(BUNDLED),
    )


def serve_pipeline(
    pipe: Pipeline, config: ServeConfig, session: SessionConfig, host: str, port: int, name: str
) -> None:
    """Run the server of ``pipe`` until Ctrl-C."""
    import uvicorn

    from avatarlm.serve.app import create_app

    if not 0 < port < 65536:
        raise ValueError(f"--port must be in 1..65535, got {port}")
    app = create_app(pipe, config, session)  # refuses a world model without its game before binding
    print(f"avatarlm: serving {name} on http://{host}:{port}/ (Ctrl-C stops)")
    uvicorn.run(
        app,
        host=host,
        port=port,
        ws_max_size=8 * 1024 * 1024,
        log_level="warning",
    )
