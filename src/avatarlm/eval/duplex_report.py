"""The report's duplex section: dialogues streamed through a duplex model with both voices pushed.

Each dialogue (``eval_clips.dialogue_clips``: unseen faces, held-out voices, no instruction) is scored from
pixels by the pixel probe in the report's four versions: the model's frames from a streaming session fed the
avatar's and the partner's voice and no pose (``generated``), the autoencoder's reconstruction of the true
frames (``ceiling``), the first true frame held still (``floor``) and the true frames (``truth``). The
measures (``duplex_metrics.py``): the mouth closed in partner-only frames, the mouth trace against the true
opening in self-speech frames, and two listening cues — the head's turn towards the partner and its pitch
(nods) against the truth while listening. A mono model cannot hear the partner, so it is not measured.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from avatarlm.data.face import FACE_STATE_FIELDS
from avatarlm.eval.ae_quality import reconstruct_clip
from avatarlm.eval.duplex_metrics import (
    CLOSED_BOUND,
    MOUTH_CLOSED_BELOW,
    SELF_SPEECH_R_BOUND,
    closed_mouth_frames,
    masked_lagged_correlations,
    partner_side,
    yaw_toward_partner,
)
from avatarlm.eval.eval_clips import EvalClip, dialogue_clips
from avatarlm.eval.eval_generate import stream_clip
from avatarlm.eval.lipsync import best_lag
from avatarlm.eval.pixel_probe import PixelProbe, probed_pose, unscale
from avatarlm.pipeline.folder import Pipeline
from avatarlm.pipeline.session import SessionConfig

SOURCES = ("generated", "ceiling", "floor", "truth")
MONO_SKIPPED = (
    "skipped: this model has one audio stream, so it cannot hear the partner — a mono model has no "
    "listening to measure (train with two audio streams for duplex)"
)


@dataclass
class DialogueScores:
    """One dialogue, per source: closed-mouth counts over the partner-only frames, lagged correlations of
    the probed mouth with the true opening over the self-speech frames, the head's turn towards the partner
    while listening (deg) and the probed pitch's correlation with the true pitch while listening."""

    key: str
    language: str
    held_out_language: bool
    partner_only_frames: int
    self_speech_frames: int
    closed: dict[str, tuple[int, int]] = field(default_factory=dict)
    self_speech_mouth: dict[str, dict[int, float]] = field(default_factory=dict)
    yaw_toward_partner: dict[str, float] = field(default_factory=dict)
    listening_pitch: dict[str, float] = field(default_factory=dict)


@dataclass
class DuplexResult:
    """The dialogues' scores, or (``skipped``) why there are none."""

    skipped: str = ""
    clips: list[DialogueScores] = field(default_factory=list)

    def closed_fraction(self, source: str) -> float:
        closed, frames = np.sum([c.closed[source] for c in self.clips], axis=0)
        return float(closed / frames)

    def self_speech_curve(self, source: str) -> dict[int, float]:
        curves = [c.self_speech_mouth[source] for c in self.clips]
        return {lag: float(np.mean([c[lag] for c in curves])) for lag in curves[0]}

    def mean(self, measure: str, source: str) -> float:
        return float(np.mean([getattr(c, measure)[source] for c in self.clips]))

    def bounds_met(self, source: str = "generated") -> dict[str, bool]:
        return {
            "mouth closed in partner-only frames": self.closed_fraction(source) >= CLOSED_BOUND,
            "mouth r in self-speech": self.self_speech_curve(source)[0] >= SELF_SPEECH_R_BOUND,
        }


class DialogueScorer:
    """Reads frames with the pixel probe and scores them against one dialogue's truth (frames 1..N-1, as
    the monologue scorer: frame 0 is the session's reference)."""

    def __init__(self, probe: PixelProbe, clip: EvalClip, max_lag: int) -> None:
        truth, face = clip.clip.truth, clip.clip.truth["face"][1:].astype(np.float64)
        self.probe, self.max_lag = probe, max_lag
        self.speaking = truth["speaking"][1:].astype(bool)
        self.listening = truth["listening"][1:].astype(bool)  # the partner speaks, the avatar does not
        self.mouth = face[:, FACE_STATE_FIELDS.index("mouth_open")]
        self.pitch = face[:, FACE_STATE_FIELDS.index("pitch")]
        self.side = partner_side(face[:, FACE_STATE_FIELDS.index("gaze_x")], self.listening)
        self.scores = DialogueScores(
            clip.key,
            clip.language,
            clip.held_out_language,
            int(self.listening.sum()),
            int(self.speaking.sum()),
        )

    def score(self, frames: np.ndarray, source: str) -> None:
        controls = self.probe.read(frames[1:])[0]
        mouth = unscale(controls[:, 0], "mouth_open").astype(np.float64)
        yaw, pitch = probed_pose(controls).astype(np.float64).T[:2]
        s = self.scores
        s.closed[source] = closed_mouth_frames(mouth, self.listening)
        s.self_speech_mouth[source] = masked_lagged_correlations(
            mouth, self.mouth, self.speaking, self.max_lag
        )
        s.yaw_toward_partner[source] = yaw_toward_partner(yaw, self.listening, self.side)
        s.listening_pitch[source] = masked_lagged_correlations(pitch, self.pitch, self.listening, 0)[0]


