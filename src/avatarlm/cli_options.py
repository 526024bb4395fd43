"""Command-line options shared by the commands that run a pipeline (generate, chat, serve); importing this
module stays light (no torch), so ``avatarlm --help`` is quick."""

from __future__ import annotations

from typing import Any

# Guidance on the audio for the commands that write a video (generate, chat, demo): lip-sync r 0.63 -> 0.76
# and self-speech in dialogues 0.34 -> 0.50 on the bundled model over 3 seeds (README, "The evaluation
# report"), at twice the compute per frame. Live serving keeps 1 by default: the same cores then carry twice the sessions.
VIDEO_LIP_STRENGTH = 2.0


def comma_list(text: str) -> list[str]:
    """An argparse type: ``"en, es,"`` -> ``["en", "es"]``."""
    return [t.strip() for t in text.split(",") if t.strip()]


def add_device_argument(parser: Any) -> None:
    parser.add_argument(
        "--device", default="cpu", help="where the models run: cpu (default) or cuda (fp32 products use TF32)"
    )


def add_anchor_argument(parser: Any) -> None:
    parser.add_argument(
        "--anchor",
        type=float,
        default=None,
        help="each frame, pull the face (all but the mouth) this share of the way back to the reference: "
        "bounds drift, slows head motion (default: 0.05 where the model's autoencoder has mouth channels, "
        "else 0; 0 = off)",
    )


def add_lip_strength_argument(parser: Any, default: float = VIDEO_LIP_STRENGTH) -> None:
    parser.add_argument(
        "--lip-strength",
        type=float,
        default=default,
        help=f"guidance on the avatar's voice: > 1 follows it harder at twice the compute, 1 = none "
        f"(default {default:g})",
    )


def add_action_strength_argument(parser: Any) -> None:
    parser.add_argument(
        "--action-strength",
        type=float,
        default=1.0,
        help="guidance on the actions (world models): > 1 follows them harder at twice the compute, 1 = none "
        "(default 1)",
    )


def check_strength(value: float, flag: str) -> float:
    """A guidance strength from the command line, or one clear error."""
    if not 0.0 <= value <= 10.0:
        raise ValueError(f"{flag} must be in [0, 10], got {value}")
    return value
