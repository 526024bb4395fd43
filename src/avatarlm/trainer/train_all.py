"""`avatarlm train all`: the default model from nothing, as one resumable command.

Stages, in order: ``synth`` (the synthetic avatar world) -> ``ae_spatial`` -> ``ae_reference`` (with
``ae_reference_steps`` > 0: the decoder fine-tuned to read the stream's reference frame,
``autoencoder/reference.py``; latents unchanged) -> ``ae_temporal`` (temporal layers; after a reference stage
in the decoder alone, as the bundled autoencoder learned time) -> ``encode`` (latent cache) ->
``ar`` (the AR model, written as a pipeline folder) -> ``duplex`` (with ``duplex_steps`` > 0: the AR model
fine-tuned to hear a partner too, ``train duplex``) -> ``own_history`` (with ``own_history_steps`` > 0:
the duplex model fine-tuned on its own rollouts, against drift; ``OWN_HISTORY_RECIPE``, the bundled
model's settings, under ``own_history_overrides``).
With ``ae_mouth_channels`` > 0 the spatial stage trains on rendered mouth-swap triples, so the first
channels of every frame's latent hold the mouth (the latent space lip-sync is learned best in).
Every stage resumes itself (synthesis skips finished shards, trainers load their last checkpoint, the cache
skips encoded shards), and ``OUT/stages.json`` records each finished stage with its wall time, so rerunning
the same command after a kill or a reboot goes on where it stopped. ``OUT/plan.json`` pins the settings: a
rerun with other settings is refused instead of mixing two runs.

Layout: ``OUT/data`` (dataset + ``latents/train_all``), ``OUT/ae_spatial``, ``OUT/ae_reference``,
``OUT/ae_temporal``, ``OUT/ar``, ``OUT/duplex``, ``OUT/own_history``; the result is the last stage's
``pipeline`` folder (``result_pipeline``).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from avatarlm.io import atomic_write_json, read_json
from avatarlm.trainer.ae_config import AETrainConfig

STAGES = ("synth", "ae_spatial", "ae_reference", "ae_temporal", "encode", "ar", "duplex", "own_history")
AE_BUDGET_STAGES = ("ae_spatial", "ae_reference", "ae_temporal")  # the autoencoder budget covers them
# Budgets the issue sets for the tiny preset on 2 cores, in minutes (the autoencoder's two stages share one).
BUDGET_MINUTES = {"synth": 20.0, "ae": 45.0, "encode": 15.0, "ar": 60.0}  # the duplex stage has none
LATENT_TAG = "train_all"
_RUN_ONLY = ("workers", "device", "compile")  # settings a rerun may change: not what it learns
# The own-history fine-tune of the bundled model (README, "Drift: training on its own frames"): every window
# rolled out by the model itself, a quarter of an own frame's error undone per frame, 3 in 4 windows from
# the clip's start, at a lower learning rate.
OWN_HISTORY_RECIPE: dict[str, Any] = {
    "lr": 2e-4,
    "own_history": 1.0,
    "own_history_mode": "rollout",
    "own_history_pull": 0.25,
    "contiguous_reference": 0.75,
}


@dataclass
class TrainAllPlan:
    """What ``train all`` builds. ``ae_preset`` / ``ar_preset``: preset names or JSON config files."""

    ae_preset: str = "tiny"
    ar_preset: str = "tiny"
    hours: float = 1.0
    seed: int = 0
    languages: list[str] | None = None  # None: every language of the synthetic world
    clip_seconds: tuple[float, float] = (6.0, 14.0)
    head_turns: float = 0.0  # share of clips whose head also turns on its own (``data synth --head-turns``)
    # The defaults are the tiny preset's recipe within the budgets (README, "`train all` at full size"):
    # the bundled autoencoder's stages cut to 45 minutes, the mouth's pixels weighed, a faster rate.
    ae_steps: int = 1800
    ae_batch: int = 16
    # the spatial stage's peak learning rate (None: the preset's), falling along a cosine to ae_final_lr
    # of it (1: constant)
    ae_lr: float | None = 1e-3
    ae_final_lr: float = 0.05
    ae_temporal_steps: int = 600  # 0 skips the temporal stage (autoencoders without temporal layers)
    ae_temporal_batch: int = 2
    ae_temporal_window: int = 8
    ae_mouth_channels: int = 4  # > 0: the spatial stage trains on mouth-swap triples (not on the dataset)
    # with mouth channels: the mouth's pixels counted again (mouth_swap.mouth_l1)
    ae_mouth_weight: float = 4.0
    ae_reference_steps: int = 2000  # > 0: a decoder stage that reads the reference frame (0 skips it)
    ae_reference_levels: int = 4
    ae_reference_lr: float = 2e-4
    ae_reference_change_weight: float = 4.0  # the bundled decoder's last run: changed pixels weighed 4x
    ae_reference_final_lr: float = 0.05  # and the learning rate down a cosine to this fraction
    ar_steps: int = 1500
    ar_overrides: dict[str, Any] = field(default_factory=dict)
    duplex_steps: int = 0  # 0 skips the duplex stage
    duplex_dialogue_fraction: float = 0.5
    duplex_overrides: dict[str, Any] = field(default_factory=dict)
    own_history_steps: int = 0  # 0 skips the own-history stage; > 0 needs a duplex stage
    own_history_overrides: dict[str, Any] = field(default_factory=dict)  # over OWN_HISTORY_RECIPE
    workers: int = 2
    device: str = "cpu"
    compile: bool = False  # compile the autoencoder stages' models (torch.compile; a C++ compiler)

    def validate(self) -> None:
        if self.hours <= 0:
            raise ValueError(f"--hours must be positive, got {self.hours}")
        for name in (
            "ae_steps",
            "ae_batch",
            "ae_temporal_batch",
            "ae_temporal_window",
            "ar_steps",
            "workers",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in (
            "ae_temporal_steps",
            "ae_mouth_channels",
            "ae_reference_steps",
            "duplex_steps",
            "own_history_steps",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.ae_mouth_weight < 0:
            raise ValueError(f"ae_mouth_weight must be >= 0, got {self.ae_mouth_weight}")
        if self.ae_lr is not None and self.ae_lr <= 0:
            raise ValueError(f"ae_lr must be positive, got {self.ae_lr}")
        if not 0.0 <= self.ae_final_lr <= 1.0:
            raise ValueError(f"ae_final_lr must be in [0, 1], got {self.ae_final_lr}")
        if self.ae_reference_change_weight < 0 or not 0.0 <= self.ae_reference_final_lr <= 1.0:
            raise ValueError(
                f"ae_reference_change_weight must be >= 0 and ae_reference_final_lr in [0, 1], got "
                f"{self.ae_reference_change_weight} and {self.ae_reference_final_lr}"
            )
        if self.own_history_steps and not self.duplex_steps:
            raise ValueError(
                "own_history_steps fine-tunes the duplex model: give duplex_steps too (a mono model "
                "trains on its own rollouts in the AR stage: --set own_history=...)"
            )
        from avatarlm.trainer.ar_config import ARTrainConfig

        _ae_config(self)  # unreadable presets fail here, before anything is written
        ARTrainConfig.from_preset_or_file(self.ar_preset).with_overrides(self.ar_overrides)
        if not 0.0 <= self.head_turns <= 1.0:
            raise ValueError(f"--head-turns must be a share in [0, 1], got {self.head_turns}")
        if not 0.0 <= self.duplex_dialogue_fraction <= 1.0:
            raise ValueError(
                f"duplex_dialogue_fraction must be in [0, 1], got {self.duplex_dialogue_fraction}"
            )

    def pinned(self) -> dict[str, Any]:
        """The settings that decide the result (all but workers and device), JSON-ready."""
        data = dataclasses.asdict(self)
        for name in _RUN_ONLY:
            data.pop(name)
        data["clip_seconds"] = list(self.clip_seconds)
        return data


@dataclass
class StageReport:
    name: str
    seconds: float
    skipped: bool  # finished by an earlier run of the command


def _check_plan(out: Path, plan: TrainAllPlan) -> None:
    path, pinned = out / "plan.json", plan.pinned()
    if path.exists():  # settings added since the run began take their defaults
        before = {**TrainAllPlan().pinned(), **read_json(path)}
        if before != pinned:
            changed = sorted(k for k in pinned if before.get(k) != pinned[k])
            raise ValueError(
                f"{out} holds a run with other settings ({', '.join(changed)} differ); "
                "rerun with the same settings to resume, or use a new --out"
            )
    else:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, pinned)


def _ae_config(plan: TrainAllPlan, **overrides: Any) -> AETrainConfig:
    return AETrainConfig.from_preset_or_file(plan.ae_preset, **overrides)


def spatial_stage_config(plan: TrainAllPlan) -> AETrainConfig:
    """The spatial stage's training config. With mouth channels it trains on rendered mouth-swap triples
    (the dataset is not read), the mouth's pixels weighed ``ae_mouth_weight``."""
    cfg = _ae_config(plan, stage="spatial")
    if plan.ae_lr is not None:
        cfg = cfg.replace(lr=plan.ae_lr)
    if plan.ae_mouth_channels:
        overrides = {
            "autoencoder.mouth_channels": plan.ae_mouth_channels,
            "mouth_weight": plan.ae_mouth_weight,
        }
        cfg = cfg.with_overrides(overrides)
    return cfg


