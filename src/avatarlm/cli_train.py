"""`avatarlm train ...`: the training commands (autoencoder, AR model, duplex fine-tuning, everything)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from avatarlm.trainer.train_all import TrainAllPlan

# the default is a constant of the trainer module, which imports torch: keep `avatarlm --help` light
DEFAULT_DIALOGUE_FRACTION = 0.75


def add_train_parser(sub: Any) -> None:
    """Add ``train`` and its subcommands to the top-level subparsers ``sub``."""
    train = sub.add_parser("train", help="train a model").add_subparsers(dest="train_command", required=True)
    ae = train.add_parser("ae", help="train the deep-compression autoencoder on a dataset")
    ae.add_argument(
        "--preset", default="tiny", help="autoencoder preset: tiny, world64, small_f32, small_f64"
    )
    ae.add_argument(
        "--data",
        default=None,
        help="dataset folder written by `avatarlm data synth` (not with --mouth-channels)",
    )
    ae.add_argument(
        "--mouth-channels",
        type=int,
        default=0,
        help="give the first K latent channels the mouth, shared by every face: trains on rendered "
        "mouth-swap triples (spatial stage; --init-from a trained model to fine-tune it)",
    )
    ae.add_argument(
        "--out", required=True, help="run folder (checkpoints; a rerun resumes; model in OUT/model)"
    )
    ae.add_argument("--steps", type=int, required=True, help="total optimiser steps")
    ae.add_argument(
        "--stage",
        default="spatial",
        choices=["spatial", "temporal", "joint", "decoder"],
        help="decoder: train only the decoder of --init-from (its latents stay valid for trained AR models)",
    )
    ae.add_argument("--init-from", default=None, help="model folder of the previous stage")
    ae.add_argument("--batch", type=int, default=16, help="clips per step")
    ae.add_argument("--window", type=int, default=1, help="frames per clip (temporal stages: e.g. 4)")
    ae.add_argument("--max-clips", type=int, default=None, help="load at most this many clips (memory)")
    ae.add_argument(
        "--final-lr-fraction",
        type=float,
        default=None,
        help="decay the learning rate along a cosine to this fraction of lr at --steps (default: constant)",
    )
    ae.add_argument(
        "--compile", action="store_true",
        help="compile the model (torch.compile; needs a C++ compiler): faster steps after a first minute",
    )  # fmt: skip
    ae.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config field")

    ar = train.add_parser("ar", help="train the AR model on cached latents (torchrun for several processes)")
    ar.add_argument("--preset", default="tiny", help="AR training preset (default: tiny)")
    ar.add_argument("--data", required=True, help="dataset folder with cached latents (`avatarlm ae encode`)")
    ar.add_argument("--ae", required=True, help="the autoencoder folder the latents were encoded with")
    ar.add_argument("--tag", default=None, help="latent set name (default: the autoencoder folder's name)")
    ar.add_argument("--out", required=True, help="run folder (a rerun resumes; pipeline in OUT/pipeline)")
    ar.add_argument("--steps", type=int, required=True, help="total optimiser steps")
    ar.add_argument("--device", default="cpu", help="cpu or cuda")
    ar.add_argument(
        "--backbone-weights", default=None, metavar="DIR",
        help="a local Qwen2/Qwen2.5 folder (config.json + *.safetensors) the backbone starts from; its "
        "dimensions must be the preset's (paper: Qwen2.5-3B)",
    )  # fmt: skip
    ar.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config field")

    duplex = train.add_parser(
        "duplex", help="fine-tune a pipeline's AR model to hear two streams (self, partner) on dialogues"
    )
    duplex.add_argument("--init", required=True, help="pipeline folder to start from (mono or duplex)")
    duplex.add_argument("--data", required=True, help="dataset folder with cached latents of INIT/ae")
    duplex.add_argument("--tag", default=None, help="latent set name (default: the dataset's only one)")
    duplex.add_argument("--out", required=True, help="run folder (a rerun resumes; pipeline in OUT/pipeline)")
    duplex.add_argument("--steps", type=int, required=True, help="total optimiser steps")
    duplex.add_argument(
        "--dialogue-fraction",
        type=float,
        default=DEFAULT_DIALOGUE_FRACTION,
        help=f"share of windows cut from dialogue clips (default {DEFAULT_DIALOGUE_FRACTION})",
    )
    duplex.add_argument("--device", default="cpu", help="cpu or cuda")
    duplex.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a config field"
    )

    character = train.add_parser(
        "character", help="adapt a pipeline to one person's videos (ingested), with before/after figures"
    )
    character.add_argument("--video", action="append", required=True, help="a video of the person (repeat)")
    character.add_argument(
        "--eval-video", default=None, help="held-out video for the figures (default: the last of 2+ --video)"
    )
    character.add_argument("--model", default=None, help="pipeline to start from (default: the bundled one)")
    character.add_argument("--out", required=True, help="run folder (a rerun resumes; OUT/pipeline)")
    character.add_argument(
        "--ae-steps", type=int, default=300, help="decoder fine-tune steps (default 300; 0: keep the AE)"
    )
    character.add_argument("--ar-steps", type=int, default=300, help="AR fine-tune steps (default 300)")
    character.add_argument(
        "--min-lip-sync", type=float, default=0.25, help="ingestion's lip-audio filter (below -1: keep all)"
    )
    character.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override an AR config field"
    )

    everything = train.add_parser(
        "all",
        help="build the default model from nothing: data, autoencoder, latents, AR (resumable)",
        description="Build the default model from nothing. Settings left out take the tiny preset's recipe "
        "within the budgets (synthesis 20 min, autoencoder 45, latent cache 15, AR 60 on 2 CPU cores).",
    )
    everything.add_argument("--preset", default="tiny", help="AE and AR preset (default: tiny)")
    everything.add_argument(
        "--ae-preset", default=None, help="autoencoder preset or JSON (default: --preset)"
    )
    everything.add_argument("--ar-preset", default=None, help="AR preset or JSON (default: --preset)")
    everything.add_argument("--out", required=True, help="run folder (a rerun resumes; OUT/ar/pipeline)")
    everything.add_argument("--hours", type=float, default=1.0, help="hours of synthetic video (default 1)")
    everything.add_argument("--workers", type=int, default=2, help="synthesis processes (default 2)")
    everything.add_argument("--seed", type=int, default=0)
    everything.add_argument(
        "--head-turns", type=float, default=0.0,
        help="share of clips whose head also turns on its own, so the pose alone says where it goes (default 0)",
    )  # fmt: skip
    everything.add_argument("--ae-steps", type=int, help="spatial AE stage steps (default 1800)")
    everything.add_argument(
        "--ae-lr", type=float, help="the spatial AE stage's peak learning rate (default 0.001)"
    )
    everything.add_argument(
        "--ae-final-lr", type=float,
        help="the spatial AE stage's learning rate falls along a cosine to this fraction (default 0.05; "
        "1: constant)",
    )  # fmt: skip
    everything.add_argument(
        "--ae-temporal-steps", type=int, help="temporal AE stage steps (default 600; 0 skips it)"
    )
    everything.add_argument(
        "--ae-temporal-window", type=int, help="frames per clip in the temporal stage (default 8)"
    )
    everything.add_argument(
        "--ae-temporal-batch", type=int, help="clips per step in the temporal stage (default 2)"
    )
    everything.add_argument(
        "--ae-reference-steps", type=int,
        help="steps of the decoder stage that reads the reference frame (default 2000; 0: none)",
    )  # fmt: skip
    everything.add_argument("--ar-steps", type=int, help="AR stage steps (default 1500)")
    everything.add_argument(
        "--mouth-channels", type=int, dest="ae_mouth_channels",
        help="give the AE K mouth channels, its spatial stage on rendered mouth-swap triples (default 4; "
        "0: none, the spatial stage on the dataset's frames)",
    )  # fmt: skip
    everything.add_argument(
        "--ae-mouth-weight", type=float,
        help="with --mouth-channels: count the L1 over the mouth's pixels W times more (default 4)",
    )  # fmt: skip
    everything.add_argument(
        "--duplex-steps", type=int, default=0, help="then fine-tune to hear a partner too (default 0: mono)"
    )
    everything.add_argument(
        "--own-history-steps", type=int, default=0,
        help="then fine-tune the duplex model on its own rollouts, against drift (the bundled recipe; "
        "default 0: none)",
    )  # fmt: skip
    everything.add_argument("--device", default="cpu", help="cpu or cuda (AR stage)")
    everything.add_argument(
        "--compile", action="store_true",
        help="compile the autoencoder stages' models (torch.compile; needs a C++ compiler): faster steps",
    )  # fmt: skip
    everything.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override an AR config field"
    )


def _overrides(pairs: list[str]) -> dict[str, object]:
    import json

    out: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"--set expects KEY=VALUE, got {pair!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def _train_ae(args: argparse.Namespace) -> None:
    from avatarlm.trainer.ae_config import AETrainConfig
    from avatarlm.trainer.ae_run import run_ae_training

    overrides = _overrides(args.set)
    if args.mouth_channels:
        overrides["autoencoder.mouth_channels"] = args.mouth_channels
    cfg = AETrainConfig.from_preset_or_file(args.preset, stage=args.stage, init_from=args.init_from)
    cfg = cfg.with_overrides(overrides)
    model = run_ae_training(
        cfg, args.data, args.out, args.steps, args.batch, args.window, args.max_clips,
        final_lr_fraction=args.final_lr_fraction, compile_model=args.compile,
    )  # fmt: skip
    print(f"wrote {model}")


def _train_ar(args: argparse.Namespace) -> None:
    from pathlib import Path

    from avatarlm.trainer.ar_run import run_ar_training

    if args.steps < 1:
        raise ValueError(f"--steps must be at least 1, got {args.steps}")
    tag = args.tag or Path(args.ae).resolve().name
    path = run_ar_training(
        args.preset, args.data, args.ae, tag, args.out, args.steps, args.device, _overrides(args.set),
        backbone_weights=args.backbone_weights,
    )  # fmt: skip
    if path is not None:
        print(f"wrote {path}")


def _train_duplex(args: argparse.Namespace) -> None:
    from avatarlm.trainer.duplex_run import run_duplex_training

    path = run_duplex_training(
        args.init, args.data, args.out, args.steps, args.tag, args.device, _overrides(args.set),
        args.dialogue_fraction,
    )  # fmt: skip
    if path is not None:
        print(f"wrote {path}")


def _train_character(args: argparse.Namespace) -> None:
    from avatarlm.data.ingest_quality import QualityConfig
    from avatarlm.pipeline.folder import BUNDLED, bundled_pipeline
    from avatarlm.trainer.character import run_character_training

    init = args.model or bundled_pipeline()
    if init is None:
        raise ValueError(f"no --model given and no bundled pipeline at {BUNDLED}")
    path = run_character_training(
        init, args.video, args.out, args.ae_steps, args.ar_steps, args.eval_video, _overrides(args.set),
        quality=QualityConfig(min_lip_sync=args.min_lip_sync),
    )  # fmt: skip
    print(f"wrote {path} (figures: {args.out}/character.md)")


# `train all` settings whose flags default to None, so that left out they take the plan's default
PLAN_FIELDS = (
    "ae_steps",
    "ae_lr",
    "ae_final_lr",
    "ae_temporal_steps",
    "ae_temporal_window",
    "ae_temporal_batch",
    "ae_reference_steps",
    "ae_mouth_channels",
    "ae_mouth_weight",
    "ar_steps",
)


def train_all_plan(args: argparse.Namespace) -> TrainAllPlan:
    """The ``TrainAllPlan`` the parsed ``train all`` arguments ask for."""
    from avatarlm.trainer.train_all import TrainAllPlan

    given = {field: getattr(args, field) for field in PLAN_FIELDS}
    return TrainAllPlan(
        ae_preset=args.ae_preset or args.preset,
        ar_preset=args.ar_preset or args.preset,
        hours=args.hours,
        seed=args.seed,
        head_turns=args.head_turns,
        ar_overrides=_overrides(args.set),
        duplex_steps=args.duplex_steps,
        own_history_steps=args.own_history_steps,
        workers=args.workers,
        device=args.device,
        compile=args.compile,
        **{field: value for field, value in given.items() if value is not None},
    )


def _train_all(args: argparse.Namespace) -> None:
    from avatarlm.trainer.train_all import budget_table, result_pipeline, train_all

    plan = train_all_plan(args)
    reports = train_all(plan, args.out)
    print(budget_table(reports))
    print(f"wrote {result_pipeline(plan, args.out)}")


def run_train(args: argparse.Namespace) -> None:
    """Run the ``train`` subcommand ``args`` asks for. Subnormal floats are flushed to zero: on the CPU
    a from-scratch autoencoder's weights drift into them and its steps slow down threefold within 1,000
    steps (2.2 -> 0.6 steps/s at batch 16 on 2 cores)."""
    import torch

    torch.set_flush_denormal(True)
    commands = {"ae": _train_ae, "ar": _train_ar, "duplex": _train_duplex, "all": _train_all,
                "character": _train_character}  # fmt: skip
    commands[args.train_command](args)
