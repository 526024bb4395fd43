"""Autoencoder training steps eager vs compiled (`train ae --compile`), side by side in one run.

Each round trains every stage twice from the same start, eager then compiled, for ``--steps`` steps of
``--batch``: the mouth-swap spatial stage from scratch (the `train all` recipe's first stage) and the decoder
stage that learns to read the reference frame, from ``--init`` (the second). Seconds per step come from the
run's loss log after its first ``--skip`` steps (which hold the compile); the start-up column is what came
before them beyond the same number of steady steps: the compile, and the first steps' warm-up.

    python benchmarks/bench_ae_train_step.py --data data/synth128 --init models/tiny/ae
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

import torch

from avatarlm.trainer.ae_config import AETrainConfig
from avatarlm.trainer.ae_run import run_ae_training
from avatarlm.trainer.train_all import TrainAllPlan, reference_stage_config, spatial_stage_config


def stage_configs(init: str) -> dict[str, tuple[AETrainConfig, bool, float]]:
    """(config, reads the dataset, final learning-rate fraction) per stage, as `train all`'s defaults set
    them up."""
    plan = TrainAllPlan()
    return {
        "mouth-swap spatial": (spatial_stage_config(plan), not plan.ae_mouth_channels, plan.ae_final_lr),
        "reference decoder": (reference_stage_config(plan, init), True, plan.ae_reference_final_lr),
    }


def timed_run(
    cfg: AETrainConfig,
    data: str | None,
    steps: int,
    batch: int,
    skip: int,
    final_lr: float,
    compiled: bool,
) -> tuple[float, float]:
    """(seconds per step after ``skip`` steps, start-up seconds) of one run."""
    cfg = cfg.replace(log_every=1, checkpoint_every=10**9, latent_stats_batches=1)
    with tempfile.TemporaryDirectory() as out:
        run_ae_training(
            cfg, data, out, steps, batch, progress=False, final_lr_fraction=final_lr, compile_model=compiled
        )
        with open(Path(out) / "loss.csv") as f:
            seconds = {int(row["step"]): float(row["seconds"]) for row in csv.DictReader(f)}
    per_step = (seconds[steps] - seconds[skip]) / (steps - skip)
    return per_step, seconds[skip] - skip * per_step


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="dataset folder (the reference stage reads its clips)")
    p.add_argument(
        "--init", default="models/tiny/ae", help="trained autoencoder the reference stage starts from"
    )
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--skip", type=int, default=10, help="first steps left out of the per-step time")
    p.add_argument("--batch", type=int, default=TrainAllPlan().ae_batch)
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args()
    if not 0 < args.skip < args.steps:
        p.error(f"--skip must be in [1, --steps), got {args.skip}")
    torch.set_num_threads(2)
    torch.set_flush_denormal(True)

    results: dict[tuple[str, bool], list[tuple[float, float]]] = {}
    started = time.perf_counter()
    for round_ in range(args.rounds):
        for stage, (cfg, reads_data, final_lr) in stage_configs(args.init).items():
            data = args.data if reads_data else None
            for compiled in (False, True):
                run = timed_run(cfg, data, args.steps, args.batch, args.skip, final_lr, compiled)
                results.setdefault((stage, compiled), []).append(run)
                print(
                    f"round {round_ + 1} {stage} {'compiled' if compiled else 'eager'}: {run[0]:.3f} s/step, start-up {run[1]:.1f} s",
                    flush=True,
                )
    print(
        f"\n{args.rounds} rounds, {args.steps} steps of {args.batch} each, {time.perf_counter() - started:.0f} s in all\n"
    )
    print("| stage | eager s/step | compiled s/step | compiled / eager | compiled start-up s (per round) |")
    print("|---|---|---|---|---|")
    for stage in stage_configs(args.init):
        eager = min(r[0] for r in results[(stage, False)])
        fast = min(r[0] for r in results[(stage, True)])
        startup = " / ".join(f"{r[1]:.0f}" for r in results[(stage, True)])
        print(f"| {stage} | {eager:.3f} | {fast:.3f} | {fast / eager:.2f} | {startup} |")


if __name__ == "__main__":
    main()