def reference_stage_config(plan: TrainAllPlan, init_from: str | Path) -> AETrainConfig:
    """The reference stage's training config: the decoder of ``init_from`` learns to read the reference."""
    cfg = _ae_config(plan, stage="decoder", init_from=str(init_from), lr=plan.ae_reference_lr)
    return cfg.with_overrides(
        {
            "autoencoder.reference_levels": plan.ae_reference_levels,
            "reference_change_weight": plan.ae_reference_change_weight,
        }
    )


def stage_actions(plan: TrainAllPlan, out: Path, progress: bool = True) -> dict[str, Callable[[], None]]:
    """One callable per stage; each resumes its own work when run again."""
    data = out / "data"
    spatial, reference = out / "ae_spatial" / "model", out / "ae_reference" / "model"

    def spatial_ae() -> Path:  # the spatial and reference stages' result
        return reference if plan.ae_reference_steps > 0 else spatial

    def ae_folder() -> Path:  # the autoencoder pipelines get
        return out / "ae_temporal" / "model" if plan.ae_temporal_steps > 0 else spatial_ae()

    def synth() -> None:
        from avatarlm.data.speech.languages import LANGUAGES
        from avatarlm.data.synth import SynthConfig, synthesize_dataset

        ae = _ae_config(plan).autoencoder
        cfg = SynthConfig(
            hours=plan.hours,
            out=str(data),
            workers=plan.workers,
            seed=plan.seed,
            height=ae.image_height,
            width=ae.image_width,
            languages=plan.languages if plan.languages is not None else sorted(LANGUAGES),
            clip_seconds=plan.clip_seconds,
            head_turn_fraction=plan.head_turns,
        )
        synthesize_dataset(cfg, show_progress=progress)

    def ae_spatial() -> None:
        from avatarlm.trainer.ae_run import run_ae_training

        frames = None if plan.ae_mouth_channels else data  # mouth channels: rendered triples instead
        run_ae_training(
            spatial_stage_config(plan), frames, out / "ae_spatial", plan.ae_steps, plan.ae_batch, progress=progress,
            final_lr_fraction=plan.ae_final_lr, compile_model=plan.compile,
        )  # fmt: skip

    def ae_reference() -> None:
        if plan.ae_reference_steps == 0:
            return
        from avatarlm.trainer.ae_run import run_ae_training

        run_ae_training(
            reference_stage_config(plan, spatial), data, out / "ae_reference", plan.ae_reference_steps, plan.ae_batch, progress=progress,
            final_lr_fraction=plan.ae_reference_final_lr, compile_model=plan.compile,
        )  # fmt: skip

    def ae_temporal() -> None:
        if plan.ae_temporal_steps == 0:
            return
        from avatarlm.trainer.ae_run import run_ae_training

        cfg = _ae_config(plan, stage="temporal", init_from=str(spatial_ae()))
        final_lr = None
        if plan.ae_reference_steps:  # the bundled decoder's run: in the decoder alone, as the reference stage
            cfg = cfg.with_overrides(
                {
                    "autoencoder.temporal_encoder": False,
                    "lr": plan.ae_reference_lr,
                    "reference_change_weight": plan.ae_reference_change_weight,
                }
            )
            final_lr = plan.ae_reference_final_lr
        run_ae_training(
            cfg, data, out / "ae_temporal", plan.ae_temporal_steps, plan.ae_temporal_batch,
            plan.ae_temporal_window, progress=progress, final_lr_fraction=final_lr, compile_model=plan.compile,
        )  # fmt: skip

    def encode() -> None:
        from avatarlm.autoencoder.latent_cache import encode_dataset
        from avatarlm.autoencoder.model import DCAutoencoder

        encode_dataset(DCAutoencoder.from_pretrained(ae_folder()), data, LATENT_TAG, show_progress=progress)

    def ar() -> None:
        from avatarlm.trainer.ar_run import run_ar_training

        run_ar_training(
            plan.ar_preset, data, ae_folder(), LATENT_TAG, out / "ar", plan.ar_steps, plan.device,
            plan.ar_overrides, progress=progress,
        )  # fmt: skip

    def duplex() -> None:
        if plan.duplex_steps == 0:
            return
        from avatarlm.trainer.duplex_run import run_duplex_training

        run_duplex_training(
            out / "ar" / "pipeline", data, out / "duplex", plan.duplex_steps, LATENT_TAG, plan.device,
            plan.duplex_overrides, plan.duplex_dialogue_fraction, progress=progress,
        )  # fmt: skip

    def own_history() -> None:
        if plan.own_history_steps == 0:
            return
        from avatarlm.trainer.duplex_run import run_duplex_training

        run_duplex_training(
            out / "duplex" / "pipeline", data, out / "own_history", plan.own_history_steps, LATENT_TAG,
            plan.device, {**OWN_HISTORY_RECIPE, **plan.own_history_overrides}, plan.duplex_dialogue_fraction,
            progress=progress,
        )  # fmt: skip

    return {
        "synth": synth,
        "ae_spatial": ae_spatial,
        "ae_reference": ae_reference,
        "ae_temporal": ae_temporal,
        "encode": encode,
        "ar": ar,
        "duplex": duplex,
        "own_history": own_history,
    }


