"""Command-line options shared by the commands that run a pipeline (generate, chat, serve); importing this
module stays light (no torch), so ``avatarlm --help`` is quick."""

from __future__ import annotations

from typing import Any


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
