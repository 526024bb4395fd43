"""`avatarlm data synth`: plan a dataset from a seed, render it shard by shard, resumably."""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import queue as queue_module
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from avatarlm.data.clip import ClipSpec, make_clip, summary, to_sample
from avatarlm.data.shards import ShardWriter, shard_keys, write_index
from avatarlm.data.speech.languages import LANGUAGES, get_language
from avatarlm.data.splits import SPLITS, TEST_ONLY_LANGUAGES, identity_split, language_allowed

SPLIT_WEIGHTS = {"train": 0.8, "val": 0.1, "test": 0.1}


@dataclass
class SynthConfig:
    hours: float
    out: str
    workers: int = 1
    seed: int = 0
    height: int = 128
    width: int = 128
    languages: list[str] = field(default_factory=lambda: sorted(LANGUAGES))
    dialogue_fraction: float = 0.5
    clip_seconds: tuple[float, float] = (6.0, 14.0)
    clips_per_shard: int = 16
    head_turn_fraction: float = 0.0  # share of clips whose head turns on its own (ClipSpec.head_turns)

    def validate(self) -> None:
        if not (self.hours > 0 and np.isfinite(self.hours)):
            raise ValueError(f"--hours must be a positive number, got {self.hours}")
        if self.workers < 1:
            raise ValueError(f"--workers must be at least 1, got {self.workers}")
        if min(self.height, self.width) < 32 or self.height % 8 or self.width % 8:
            raise ValueError(
                f"frame size must be at least 32 and a multiple of 8, got {self.width}x{self.height}"
            )
        if not self.languages:
            raise ValueError("--languages must name at least one language")
        for code in self.languages:
            get_language(code)
        if not 0 <= self.dialogue_fraction <= 1:
            raise ValueError(f"--dialogue-fraction must be in [0, 1], got {self.dialogue_fraction}")
        if not 0 <= self.head_turn_fraction <= 1:
            raise ValueError(f"--head-turns must be in [0, 1], got {self.head_turn_fraction}")
        check_writable(Path(self.out))


def check_writable(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise ValueError(f"cannot write to output folder {str(folder)!r}: {e.strerror or e}") from None


@dataclass
class ShardPlan:
    path: str  # relative to the dataset root
    clips: list[ClipSpec]


def plan_clips(cfg: SynthConfig) -> list[ClipSpec]:
    """The clip specs of the whole dataset, a pure function of the config (so reruns agree)."""
    rng = np.random.default_rng([cfg.seed, 0xA7A7])
    splits = list(SPLIT_WEIGHTS)
    weights = np.array(list(SPLIT_WEIGHTS.values()))
    specs: list[ClipSpec] = []
    total = 0.0
    while total < cfg.hours * 3600:
        split = splits[int(rng.choice(len(splits), p=weights))]
        langs = [lang for lang in cfg.languages if language_allowed(lang, split)]
        if not langs:  # e.g. only test-only languages were asked for
            split, langs = "test", list(cfg.languages)
        while True:
            identity = int(rng.integers(1_000_000))
            if identity_split(identity) == split:
                break
        partner = int(rng.integers(1_000_000))
        duration = float(rng.uniform(*cfg.clip_seconds))
        i = len(specs)
        specs.append(
            ClipSpec(
                key=f"clip-{i:07d}",
                seed=int(rng.integers(2**31)),
                kind="dialogue" if rng.random() < cfg.dialogue_fraction else "monologue",
                language=langs[int(rng.integers(len(langs)))],
                identity_seed=identity,
                partner_identity_seed=partner,
                duration=round(duration, 3),
                height=cfg.height,
                width=cfg.width,
                split=split,
                held_out_voice=split == "test" and bool(rng.random() < 0.5),
                # drawn only when asked for, so datasets without turns keep their plan
                head_turns=cfg.head_turn_fraction > 0 and bool(rng.random() < cfg.head_turn_fraction),
            )
        )
        total += duration
    return specs


def plan_shards(cfg: SynthConfig) -> list[ShardPlan]:
    specs = plan_clips(cfg)
    plans = []
    for split in SPLITS:
        mine = [s for s in specs if s.split == split]
        for j in range(0, len(mine), cfg.clips_per_shard):
            plans.append(
                ShardPlan(
                    f"{split}/shard-{j // cfg.clips_per_shard:05d}.tar", mine[j : j + cfg.clips_per_shard]
                )
            )
    return plans


def render_shard(root: str, plan: ShardPlan, progress: Callable[[float], None] = lambda s: None) -> None:
    with ShardWriter(Path(root) / plan.path) as writer:
        for spec in plan.clips:
            clip = make_clip(spec)
            writer.write(to_sample(clip), summary(clip))
            progress(spec.duration)


def _worker(args: tuple[str, ShardPlan, object]) -> None:
    root, plan, queue = args
    render_shard(root, plan, lambda s: queue.put(s))  # type: ignore[attr-defined]


def synthesize_dataset(cfg: SynthConfig, show_progress: bool = True) -> dict:
    """Render every missing shard, then write index.json. Returns the index."""
    cfg.validate()
    root = Path(cfg.out)
    plans = plan_shards(cfg)
    todo = [p for p in plans if shard_keys(root / p.path) != [s.key for s in p.clips]]
    done_seconds = sum(s.duration for p in plans if p not in todo for s in p.clips)
    total_seconds = sum(s.duration for p in plans for s in p.clips)
    bar = tqdm(
        total=round(total_seconds),
        initial=round(done_seconds),
        unit="s",
        desc="synth (seconds of video)",
        disable=not show_progress,
    )
    if cfg.workers == 1 or len(todo) <= 1:
        for plan in todo:
            render_shard(str(root), plan, lambda s: bar.update(round(s)))
    else:
        ctx = mp.get_context("fork")
        with ctx.Manager() as manager:
            queue = manager.Queue()
            with ctx.Pool(min(cfg.workers, len(todo))) as pool:
                result = pool.map_async(_worker, [(str(root), p, queue) for p in todo], chunksize=1)
                while not result.ready() or not queue.empty():
                    with contextlib.suppress(queue_module.Empty):
                        bar.update(round(queue.get(timeout=0.2)))
                result.get()
    bar.close()
    config = asdict(cfg) | {"test_only_languages": list(TEST_ONLY_LANGUAGES), "fps": 25.0}
    config.pop("out")
    config.pop("workers")
    return write_index(root, config, [p.path for p in plans])