def result_pipeline(plan: TrainAllPlan, out: str | Path) -> Path:
    """The pipeline folder ``train all`` builds: its last stage's (own history, duplex or AR)."""
    last = "own_history" if plan.own_history_steps else "duplex" if plan.duplex_steps else "ar"
    return Path(out) / last / "pipeline"


def train_all(plan: TrainAllPlan, out: str | Path, progress: bool = True) -> list[StageReport]:
    """Run (or resume) every stage; returns one report per stage. The pipeline: ``result_pipeline``."""
    plan.validate()
    out = Path(out)
    _check_plan(out, plan)
    done_path = out / "stages.json"
    done: dict[str, Any] = read_json(done_path) if done_path.exists() else {}
    actions = stage_actions(plan, out, progress)
    reports = []
    for name in STAGES:
        if name in done:
            reports.append(StageReport(name, float(done[name]["seconds"]), skipped=True))
            continue
        if progress:
            print(f"== train all: {name}", flush=True)
        start = time.perf_counter()
        actions[name]()
        seconds = time.perf_counter() - start
        done[name] = {"seconds": round(seconds, 1), "finished": time.strftime("%Y-%m-%d %H:%M:%S")}
        atomic_write_json(done_path, done)
        reports.append(StageReport(name, seconds, skipped=False))
    return reports


