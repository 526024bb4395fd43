"""Does the head follow a pose given from outside? Free-running sessions of head-turn clips, read by the probe.

The report's clips move the head as speech does (small, smooth, half predictable from the past frames), so
a model that ignores the pose loses little there. Here every clip is a monologue of an unseen face whose
head also turns to directions of its own now and then (``ClipSpec.head_turns``: up to 22 degrees of yaw,
at moments no audio or past frame announces): only the pose condition says where the head goes. Each clip
is streamed twice from its first frame, with its audio both times: once pushing its pose every frame
(``with pose``) and once without (``no pose``); the pixel probe reads the head pose of every frame of both,
of the autoencoder's reconstruction (``ceiling``) and of the first frame held still (``floor``).

Measures per source: the mean absolute yaw / pitch / roll error (degrees) against the true pose, and per
angle the correlation of the probed with the true angle inside each clip, averaged over the clips (how much
of the turning it shows; 0 where the probed angle does not move, e.g. the still floor).

One step ahead: every frame is also predicted from the true history (teacher-forced, as in training), with
and without the pose; per angle, the probed change from the true frame before (probe(predicted f_t) -
probe(true f_{t-1})) is correlated with the true change of pose, over all frames. This tells a model that
does not move the head at all apart from one whose free-running head loses its way; the AE reconstruction's
one-step change is its ceiling (the probe's noise bounds it, most for yaw, whose steps are small).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from avatarlm.data.clip import FPS, make_clip, to_sample
from avatarlm.eval.ae_quality import reconstruct_clip
from avatarlm.eval.clip_metrics import pose_error
from avatarlm.eval.eval_clips import EvalClip, clip_spec
from avatarlm.eval.eval_generate import stream_clip, teacher_forced_frames
from avatarlm.eval.pixel_probe import PixelProbe, probed_pose
from avatarlm.io import atomic_write_json
from avatarlm.pipeline.folder import Pipeline
from avatarlm.pipeline.session import SessionConfig
from avatarlm.trainer.ar_data import clip_from_sample

POSE_LANGUAGES = ("en", "es", "zh", "el")
SOURCES = ("with pose", "no pose", "ceiling", "floor")
STEP_SOURCES = ("teacher-forced, with pose", "teacher-forced, no pose", "ceiling")


def head_turn_clips(languages: tuple[str, ...] | list[str], seconds: float, size: int) -> Iterator[EvalClip]:
    """One head-turn monologue per language: an unseen face, a held-out voice, no instruction. Clip of a
    language is a pure function of (language, seconds, size), and none is a clip of the report."""
    for language in languages:
        base = clip_spec(language, 0, seconds, size)
        seed = int.from_bytes(hashlib.sha256(f"eval-turns:{language}".encode()).digest()[:4], "little")
        spec = replace(base, key=f"eval-turns-{language}", seed=seed, head_turns=True)
        clip = make_clip(spec, [])
        yield EvalClip(spec.key, language, clip.frames, clip_from_sample(to_sample(clip)))


@dataclass
class PoseFollowing:
    """Per source, over the frames 1.. of every clip: yaw / pitch / roll MAE in degrees and yaw / pitch /
    roll correlation of probed with true angle within a clip, averaged over the clips; ``traces``: the first
    clip's true and probed yaw and pitch per source (``"truth"``, ``"truth pitch"``, ``source``,
    ``"source pitch"``); ``step_r``: per source of one-step frames, the yaw / pitch / roll correlation of
    the probed change from the true frame before with the true change; ``turn``: per source, how much of
    the true motion the head makes, the slope of the probed angle on the true one within a clip (1: as far
    as the truth, 0: not at all), averaged over the clips."""

    clips: list[str]
    frames: int
    anchor: float | None
    mae: dict[str, list[float]]
    r: dict[str, list[float]]
    traces: dict[str, list[float]]
    step_r: dict[str, list[float]]
    turn: dict[str, list[float]]


def measure_pose_following(
    pipe: Pipeline,
    probe: PixelProbe,
    languages: tuple[str, ...] | list[str] = POSE_LANGUAGES,
    seconds: float = 10.0,
    session: SessionConfig | None = None,
    progress: bool = True,
) -> PoseFollowing:
    if "pose" not in pipe.model.config.conditions.modalities:
        raise ValueError("this model takes no pose condition: there is no pose to follow")
    if seconds < 2.0:
        raise ValueError(f"clips need at least 2 s, got {seconds}")
    size = pipe.autoencoder.config.image_height
    probed: dict[str, list[np.ndarray]] = {s: [] for s in SOURCES}
    steps: dict[str, list[np.ndarray]] = {s: [] for s in STEP_SOURCES}
    truth, change, keys = [], [], []
    for clip in tqdm(list(head_turn_clips(languages, seconds, size)), desc="pose", disable=not progress):
        n, reference = clip.frames.shape[0], clip.frames[0]
        versions = {
            "with pose": stream_clip(pipe, clip.clip, reference, n, session)[0],
            "no pose": stream_clip(pipe, clip.clip, reference, n, session, push_pose=False)[0],
            "ceiling": reconstruct_clip(pipe.autoencoder, clip.frames, True, reference),
            "floor": np.repeat(clip.frames[:1], n, axis=0),
        }
        for source, frames in versions.items():
            probed[source].append(probed_pose(probe.look(frames[1:])[0]))
        before = probed_pose(probe.look(clip.frames[:-1])[0])  # the true frames f_0 .. f_{N-2}
        for source, push in zip(STEP_SOURCES[:2], (True, False), strict=True):
            predicted = teacher_forced_frames(pipe, clip.frames, clip.clip, push_pose=push)
            steps[source].append(probed_pose(probe.look(predicted)[0]) - before)
        steps["ceiling"].append(probed["ceiling"][-1] - before)
        truth.append(clip.clip.pose[1:].astype(np.float64))
        change.append(np.diff(clip.clip.pose.astype(np.float64), axis=0))
        keys.append(clip.key)
    true = np.concatenate(truth)
    step_r = {s: _correlations(np.concatenate(steps[s]), np.concatenate(change)) for s in STEP_SOURCES}
    mae, r, turn = {}, {}, {}
    for source in SOURCES:
        mae[source] = pose_error(np.concatenate(probed[source]), true).tolist()
        pairs = list(zip(probed[source], truth, strict=True))
        r[source] = np.mean([_correlations(g, t) for g, t in pairs], 0).tolist()
        turn[source] = np.mean([_slopes(g, t) for g, t in pairs], 0).tolist()
    traces = {"truth": truth[0][:, 0].tolist(), "truth pitch": truth[0][:, 1].tolist()}
    for s in SOURCES:
        traces[s], traces[f"{s} pitch"] = probed[s][0][:, 0].tolist(), probed[s][0][:, 1].tolist()
    anchor = session.anchor if session is not None else None
    return PoseFollowing(keys, len(true), anchor, mae, r, traces, step_r, turn)


def _slopes(got: np.ndarray, true: np.ndarray) -> list[float]:
    """Least-squares slope of each probed angle (column) on the true one; 0 where the truth does not move."""
    centred = true - true.mean(0)
    var = (centred**2).sum(0)
    cov = (centred * (got - got.mean(0))).sum(0)
    return [float(c / v) if v > 1e-6 * len(true) else 0.0 for c, v in zip(cov, var, strict=True)]


def _correlations(got: np.ndarray, true: np.ndarray) -> list[float]:
    """Pearson r of each angle (column); 0 where either side does not move."""
    out = []
    for i in range(got.shape[1]):
        moving = got[:, i].std() > 1e-3 and true[:, i].std() > 1e-3
        out.append(float(np.corrcoef(got[:, i], true[:, i])[0, 1]) if moving else 0.0)
    return out


def _angles(values: list[float], fmt: str = "+.2f") -> str:
    """Yaw / pitch / roll figures as a table cell."""
    return " / ".join(f"{v:{fmt}}" for v in values)


def write_pose_following(result: PoseFollowing, out: str | Path) -> list[Path]:
    """pose.json, pose.md (the table) and pose_traces.png (the first clip's yaw and pitch: truth and each
    source)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(folder / "pose.json", asdict(result))
    rows = [
        "| source | yaw / pitch / roll MAE, deg | yaw / pitch / roll r with the truth (within a clip) "
        "| share of the true motion made (slope within a clip) |",
        "|---|---|---|---|",
        *(
            f"| {s} | {_angles(result.mae[s], '.1f')} | {_angles(result.r[s])} | {_angles(result.turn[s])} |"
            for s in SOURCES
        ),
    ]
    step_rows = [
        "| one step ahead | yaw / pitch / roll r of the change with the true change |",
        "|---|---|",
        *(f"| {s} | {_angles(result.step_r[s])} |" for s in STEP_SOURCES),
    ]
    text = (
        f"Head-turn clips ({', '.join(result.clips)}; {result.frames} frames; session anchor "
        f"{result.anchor}):\n\n" + "\n".join(rows) + "\n\n" + "\n".join(step_rows) + "\n"
    )
    (folder / "pose.md").write_text(text)
    fig, axes = plt.subplots(2, 1, figsize=(9, 5.6), sharex=True)
    t = np.arange(1, len(result.traces["truth"]) + 1) / FPS
    for ax, angle, suffix in zip(axes, ("yaw", "pitch"), ("", " pitch"), strict=True):
        ax.plot(t, result.traces[f"truth{suffix}"], color="black", lw=2, label=f"true {angle}")
        for source, color in zip(("with pose", "no pose", "ceiling"), ("C0", "C3", "C2"), strict=True):
            ax.plot(t, result.traces[f"{source}{suffix}"], color=color, lw=1.2, label=f"probed: {source}")
        ax.set_ylabel(f"{angle}, deg")
        ax.legend(loc="upper right", fontsize=8, ncol=2)
    axes[0].set_title(f"{result.clips[0]}: the head given a pose that turns on its own")
    axes[1].set_xlabel("s")
    fig.tight_layout()
    fig.savefig(folder / "pose_traces.png", dpi=110)
    plt.close(fig)
    return [folder / "pose.json", folder / "pose.md", folder / "pose_traces.png"]