def measure_duplex(
    pipe: Pipeline,
    probe: PixelProbe,
    languages: tuple[str, ...],
    seconds: float,
    max_lag: int,
    session: SessionConfig,
    bar: Any = None,
) -> DuplexResult:
    """Score one dialogue per language; a model with one audio stream is skipped (``DuplexResult.skipped``).
    ``bar`` (a tqdm bar) is advanced once per dialogue."""
    if pipe.model.config.conditions.audio_streams != 2:
        return DuplexResult(skipped=MONO_SKIPPED)
    if not languages:
        return DuplexResult(skipped="skipped: no dialogue languages were asked for")
    size = pipe.autoencoder.config.image_height
    result = DuplexResult()
    for clip in dialogue_clips(languages, 1, seconds, size):
        if bar is not None:
            bar.set_postfix_str(clip.key)
        n = clip.frames.shape[0]
        generated = stream_clip(pipe, clip.clip, clip.frames[0], n, session, push_pose=False)
        versions = {
            "generated": generated[0],
            "ceiling": reconstruct_clip(pipe.autoencoder, clip.frames, True, clip.frames[0]),
            "floor": np.repeat(clip.frames[:1], n, axis=0),
            "truth": clip.frames,
        }
        scorer = DialogueScorer(probe, clip, max_lag)
        for source, frames in versions.items():
            scorer.score(frames, source)
        result.clips.append(scorer.scores)
        if bar is not None:
            bar.update()
    return result


def duplex_rows(result: DuplexResult) -> dict[str, tuple[dict[str, str], str]]:
    """measure -> (source -> formatted figure, bound) of the duplex table (empty when skipped)."""
    if not result.clips:
        return {}
    speech = {}
    for s in SOURCES:
        curve = result.self_speech_curve(s)
        lag, r = best_lag(curve)
        speech[s] = f"{curve[0]:+.2f} / {r:+.2f} ({lag:+d})"
    return {
        "mouth closed in partner-only frames": (
            {s: f"{result.closed_fraction(s):.2f}" for s in SOURCES},
            f"≥ {CLOSED_BOUND:.2f}",
        ),
        "mouth r with the true opening in self-speech: offset 0 / best (offset)": (
            speech,
            f"≥ {SELF_SPEECH_R_BOUND:.1f} at offset 0",
        ),
        "head yaw towards the partner while listening, deg": (
            {s: f"{result.mean('yaw_toward_partner', s):+.1f}" for s in SOURCES},
            "—",
        ),
        "head pitch r with the truth while listening (nods)": (
            {s: f"{result.mean('listening_pitch', s):+.2f}" for s in SOURCES},
            "—",
        ),
    }


def duplex_headline(result: DuplexResult) -> dict[str, dict[str, str]]:
    """The bounded duplex rows for the report's headline (none when the section was skipped)."""
    return {
        f"duplex: {name} (bound {bound})": cells
        for name, (cells, bound) in duplex_rows(result).items()
        if bound != "—"
    }


def duplex_markdown(result: DuplexResult, headers: tuple[str, ...]) -> list[str]:
    """The report's duplex section: the table with its bounds, or why it was skipped."""
    lines = ["", "## Duplex: listening and speaking in dialogues", ""]
    if not result.clips:
        return [*lines, result.skipped[0].upper() + result.skipped[1:] + "."]
    partner = sum(c.partner_only_frames for c in result.clips)
    speech = sum(c.self_speech_frames for c in result.clips)
    lines += [
        f"{len(result.clips)} held-out dialogue{'' if len(result.clips) == 1 else 's'} "
        f"({', '.join(c.language for c in result.clips)}; "
        f"{partner} partner-only frames, {speech} self-speech frames), streamed with both voices pushed "
        "(the avatar's and the partner's) and no pose or instruction, so the head's listening motion is the "
        f"model's own. A mouth is closed when its probed opening is below {MOUTH_CLOSED_BELOW:g} (mouth_open: "
        "0 closed lips, 1 wide open; the true listener holds 0). The still floor keeps its mouth closed and "
        "meets the closed-mouth bound trivially: the two bounds mean something only together. The listening "
        "cues have no bound; read them against the probe on true frames: the true listener turns its head "
        "about 6° towards the partner (on top of idle motion) and nods at the partner's pauses (pitch r over "
        "a few seconds of listening per dialogue, so chance correlations are wide in a single dialogue).",
        "",
        "| measure | " + " | ".join(headers) + " | bound |",
        "|---" * (len(headers) + 2) + "|",
    ]
    for name, (cells, bound) in duplex_rows(result).items():
        lines.append(f"| {name} | " + " | ".join(cells[s] for s in SOURCES) + f" | {bound} |")
    met = "; ".join(f"{k}: {'yes' if v else 'no'}" for k, v in result.bounds_met().items())
    lines += ["", f"Bounds met by the generated frames: {met}.", "",
              "| dialogue | held out of training | partner-only frames | self-speech frames | generated: closed "
              "/ self-speech r |", "|---|---|---|---|---|"]  # fmt: skip
    for c in result.clips:
        closed, frames = c.closed["generated"]
        lines.append(
            f"| {c.key} | {'yes' if c.held_out_language else 'no'} | {c.partner_only_frames} | "
            f"{c.self_speech_frames} | {closed / frames:.2f} / {c.self_speech_mouth['generated'][0]:+.2f} |"
        )
    return lines