def budget_table(reports: list[StageReport]) -> str:
    """Minutes per stage against the tiny preset's budgets (the autoencoder's stages summed)."""
    minutes = {r.name: r.seconds / 60 for r in reports}
    rows = [
        ("synthesis", minutes.get("synth", 0.0), BUDGET_MINUTES["synth"]),
        (
            "autoencoder",
            sum(minutes.get(name, 0.0) for name in AE_BUDGET_STAGES),
            BUDGET_MINUTES["ae"],
        ),
        ("latent cache", minutes.get("encode", 0.0), BUDGET_MINUTES["encode"]),
        ("AR model", minutes.get("ar", 0.0), BUDGET_MINUTES["ar"]),
    ]
    lines = ["| stage | minutes | budget (tiny, 2 cores) |", "|---|---|---|"]
    lines += [f"| {name} | {m:.1f} | {b:.0f}{'' if m <= b else ' (over)'} |" for name, m, b in rows]
    total = sum(r[1] for r in rows)
    for name, label in (("duplex", "duplex fine-tune"), ("own_history", "own-history fine-tune")):
        if minutes.get(name):
            lines.append(f"| {label} | {minutes[name]:.1f} | - |")
            total += minutes[name]
    lines.append(f"| all | {total:.1f} | {sum(BUDGET_MINUTES.values()):.0f} |")
    return "\n".join(lines)
