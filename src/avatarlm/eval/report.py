"""`avatarlm eval --model DIR --out report/`: every measurement of a pipeline, against its ceiling and floor.

Clips come from the synthetic world on demand (``eval_clips.py``: unseen faces, held-out voices, two languages
no model trains on), so the report needs no dataset. Each clip is scored from pixels by the pixel probe in
three versions side by side: the model's own frames from a streaming session (``generated``), the
autoencoder's reconstruction of the true frames (``ceiling``: the best a model working in this latent space
can reach) and the first true frame held still (``floor``: a still face scores lip-sync 0). Duplex models
are also measured on dialogues (``duplex_report.py``). Long sessions measure drift and compute latency.
``report_write.py`` turns a :class:`Report` into report.md and plots.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from avatarlm.autoencoder.loss import ssim
from avatarlm.data.face import FACE_STATE_FIELDS, POSE_FIELDS
from avatarlm.eval.ae_quality import reconstruct_clip, to_tensor
from avatarlm.eval.clip_metrics import (
    audio_envelope,
    degrade,
    frechet_distance,
    pose_error,
    sharpness,
    span_accuracy,
    static_distance,
    static_mask,
)
from avatarlm.eval.duplex_report import DuplexResult, measure_duplex
from avatarlm.eval.eval_clips import (
    DIALOGUE_LANGUAGES,
    EXPRESSION_INSTRUCTIONS,
    FULL_LANGUAGES,
    MIN_DIALOGUE_SECONDS,
    QUICK_DIALOGUE_LANGUAGES,
    QUICK_LANGUAGES,
    EvalClip,
    evaluation_clips,
)
from avatarlm.eval.eval_generate import looped, stream_clip, teacher_forced_frames
from avatarlm.eval.image_metrics import psnr
from avatarlm.eval.lipsync import lagged_correlations
from avatarlm.eval.pixel_probe import PixelProbe, probed_pose, state_targets
from avatarlm.pipeline.anchor import resolve_anchor
from avatarlm.pipeline.folder import Pipeline
from avatarlm.pipeline.session import SessionConfig

SOURCES = ("generated", "ceiling", "floor", "truth")  # truth: the probe's own reading of the true frames
DEGRADATIONS = (("blur", 1.0), ("blur", 2.0), ("noise", 8.0), ("noise", 16.0))


@dataclass
class ReportConfig:
    """What to measure: ``languages`` x ``clips_per_language`` clips of ``seconds`` s, one dialogue of
    ``dialogue_seconds`` s per ``dialogue_languages`` (duplex models only), and free-running sessions of each
    of ``drift_seconds`` s (their inputs loop the first clip's)."""

    languages: tuple[str, ...] = FULL_LANGUAGES
    clips_per_language: int = 1
    seconds: float = 8.0
    drift_seconds: tuple[float, ...] = (10.0, 60.0)
    max_lag: int = 3
    seed: int = 0
    roll: str = "rotate"  # the sessions' window roll (SessionConfig.roll)
    anchor: float | None = None  # the sessions' pull toward the reference (SessionConfig.anchor)
    lip_strength: float = 1.0  # the sessions' guidance on the audio (SessionConfig.lip_strength)
    dialogue_languages: tuple[str, ...] = DIALOGUE_LANGUAGES
    dialogue_seconds: float = 10.0

    @classmethod
    def quick(cls) -> ReportConfig:
        return cls(
            languages=QUICK_LANGUAGES,
            seconds=6.0,
            drift_seconds=(10.0,),
            dialogue_languages=QUICK_DIALOGUE_LANGUAGES,
        )

    def __post_init__(self) -> None:
        if not self.languages or self.clips_per_language < 1:
            raise ValueError("a report needs at least one language and one clip per language")
        if self.seconds < 2.0 or any(s < 2.0 for s in self.drift_seconds):
            raise ValueError("clips and drift sessions must last at least 2 s")
        if self.dialogue_seconds < MIN_DIALOGUE_SECONDS:
            raise ValueError(f"dialogues must last at least {MIN_DIALOGUE_SECONDS:g} s")


@dataclass
class ClipScores:
    """One clip, per source: lagged correlations of the probed mouth with the true opening and with the audio
    envelope, head-pose error (deg), expression hits inside instruction spans, static-region distance."""

    key: str
    language: str
    held_out_language: bool
    mouth: dict[str, dict[int, float]] = field(default_factory=dict)
    envelope: dict[str, dict[int, float]] = field(default_factory=dict)
    pose_mae: dict[str, list[float]] = field(default_factory=dict)
    instruction_hits: dict[str, tuple[int, int]] = field(default_factory=dict)
    static: dict[str, float] = field(default_factory=dict)


@dataclass
class DriftRun:
    seconds: float
    static_per_second: list[float]  # generated frames' static-region distance to the reference, per second
    segment_seconds: float  # the first and last stretches compared: a fifth of the session, at most a minute
    static_first: float  # static-region distance over the first and the last segment
    static_last: float
    mouth_first: float  # lip-sync (offset 0) over the first and the last segment
    mouth_last: float
    compute_ms: list[float]  # per frame: conditions + backbone + head + roll + decode
    stage_ms: dict[str, float]  # mean per stage


@dataclass
class Report:
    model: str
    config: ReportConfig
    clips: list[ClipScores]
    teacher_forced: dict[str, tuple[float, float]]  # source -> (PSNR, SSIM) vs the true next frames
    frechet: dict[str, float]  # source or degradation -> distance to the true frames' probe features
    drift: list[DriftRun]
    traces: list[dict[str, Any]]  # a few clips' mouth traces for the plot
    strip: dict[str, np.ndarray]  # source -> frames at a few times of the first clip, for the picture
    duplex: DuplexResult = field(default_factory=lambda: DuplexResult(skipped="skipped: not measured"))


def mean_curve(curves: list[dict[int, float]]) -> dict[int, float]:
    return {lag: float(np.mean([c[lag] for c in curves])) for lag in curves[0]}


class Scorer:
    """Reads frames with the pixel probe and scores them against one clip's truth."""

    def __init__(self, probe: PixelProbe, clip: EvalClip, max_lag: int) -> None:
        c = clip.clip
        self.probe, self.clip, self.max_lag = probe, clip, max_lag
        face = c.truth["face"]
        self.mouth = face[1:, FACE_STATE_FIELDS.index("mouth_open")].astype(np.float64)
        n = clip.frames.shape[0]
        self.envelope = audio_envelope(c.audio[0], n, float(c.meta["spec"]["fps"]))[1:]
        self.pose = face[1:, [FACE_STATE_FIELDS.index(f) for f in POSE_FIELDS]].astype(np.float64)
        self.expression = state_targets(face)[1][1:]
        self.in_span = np.array([t in EXPRESSION_INSTRUCTIONS for t in c.texts[1:]])
        self.mask = static_mask(clip.frames)

    def score(self, frames: np.ndarray, into: ClipScores, source: str) -> tuple[np.ndarray, np.ndarray]:
        """Score frames 1..N-1 (``frames`` holds 0..N-1); returns the probed mouth trace and the frames'
        Fréchet features (one probe pass gives both)."""
        controls, expression, probed = self.probe.look(frames[1:])
        mouth = controls[:, 0].astype(np.float64)
        into.mouth[source] = lagged_correlations(mouth, self.mouth, self.max_lag)
        into.envelope[source] = lagged_correlations(mouth, self.envelope, self.max_lag)
        into.pose_mae[source] = pose_error(probed_pose(controls), self.pose).tolist()
        into.instruction_hits[source] = span_accuracy(expression, self.expression, self.in_span)
        into.static[source] = float(static_distance(frames[1:], self.clip.frames[0], self.mask).mean())
        return mouth, frame_features(probed, frames[1:])


def frame_features(probed: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """What the Fréchet distance compares: the probe's 256-d features of ``frames`` (what a face shows) and a
    4x4 grid of sharpness (what blur and noise change)."""
    return np.concatenate([probed, sharpness(frames)], axis=1)


def image_quality(predicted: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    with torch.no_grad():
        s = ssim(to_tensor(predicted)[0], to_tensor(truth)[0]).item()
    return psnr(predicted, truth), float(s)


def build_report(
    pipe: Pipeline, probe: PixelProbe, config: ReportConfig, model_name: str = "", progress: bool = True
) -> Report:
    size = pipe.autoencoder.config.image_height
    if pipe.autoencoder.config.image_width != size:
        raise ValueError("the report renders square clips; this pipeline's frames are not square")
    config = replace(config, anchor=resolve_anchor(config.anchor, pipe.autoencoder, pipe.model))
    session = SessionConfig(
        seed=config.seed, roll=config.roll, anchor=config.anchor, lip_strength=config.lip_strength
    )
    n_clips = len(config.languages) * config.clips_per_language
    duplex = pipe.model.config.conditions.audio_streams == 2
    n_dialogues = len(config.dialogue_languages) if duplex else 0
    bar = tqdm(
        total=n_clips + n_dialogues + len(config.drift_seconds), desc="eval report", disable=not progress
    )
    scores: list[ClipScores] = []
    traces: list[dict[str, Any]] = []
    teacher: dict[str, list[np.ndarray]] = {s: [] for s in SOURCES}  # next frames, truth included
    features: dict[str, list[np.ndarray]] = {s: [] for s in SOURCES}
    strip: dict[str, np.ndarray] = {}
    first: EvalClip | None = None
    for clip in evaluation_clips(config.languages, config.clips_per_language, config.seconds, size):
        bar.set_postfix_str(clip.key)
        first = first or clip
        n = clip.frames.shape[0]
        versions = {
            "generated": stream_clip(pipe, clip.clip, clip.frames[0], n, session)[0],
            "ceiling": reconstruct_clip(pipe.autoencoder, clip.frames, True, clip.frames[0]),
            "floor": np.repeat(clip.frames[:1], n, axis=0),
            "truth": clip.frames,
        }
        scorer = Scorer(probe, clip, config.max_lag)
        into = ClipScores(clip.key, clip.language, clip.held_out_language)
        mouths = {}
        for s, frames in versions.items():
            mouths[s], feats = scorer.score(frames, into, s)
            features[s].append(feats)
        scores.append(into)
        if len(traces) < 3:
            traces.append(
                {
                    "key": clip.key,
                    "truth": scorer.mouth.tolist(),
                    **{s: m.tolist() for s, m in mouths.items()},
                }
            )
        if not strip:
            at = np.linspace(1, n - 1, 8).astype(int)
            strip = {s: versions[s][at] for s in ("truth", "ceiling", "generated")}
        teacher["generated"].append(teacher_forced_frames(pipe, clip.frames, clip.clip, seed=config.seed))
        for s in ("ceiling", "floor", "truth"):
            teacher[s].append(versions[s][1:])
        bar.update()
    assert first is not None
    truth_frames = np.concatenate(teacher["truth"])
    teacher_forced = {
        s: image_quality(np.concatenate(teacher[s]), truth_frames) for s in ("generated", "ceiling", "floor")
    }
    real = np.concatenate(features["truth"])
    mu, sd = real.mean(axis=0), real.std(axis=0) + 1e-6

    def distance(feats: np.ndarray) -> float:  # on features standardised by the true frames' statistics
        return frechet_distance((feats - mu) / sd, (real - mu) / sd)

    frechet = {s: distance(np.concatenate(features[s])) for s in ("generated", "ceiling", "floor")}
    for kind, strength in DEGRADATIONS:
        degraded = degrade(truth_frames, kind, strength, config.seed)
        frechet[f"true frames, {kind} {strength:g}"] = distance(
            frame_features(probe.embed(degraded), degraded)
        )
    dialogues = measure_duplex(
        pipe, probe, config.dialogue_languages, config.dialogue_seconds, config.max_lag, session, bar
    )
    drift = []
    for seconds in config.drift_seconds:
        bar.set_postfix_str(f"{seconds:g} s session")
        drift.append(drift_run(pipe, probe, first, seconds, session))
        bar.update()
    bar.close()
    return Report(model_name, config, scores, teacher_forced, frechet, drift, traces, strip, dialogues)


def drift_run(
    pipe: Pipeline, probe: PixelProbe, clip: EvalClip, seconds: float, session: SessionConfig
) -> DriftRun:
    """A free-running session of ``seconds`` driven by the clip's inputs on a loop."""
    fps = pipe.model.config.conditions.fps
    n = int(seconds * fps)
    frames, timings = stream_clip(pipe, clip.clip, clip.frames[0], n, session)
    static = static_distance(frames, clip.frames[0], static_mask(clip.frames))
    per_second = [float(static[i : i + fps].mean()) for i in range(0, n - fps + 1, fps)]
    mouth = probe.read(frames)[0][:, 0].astype(np.float64)
    truth = looped(clip.clip.truth["face"][:, FACE_STATE_FIELDS.index("mouth_open")].astype(np.float64), n)
    part = min(max(n // 5, 2 * fps), 60 * fps)
    first, last = slice(1, part), slice(n - part, n)

    def sync(sl: slice) -> float:
        return lagged_correlations(mouth[sl], truth[sl], 0)[0]

    compute = [1000 * t.compute for t in timings]
    stages = {k: 1000 * float(np.mean([t.seconds[k] for t in timings])) for k in timings[0].seconds}
    return DriftRun(
        seconds, per_second, part / fps, float(static[first].mean()), float(static[last].mean()),
        sync(first), sync(last), compute, stages,
    )  # fmt: skip
