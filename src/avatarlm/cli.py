"""The `avatarlm` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from avatarlm.cli_chat import add_chat_parser, run_chat
from avatarlm.cli_eval import add_eval_parser, run_eval
from avatarlm.cli_options import (
    add_anchor_argument,
    add_device_argument,
    add_lip_strength_argument,
    comma_list,
)
from avatarlm.cli_play import add_play_parser, run_play
from avatarlm.cli_serve import add_serve_parser, run_serve
from avatarlm.cli_serve_cluster import add_serve_cluster_parser, run_serve_cluster
from avatarlm.cli_train import add_train_parser, run_train


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="avatarlm", description="Real-time streaming video generation for digital humans."
    )
    sub = p.add_subparsers(dest="command", required=True)

    demo = sub.add_parser(
        "demo",
        help="render the demo outputs into a folder, or (--out NAME.mp4) one talking video",
        description="With --out FOLDER: a contact sheet of identities, a synthetic dialogue and the model "
        "speaking (talking_LANG.mp4). With --out NAME.mp4: only the model speaking --text or --audio, as "
        "`avatarlm generate` does, with its latency summary.",
    )
    demo.add_argument("--out", default="out/demo", help="output folder (default: out/demo) or an .mp4")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--language", "--lang", dest="language", default="en")
    demo.add_argument("--size", type=int, default=256, help="pixels per avatar (square)")
    demo.add_argument("--seconds", type=float, default=12.0)
    demo.add_argument("--model", default=None, help="pipeline folder (default: the bundled models/tiny)")
    demo.add_argument("--text", default=None, help="what the avatar says (default: phrases of --language)")
    demo.add_argument("--audio", default=None, help="with --out NAME.mp4: speech file instead of --text")
    demo_face = demo.add_mutually_exclusive_group()
    demo_face.add_argument("--identity", type=int, default=None, help="synthetic identity (default: --seed)")
    demo_face.add_argument("--image", help="with --out NAME.mp4: reference image of the face")
    demo.add_argument("--instructions", help='with --out NAME.mp4: timed instructions, e.g. "2.0-3.5:smile"')
    add_lip_strength_argument(demo)
    add_anchor_argument(demo)
    add_device_argument(demo)

    data = sub.add_parser("data", help="datasets: the synthetic avatar world, game rollouts").add_subparsers(
        dest="data_command", required=True
    )
    synth = data.add_parser("synth", help="render a dataset of talking-avatar clips into shards")
    synth.add_argument("--hours", type=float, required=True, help="hours of video to render")
    synth.add_argument("--out", required=True, help="dataset folder (created; a rerun resumes)")
    synth.add_argument("--workers", type=int, default=1)
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--size", type=int, default=128, help="square frame size in pixels")
    synth.add_argument(
        "--languages", type=comma_list, default=None, help="comma-separated codes (default: all)"
    )
    synth.add_argument("--dialogue-fraction", type=float, default=0.5)
    synth.add_argument("--clips-per-shard", type=int, default=16)
    synth.add_argument(
        "--head-turns",
        type=float,
        default=0.0,
        help="share of clips whose head turns to directions of its own now and then (default 0): data where "
        "only the pose condition tells where the head goes",
    )
    world = data.add_parser("world", help="record exploratory game rollouts (frames + actions) into shards")
    world.add_argument("--env", required=True, help="crafter or vizdoom")
    world.add_argument("--hours", type=float, required=True, help="hours of frames to record")
    world.add_argument("--out", required=True, help="dataset folder (created; a rerun resumes)")
    world.add_argument("--size", type=int, default=64, help="square frame size in pixels")
    world.add_argument("--fps", type=float, default=15.0, help="frames per second of the clips")
    world.add_argument("--seed", type=int, default=0)
    world.add_argument("--workers", type=int, default=1)
    world.add_argument("--episode-steps", type=int, default=450, help="cut episodes after this many steps")
    world.add_argument("--episodes-per-shard", type=int, default=16)

    ingest = data.add_parser(
        "ingest", help="real talking videos -> face-cropped clips with pose, sound and transcript, as shards"
    )
    ingest.add_argument("videos", nargs="+", help="video files (anything FFmpeg reads, with sound)")
    ingest.add_argument("--out", required=True, help="dataset folder (created; a rerun resumes)")
    ingest.add_argument("--size", type=int, default=128, help="square crop size in pixels (default: 128)")
    ingest.add_argument("--fps", type=float, default=25.0, help="frame rate of the clips (default: 25)")
    ingest.add_argument(
        "--split", default="auto", help="auto (by the file's hash, 80/10/10), train, val or test"
    )
    ingest.add_argument("--language", default="en", help="language of the speech (transcripts: en only)")
    ingest.add_argument("--min-seconds", type=float, default=2.0, help="shortest clip kept")
    ingest.add_argument("--max-seconds", type=float, default=14.0, help="longer face shots are cut in parts")
    ingest.add_argument(
        "--min-face-px", type=float, default=64.0, help="forehead-to-chin length, source pixels"
    )
    ingest.add_argument("--min-sharpness", type=float, default=15.0, help="variance of the crop's Laplacian")
    ingest.add_argument("--min-audio-db", type=float, default=-45.0, help="RMS loudness, dB full scale")
    ingest.add_argument(
        "--min-lip-sync", type=float, default=0.25, help="lip-audio agreement (below -1: keep every clip)"
    )

    add_train_parser(sub)

    gen = sub.add_parser(
        "generate", help="speech (a file, or text spoken by a built-in voice) + a face -> mp4"
    )
    gen.add_argument("--model", default=None, help="pipeline folder (default: the bundled models/tiny)")
    speech = gen.add_mutually_exclusive_group(required=True)
    speech.add_argument("--audio", help="speech file (wav, flac, ogg; any sample rate)")
    speech.add_argument("--text", help="text to speak with the espeak-ng voice of --lang")
    gen.add_argument("--lang", default="en", help="language of --text (default: en)")
    gen.add_argument(
        "--instructions", help='timed instructions, e.g. "2.0-3.5:smile,5-6:look left" (seconds)'
    )
    gen.add_argument(
        "--partner-audio", help="the other party's speech (duplex models): the avatar listens while it plays"
    )
    face = gen.add_mutually_exclusive_group()
    face.add_argument("--identity", type=int, default=None, help="synthetic identity seed (default: 0)")
    face.add_argument("--image", help="reference image of the face")
    gen.add_argument("--seed", type=int, default=0, help="noise seed of the session")
    add_device_argument(gen)
    add_anchor_argument(gen)
    add_lip_strength_argument(gen)
    gen.add_argument("--out", required=True, help="mp4 to write (with sound)")

    add_eval_parser(sub)
    add_chat_parser(sub)
    add_serve_parser(sub)
    add_serve_cluster_parser(sub)
    add_play_parser(sub)

    aecmd = sub.add_parser("ae", help="use a trained autoencoder").add_subparsers(
        dest="ae_command", required=True
    )
    enc = aecmd.add_parser("encode", help="cache the latents of every clip of a dataset")
    enc.add_argument("--data", required=True, help="dataset folder")
    enc.add_argument("--model", required=True, help="autoencoder folder (config.json + model.safetensors)")
    enc.add_argument("--tag", default=None, help="name of the latent set (default: the model folder's name)")
    ev = aecmd.add_parser("eval", help="reconstruction quality on held-out clips")
    ev.add_argument("--data", required=True, help="dataset folder")
    ev.add_argument("--model", required=True, help="autoencoder folder")
    ev.add_argument("--split", default="test")
    ev.add_argument("--clips", type=int, default=8)
    pack = sub.add_parser(
        "pack", help="copy a pipeline folder with fp16 weights (half the size; what models/tiny holds)"
    )
    pack.add_argument("model", help="pipeline folder (OUT/pipeline of a training run)")
    pack.add_argument("--out", required=True, help="new pipeline folder")
    return p


def _ae_command(args: argparse.Namespace) -> None:
    from avatarlm.autoencoder.model import DCAutoencoder

    model = DCAutoencoder.from_pretrained(args.model)
    if args.ae_command == "encode":
        from avatarlm.autoencoder.latent_cache import encode_dataset

        tag = args.tag or Path(args.model).resolve().name
        written = encode_dataset(model, args.data, tag)
        print(f"encoded {written} shards into {Path(args.data) / 'latents' / tag}")
    else:
        from avatarlm.eval.ae_quality import evaluate_autoencoder

        quality = evaluate_autoencoder(model, args.data, args.split, args.clips)
        for key, value in quality.as_dict().items():
            print(f"{key:>18}: {value:.4f}" if isinstance(value, float) else f"{key:>18}: {value}")


def _demo_video(args: argparse.Namespace) -> None:
    """`demo --out NAME.mp4`: `generate` with the demo's defaults (the language's everyday phrases, the
    identity of --seed)."""
    from avatarlm.data.speech.phrases import phrases

    if args.text is not None and args.audio is not None:
        raise ValueError("give --text or --audio, not both")
    text = args.text if args.text is not None or args.audio else " ".join(phrases(args.language)[:3])
    identity = args.identity if args.identity is not None or args.image else args.seed
    _generate(
        argparse.Namespace(**{**vars(args), "text": text, "lang": args.language, "identity": identity,
                              "partner_audio": None})
    )  # fmt: skip


def _generate(args: argparse.Namespace) -> None:
    from avatarlm.pipeline.folder import load_for_command
    from avatarlm.pipeline.generate import (
        check_mp4_path,
        domain_warning,
        face_reference,
        generate_video,
        load_audio,
        parse_instructions,
        speak_text,
    )
    from avatarlm.pipeline.session import SessionConfig

    check_mp4_path(args.out)
    pipe = load_for_command(args.model, args.device)
    audio = load_audio(args.audio) if args.audio else speak_text(args.text, args.lang)
    partner = load_audio(args.partner_audio) if args.partner_audio else None
    instructions = parse_instructions(args.instructions) if args.instructions else None
    if partner is not None and pipe.model.config.conditions.audio_streams != 2:
        raise ValueError("--partner-audio needs a duplex model (two audio streams); this one hears one")
    image, identity = face_reference(pipe, args.image, args.identity)
    warning = domain_warning(pipe.autoencoder, image) if image is not None else None
    if warning:
        print(warning, file=sys.stderr)
    config = SessionConfig(seed=args.seed, lip_strength=args.lip_strength, anchor=args.anchor)
    report = generate_video(pipe, audio, args.out, image, identity, config, partner, instructions)
    print(report.summary())
    print(f"wrote {args.out}")


def _ingest(args: argparse.Namespace) -> None:
    from avatarlm.data.ingest import REPORT_NAME, IngestConfig, ingest
    from avatarlm.data.ingest_quality import QualityConfig

    cfg = IngestConfig(
        out=args.out,
        size=args.size,
        fps=args.fps,
        split=args.split,
        language=args.language,
        min_seconds=args.min_seconds,
        max_seconds=args.max_seconds,
        quality=QualityConfig(args.min_face_px, args.min_sharpness, args.min_audio_db, args.min_lip_sync),
    )
    report = ingest(args.videos, cfg)
    entries = [e for e in report["videos"].values() if e["file"] in set(args.videos)]
    kept = [c for e in entries for c in e.get("clips", []) if c["kept"]]
    seconds = sum(c["end"] - c["start"] for c in kept)
    skips = [f"{e['file']}: {e['reason']}" for e in entries if e["status"] == "skipped"]
    if not kept:
        raise ValueError(f"no video gave a clip ({'; '.join(skips)}); see {Path(args.out) / REPORT_NAME}")
    print(f"{len(entries) - len(skips)} of {len(entries)} videos gave {len(kept)} clips ({seconds / 60:.1f} min) "
          f"in {args.out}")  # fmt: skip
    for line in skips:
        print(f"  skipped {line}")
    for e in entries:
        for c in e.get("clips", []):
            if not c["kept"]:
                print(f"  left out {c['key']} ({c['start']:.1f}-{c['end']:.1f} s): {c['reason']}")
    print(f"report: {Path(args.out) / REPORT_NAME}")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "demo" and args.out.lower().endswith(".mp4"):
            _demo_video(args)
        elif args.command == "demo":
            from avatarlm.data.speech.languages import get_language
            from avatarlm.demo import run_demo, talking_video
            from avatarlm.pipeline.folder import BUNDLED, bundled_pipeline

            get_language(args.language)
            for path in run_demo(args.out, args.seed, args.language, args.size, args.seconds):
                print(f"wrote {path}")
            if args.model is not None or bundled_pipeline() is not None:
                path, summary = talking_video(Path(args.out), args.language, args.seed, args.model, args.text)
                print(f"{summary}\nwrote {path}")
            else:
                print(f"no pipeline at {BUNDLED} (and no --model): skipped the talking video")
        elif args.command == "data" and args.data_command == "synth":
            from avatarlm.data.speech.languages import LANGUAGES
            from avatarlm.data.synth import SynthConfig, synthesize_dataset

            cfg = SynthConfig(
                hours=args.hours,
                out=args.out,
                workers=args.workers,
                seed=args.seed,
                height=args.size,
                width=args.size,
                languages=args.languages if args.languages is not None else sorted(LANGUAGES),
                dialogue_fraction=args.dialogue_fraction,
                clips_per_shard=args.clips_per_shard,
                head_turn_fraction=args.head_turns,
            )
            index = synthesize_dataset(cfg)
            clips = sum(len(s["samples"]) for s in index["shards"])
            print(f"wrote {clips} clips in {len(index['shards'])} shards to {args.out}")
        elif args.command == "data" and args.data_command == "world":
            from avatarlm.data.world import WorldConfig, collect_world

            world_cfg = WorldConfig(
                env=args.env,
                hours=args.hours,
                out=args.out,
                size=args.size,
                fps=args.fps,
                seed=args.seed,
                workers=args.workers,
                episode_steps=args.episode_steps,
                episodes_per_shard=args.episodes_per_shard,
            )
            index = collect_world(world_cfg)
            episodes = sum(len(s["samples"]) for s in index["shards"])
            hours = index["config"]["frames"] / args.fps / 3600
            print(f"wrote {episodes} episodes ({hours:.2f} h) in {len(index['shards'])} shards to {args.out}")
        elif args.command == "data" and args.data_command == "ingest":
            _ingest(args)
        elif args.command == "train":
            run_train(args)
        elif args.command == "generate":
            _generate(args)
        elif args.command == "eval":
            run_eval(args)
        elif args.command == "chat":
            run_chat(args)
        elif args.command == "serve":
            run_serve(args)
        elif args.command == "serve-cluster":
            run_serve_cluster(args)
        elif args.command == "play":
            run_play(args)
        elif args.command == "ae":
            _ae_command(args)
        elif args.command == "pack":
            from avatarlm.pipeline.folder import folder_megabytes, pack_pipeline

            out = pack_pipeline(args.model, args.out)
            print(f"wrote {out} ({folder_megabytes(out):.1f} MB, fp16 weights)")
    except (ValueError, FileNotFoundError) as e:
        print(f"avatarlm: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("avatarlm: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
