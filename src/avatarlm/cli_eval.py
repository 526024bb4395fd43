"""`avatarlm eval ...`: the measuring commands (lip-sync, audio use, the pixel probe)."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Any

from avatarlm.cli_options import (
    add_action_strength_argument,
    add_anchor_argument,
    add_lip_strength_argument,
    check_strength,
    comma_list,
)


def add_eval_parser(sub: Any) -> None:
    """Add ``eval`` and its subcommands to the top-level subparsers ``sub``."""
    report = sub.add_parser(
        "eval",
        help="measure a trained pipeline: `eval --model DIR --out DIR` writes the full report",
        description="Without a subcommand: generate unseen clips with the pipeline and write report.md, "
        "report.json and plots to --out (a few minutes on 2 cores; --quick: about two).",
    )
    report.add_argument("--model", help="pipeline folder (OUT/pipeline of `avatarlm train ar`)")
    report.add_argument("--out", help="report folder (report.md, report.json, PNG plots)")
    report.add_argument(
        "--quick",
        action="store_true",
        help="3 languages, 6 s clips, one 10 s session (and 2 dialogues for a duplex model)",
    )
    report.add_argument("--probe", default="models/probe", help="pixel probe folder (default: models/probe)")
    report.add_argument(
        "--sessions", default=None, help="free-running session lengths in s, e.g. 10,60,600 (default 10,60)"
    )
    report.add_argument("--roll", choices=("rotate", "reencode"), default="rotate", help="window roll")
    add_anchor_argument(report)
    add_lip_strength_argument(report, default=1.0)
    report.add_argument("--seed", type=int, default=0)
    report.add_argument(
        "--seeds", default=None, help="several noise seeds, e.g. 0,1,2: a report each (OUT/seed-N) and their "
        "spread (OUT/seeds.md)",
    )  # fmt: skip
    evalcmd = report.add_subparsers(dest="eval_command", required=False)
    lips = evalcmd.add_parser("lipsync", help="generate held-out clips and score their lip-sync")
    lips.add_argument("--model", required=True, help="pipeline folder (OUT/pipeline of `avatarlm train ar`)")
    lips.add_argument("--data", required=True, help="dataset folder")
    lips.add_argument("--split", default="test")
    lips.add_argument("--clips", type=int, default=8)
    lips.add_argument("--frames", type=int, default=None, help="frames per clip (default: whole clips)")
    lips.add_argument("--seed", type=int, default=0)
    lips.add_argument(
        "--lip-strength",
        type=float,
        default=1.0,
        help="guidance on the audio while generating (default 1: none)",
    )
    lips.add_argument("--out", required=True, help="folder for the side-by-side mp4, trace plot and JSON")

    use = evalcmd.add_parser(
        "audio-use", help="teacher-forced: does the model use the audio, on unseen faces?"
    )
    use.add_argument("--model", required=True, help="pipeline folder")
    use.add_argument("--data", required=True, help="dataset folder")
    use.add_argument("--splits", default="train,test", help="comma-separated splits (default: train,test)")
    use.add_argument("--clips", type=int, default=4)
    use.add_argument("--frames", type=int, default=200, help="frames per clip (from the start)")
    use.add_argument(
        "--guidance", type=float, default=1.0, help="audio guidance (lip strength) of 'with audio'"
    )
    use.add_argument(
        "--condition", default="audio", choices=("audio", "pose", "text", "action"),
        help="the condition compared with its null tokens (default: audio)",
    )  # fmt: skip

    cmp = evalcmd.add_parser("compare", help="the headline tables of several reports side by side")
    cmp.add_argument("reports", nargs="+", help="report folders (each with report.json)")
    cmp.add_argument("--out", help="also write the table to this markdown file")

    world = evalcmd.add_parser(
        "world", help="a world model against the game on held-out recorded episodes (PSNR, action following)"
    )
    world.add_argument(
        "--model", required=True, help="world-model pipeline folder (`train ar --preset world`)"
    )
    world.add_argument("--data", required=True, help="world dataset folder (`avatarlm data world`)")
    world.add_argument("--split", default="test")
    world.add_argument("--episodes", type=int, default=16, help="held-out episodes (default 16)")
    world.add_argument("--every", type=int, default=48, help="a rollout starts every N frames (default 48)")
    world.add_argument("--out", required=True, help="folder for world.json, world.md and side-by-side mp4s")
    world.add_argument(
        "--revisit-steps",
        type=int,
        help="the memory probe's steps away and back (default: ViZDoom 10 turns, Crafter 4 tiles; 0 skips it)",
    )
    add_action_strength_argument(world)

    pose = evalcmd.add_parser(
        "pose",
        help="free-running sessions of unseen faces whose heads turn on their own: does the head follow?",
    )
    pose.add_argument("--model", required=True, help="pipeline folder (a model that takes pose)")
    pose.add_argument("--out", required=True, help="folder for pose.json, pose.md and pose_traces.png")
    pose.add_argument("--probe", default="models/probe", help="pixel probe folder (default: models/probe)")
    pose.add_argument(
        "--languages",
        type=comma_list,
        default="en,es,zh,el",
        help="one clip per language (default: %(default)s)",
    )
    pose.add_argument("--seconds", type=float, default=10.0, help="clip length (default 10)")
    pose.add_argument("--seed", type=int, default=0)
    add_anchor_argument(pose)
    add_lip_strength_argument(pose, default=1.0)

    tp = evalcmd.add_parser("train-probe", help="train the pixel probe on renders of val-split identities")
    tp.add_argument("--out", default="models/probe", help="probe folder (default: models/probe)")
    tp.add_argument("--steps", type=int, default=2000)
    tp.add_argument("--batch", type=int, default=32)
    tp.add_argument(
        "--ae", default="models/tiny/ae", help="half of every batch goes through this autoencoder"
    )
    tp.add_argument(
        "--preset",
        default="tiny",
        help="probe preset: tiny (96x96 input), full_res (128x128) or small (128x128, wider)",
    )
    tp.add_argument("--identities", type=int, default=400, help="val-split faces rendered (default 400)")
    tp.add_argument("--lr", type=float, default=1e-3)
    tp.add_argument("--device", default="cpu", help="cpu or cuda: where the probe and the AE run")
    tp.add_argument("--workers", type=int, default=0, help="processes rendering the batches (0: this one)")
    pr = evalcmd.add_parser("probe", help="score the pixel probe on unseen renders and AE reconstructions")
    pr.add_argument("--probe", default="models/probe", help="probe folder (default: models/probe)")
    pr.add_argument("--ae", default="models/tiny/ae", help="autoencoder folder (default: models/tiny/ae)")
    pr.add_argument("--frames", type=int, default=256)


def run_eval(args: argparse.Namespace) -> None:
    if args.eval_command is None:
        _eval_report(args)
    elif args.eval_command == "compare":
        from pathlib import Path

        from avatarlm.eval.report_write import compare_reports

        table = compare_reports(args.reports)
        print(table)
        if args.out:
            Path(args.out).write_text(table + "\n")
    elif args.eval_command in ("train-probe", "probe"):
        _eval_probe(args)
    elif args.eval_command == "audio-use":
        _eval_audio_use(args)
    elif args.eval_command == "world":
        _eval_world(args)
    elif args.eval_command == "pose":
        _eval_pose(args)
    else:
        _eval_lipsync(args)


def _eval_report(args: argparse.Namespace) -> None:
    if not args.model or not args.out:
        raise ValueError("`avatarlm eval` needs --model DIR and --out DIR (or a subcommand, see --help)")

    from avatarlm.eval.pixel_probe import PixelProbe
    from avatarlm.eval.report import ReportConfig, build_report
    from avatarlm.eval.report_seeds import seed_table
    from avatarlm.eval.report_write import COLUMNS, HEADERS, headline, write_report
    from avatarlm.io import atomic_write_bytes
    from avatarlm.pipeline.folder import load_pipeline

    pipe = load_pipeline(args.model)
    probe = PixelProbe.from_pretrained(args.probe)
    base = ReportConfig.quick() if args.quick else ReportConfig()
    sessions = base.drift_seconds
    if args.sessions is not None:
        try:
            sessions = tuple(float(v) for v in args.sessions.split(",") if v)
        except ValueError:
            raise ValueError(f"--sessions takes seconds separated by commas, got {args.sessions!r}") from None
    seeds = [args.seed]
    if args.seeds is not None:
        try:
            seeds = [int(v) for v in args.seeds.split(",") if v.strip()]
        except ValueError:
            raise ValueError(f"--seeds takes integers separated by commas, got {args.seeds!r}") from None
        if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
            raise ValueError(f"--seeds needs distinct seeds >= 0, got {args.seeds!r}")
    out = Path(args.out)
    folders = []
    for seed in seeds:
        config = replace(
            base, seed=seed, roll=args.roll, anchor=args.anchor, lip_strength=args.lip_strength,
            drift_seconds=sessions,
        )  # fmt: skip
        report = build_report(pipe, probe, config, model_name=str(args.model))
        folders.append(out / f"seed-{seed}" if args.seeds is not None else out)
        path = write_report(report, folders[-1])
        print(f"{'measure':<56}" + "".join(f"{h[:22]:>24}" for h in HEADERS))
        for name, cells in headline(report).items():
            print(f"{name[:55]:<56}" + "".join(f"{cells[s]:>24}" for s in COLUMNS))
        print(f"wrote {path}")
    if args.seeds is not None:
        table = seed_table(folders)
        atomic_write_bytes(out / "seeds.md", (table + "\n").encode())
        print(table)
        print(f"wrote {out / 'seeds.md'}")


def _eval_audio_use(args: argparse.Namespace) -> None:
    from avatarlm.eval.audio_use import audio_use
    from avatarlm.pipeline.folder import load_pipeline

    if args.clips < 1 or args.frames < 10:
        raise ValueError(f"--clips must be >= 1 and --frames >= 10, got {args.clips} and {args.frames}")
    pipe = load_pipeline(args.model)
    c = args.condition
    print("teacher-forced change prediction vs truth (Pearson, the quarter of tokens that move most)")
    header = f" split clips frames   with {c:<6} null {c:<6} {c} gain"
    if pipe.model.config.mouth_channels:
        header += f"  mouth: with  null {c:<6} {c} gain"
    print(header)
    for split in [s for s in args.splits.split(",") if s]:
        report = audio_use(
            pipe, args.data, split, args.clips, args.frames, guidance=args.guidance, condition=c
        )
        print(report.row(), flush=True)


def _eval_probe(args: argparse.Namespace) -> None:
    from avatarlm.autoencoder.model import DCAutoencoder
    from avatarlm.eval.pixel_probe import PixelProbe, PixelProbeConfig
    from avatarlm.eval.pixel_probe_train import evaluate_probe, header, train_probe

    ae = DCAutoencoder.from_pretrained(args.ae)
    if args.eval_command == "train-probe":
        from avatarlm.pipeline.folder import check_device

        device = check_device(args.device)
        probe = train_probe(
            PixelProbeConfig.preset(args.preset), args.out, args.steps, args.batch, lr=args.lr,
            identities=args.identities, ae=ae, device=device, workers=args.workers,
        )  # fmt: skip
        ae = ae.cpu()
    else:
        if args.frames < 16:
            raise ValueError(f"--frames must be >= 16, got {args.frames}")
        probe = PixelProbe.from_pretrained(args.probe)
    print("R² per control (scaled to [-1, 1]), blink and expression accuracy, unseen identities:")
    print(header())
    for label, scores in evaluate_probe(probe, getattr(args, "frames", 256), ae).items():  # fmt: skip
        print(scores.row(label))


def _eval_lipsync(args: argparse.Namespace) -> None:
    from avatarlm.eval.generated_lipsync import SOURCES, evaluate_lipsync
    from avatarlm.pipeline.folder import load_pipeline

    if args.clips < 1 or (args.frames is not None and args.frames < 10):
        raise ValueError(f"--clips must be >= 1 and --frames >= 10, got {args.clips} and {args.frames}")
    check_strength(args.lip_strength, "--lip-strength")
    report = evaluate_lipsync(
        load_pipeline(args.model), args.data, args.split, args.clips, args.frames, seed=args.seed,
        out_dir=args.out, lip_strength=args.lip_strength,
    )  # fmt: skip
    print(f"{report.clips} clips, {report.frames} frames; mouth probe vs true opening (Pearson):")
    for source in SOURCES:
        lag, corr = report.best(source)
        print(
            f"  {source:>13}: {report.curves[source][0]:+.3f} at offset 0, {corr:+.3f} at best offset {lag:+d}"
        )
    print("per clip, at offset 0 (generated / reconstructed / truth):")
    for clip in report.per_clip:
        scores = " / ".join(f"{clip[source]:+.3f}" for source in SOURCES)
        voice = ", held-out voice" if clip["held_out_voice"] else ""
        print(f"  {clip['key']} ({clip['language']}{voice}): {scores}")
    if report.skipped:
        print(f"passed over (the mouth shut in every frame read): {', '.join(report.skipped)}")
    print(f"wrote {args.out}")


def _eval_pose(args: argparse.Namespace) -> None:
    from avatarlm.data.speech.languages import get_language
    from avatarlm.eval.pixel_probe import PixelProbe
    from avatarlm.eval.pose_following import measure_pose_following, write_pose_following
    from avatarlm.pipeline.anchor import resolve_anchor
    from avatarlm.pipeline.folder import load_pipeline
    from avatarlm.pipeline.session import SessionConfig

    check_strength(args.lip_strength, "--lip-strength")
    if not args.languages:
        raise ValueError("--languages must name at least one language")
    for code in args.languages:
        get_language(code)
    pipe = load_pipeline(args.model)
    anchor = resolve_anchor(args.anchor, pipe.autoencoder, pipe.model)
    session = SessionConfig(seed=args.seed, anchor=anchor, lip_strength=args.lip_strength)
    result = measure_pose_following(
        pipe, PixelProbe.from_pretrained(args.probe), args.languages, args.seconds, session
    )
    paths = write_pose_following(result, args.out)
    print(paths[1].read_text())
    print("wrote " + ", ".join(str(p) for p in paths))


def _eval_world(args: argparse.Namespace) -> None:
    from pathlib import Path

    import numpy as np

    from avatarlm.eval.world_memory import collect_revisits, is_revisit, score_revisits
    from avatarlm.eval.world_quality import collect_rollouts, score
    from avatarlm.io import atomic_write_json
    from avatarlm.media import write_mp4
    from avatarlm.pipeline.folder import load_pipeline
    from avatarlm.pipeline.session import SessionConfig

    if args.episodes < 1 or args.every < 1:
        raise ValueError(f"--episodes and --every must be at least 1, got {args.episodes}, {args.every}")
    strength = check_strength(args.action_strength, "--action-strength")
    pipe = load_pipeline(args.model)
    env, rollouts = collect_rollouts(
        pipe, args.data, args.split, args.episodes, args.every, action_strength=strength
    )
    report = score(env, rollouts)
    tables = [report.table()]
    window = SessionConfig().window_frames
    memory = None
    if args.revisit_steps != 0:
        _, steps, probes = collect_revisits(
            pipe, args.data, args.split, args.episodes, args.every, args.revisit_steps,
            action_strength=strength, window_frames=window,
        )  # fmt: skip
        memory = score_revisits(env, steps, probes, window)
        tables.append(memory.table())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "world.json", report.to_dict())
    if memory is not None:
        atomic_write_json(out / "memory.json", memory.to_dict())
    (out / "world.md").write_text("\n\n".join(tables) + "\n")
    fps = pipe.model.config.conditions.fps
    clips = [np.concatenate([r.real, r.generated], axis=2) for r in rollouts[:8]]
    write_mp4(out / "world_vs_game.mp4", _enlarged(clips), fps)
    if memory is not None:
        revisits = [
            np.concatenate([p.real, p.generated], axis=2) for p in probes if is_revisit(env, p.player)
        ]
        write_mp4(out / "revisits_vs_game.mp4", _enlarged(revisits[:8]), fps)
    print("\n\n".join(tables))
    print(f"wrote {out}/world.json, world.md and world_vs_game.mp4 (game | model, {len(clips)} rollouts)")
    if memory is not None:
        print(
            f"wrote {out}/memory.json and revisits_vs_game.mp4 (game | model, {min(8, memory.revisits)} revisits)"
        )


def _enlarged(clips: list[Any]) -> Any:
    """Clips one after another, 3x nearest (small game frames)."""
    import numpy as np

    return np.concatenate([c.repeat(3, axis=1).repeat(3, axis=2) for c in clips])
