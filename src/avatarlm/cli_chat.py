"""`avatarlm chat`: a whole conversation with the avatar from a recording of the user."""

from __future__ import annotations

import argparse
from typing import Any

from avatarlm.cli_options import add_anchor_argument, add_device_argument, add_lip_strength_argument


def add_chat_parser(sub: Any) -> None:
    chat = sub.add_parser(
        "chat",
        help="talk to the avatar from a recording: it listens, answers when your turn ends, writes an mp4",
        description="The recording is the microphone; turns end after --end-of-turn s of silence, the reply "
        "comes from AVATARLM_CHAT_URL (an OpenAI-compatible endpoint; key in AVATARLM_CHAT_KEY, model in "
        "AVATARLM_CHAT_MODEL) or, without one or when it fails, from the offline echo responder.",
    )
    chat.add_argument("--model", default=None, help="pipeline folder (default: the bundled models/tiny)")
    chat.add_argument("--in", dest="input", required=True, help="the user's speech (wav, flac, ogg)")
    chat.add_argument("--out", required=True, help="mp4 to write: the avatar, its voice left, the user right")
    chat.add_argument("--lang", default="en", help="language the avatar speaks (default: en)")
    face = chat.add_mutually_exclusive_group()
    face.add_argument("--identity", type=int, default=None, help="synthetic identity seed (default: 0)")
    face.add_argument("--image", help="reference image of the face")
    chat.add_argument("--end-of-turn", type=float, default=0.6, help="silence that ends a turn, s")
    chat.add_argument("--script", default=None, help="offline replies in order, separated by '|'")
    chat.add_argument("--seed", type=int, default=0)
    add_device_argument(chat)
    add_anchor_argument(chat)
    add_lip_strength_argument(chat)


def run_chat(args: argparse.Namespace) -> None:
    from avatarlm.apps.asr import transcriber_for
    from avatarlm.apps.chat import converse
    from avatarlm.apps.duplex import DuplexConfig
    from avatarlm.apps.responder import FallbackResponder, ScriptedResponder
    from avatarlm.apps.tts import TTSConfig
    from avatarlm.apps.turns import TurnConfig
    from avatarlm.pipeline.folder import load_for_command
    from avatarlm.pipeline.generate import check_mp4_path, face_reference, load_audio
    from avatarlm.pipeline.session import SessionConfig

    check_mp4_path(args.out)
    config = DuplexConfig(TurnConfig(end_of_turn_silence=args.end_of_turn), TTSConfig(language=args.lang))
    user = load_audio(args.input)
    pipe = load_for_command(args.model, args.device)
    image, identity = face_reference(pipe, args.image, args.identity)
    offline = ScriptedResponder([s.strip() for s in args.script.split("|")] if args.script else ())
    responder = FallbackResponder.from_env(fallback=offline)
    talk = converse(
        pipe, user, args.out, responder, transcriber_for(args.lang), image, identity, config,
        SessionConfig(seed=args.seed, anchor=args.anchor, lip_strength=args.lip_strength),
    )  # fmt: skip
    if responder.notice and responder.primary is not None:  # the endpoint failed at some point
        print(responder.notice)
    print(talk.summary(args.end_of_turn))
    print(f"wrote {args.out}")
