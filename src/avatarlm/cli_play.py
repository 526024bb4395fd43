"""`avatarlm play`: drive a world model with a game's actions (file mode: an mp4, game | model)."""

from __future__ import annotations

import argparse
from typing import Any

from avatarlm.cli_options import add_action_strength_argument, check_strength


def add_play_parser(sub: Any) -> None:
    play = sub.add_parser(
        "play",
        help="replay actions in a game and in a world model side by side (mp4: game | model)",
        description="The game's first frame starts the world model; each action then steps both. Without "
        "--actions the game's exploratory policy plays --steps actions.",
    )
    play.add_argument(
        "--model", required=True, help="world-model pipeline folder (`train ar --preset world`)"
    )
    play.add_argument("--env", required=True, help="the game the model learned: crafter or vizdoom")
    play.add_argument("--actions", default=None, help="text file of actions: names or ids, name*N holds one")
    play.add_argument(
        "--steps", type=int, default=64, help="exploratory actions when no --actions (default 64)"
    )
    play.add_argument(
        "--seed", type=int, default=0, help="the game's episode seed and the model's noise seed"
    )
    play.add_argument(
        "--out",
        default=None,
        help="mp4 to write (game | world model); OUT.json gets the scores. Without it: serve the game's "
        "page, played from the keyboard, on http://HOST:PORT/",
    )
    play.add_argument(
        "--host", default="127.0.0.1", help="without --out: address to bind (default: loopback)"
    )
    play.add_argument("--port", type=int, default=8000, help="without --out: port (default 8000)")
    add_action_strength_argument(play)


def run_play(args: argparse.Namespace) -> None:
    from pathlib import Path

    from avatarlm.apps.play import play, read_action_file
    from avatarlm.data.world_envs import env_class, make_env, require_package
    from avatarlm.io import atomic_write_json
    from avatarlm.media import write_mp4
    from avatarlm.pipeline.folder import load_pipeline
    from avatarlm.pipeline.generate import check_mp4_path

    check_strength(args.action_strength, "--action-strength")
    if args.out is None:
        _serve_game(args)
        return
    out = Path(args.out)
    check_mp4_path(args.out)
    if args.steps < 1 or args.seed < 0:
        raise ValueError(f"--steps must be at least 1 and --seed non-negative, got {args.steps}, {args.seed}")
    require_package(args.env)
    actions = read_action_file(args.actions, env_class(args.env).action_names) if args.actions else None
    pipe = load_pipeline(args.model)
    env = make_env(args.env, pipe.autoencoder.config.image_height, pipe.model.config.conditions.fps)
    try:
        result = play(pipe, env, args.seed, actions, args.steps, True, args.action_strength)
    finally:
        env.close()
    write_mp4(out, result.side_by_side(), result.fps)
    scores = {"env": args.env, "seed": args.seed, "actions": result.actions, "fps": result.fps}
    scores |= {"psnr": result.psnr, "copy_first_frame_psnr": result.copy_psnr}
    atomic_write_json(out.with_suffix(".json"), scores)
    print(result.table())
    print(f"wrote {out} ({len(result.actions)} actions; left: {args.env}, right: the world model)")


def _serve_game(args: argparse.Namespace) -> None:
    """The live page of a world model: the game's first frame, then the keys the player holds."""
    from avatarlm.cli_serve import serve_pipeline, serve_token
    from avatarlm.pipeline.folder import load_pipeline
    from avatarlm.pipeline.session import SessionConfig
    from avatarlm.serve.app import ServeConfig

    args.token = None
    config = ServeConfig(env=args.env, token=serve_token(args))
    pipe = load_pipeline(args.model)
    session = SessionConfig(seed=args.seed, lip_strength=args.action_strength)
    serve_pipeline(pipe, config, session, args.host, args.port, args.model)
