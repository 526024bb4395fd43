"""One clip of the synthetic world: plan (ClipSpec) -> speech -> behaviour -> frames + ground truth."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from avatarlm.data.behaviour import BehaviourInputs, behaviour_track, head_turn_track
from avatarlm.data.conversation import Conversation, dialogue, frame_energy, monologue, nod_times
from avatarlm.data.face import FACE_STATE_FIELDS, FaceState
from avatarlm.data.identity import Identity
from avatarlm.data.instructions import INSTRUCTION_NAMES, TimedInstruction, active_matrix, sample_instructions
from avatarlm.data.render import KEYPOINT_NAMES, Renderer
from avatarlm.data.shards import Sample
from avatarlm.data.speech.augment import augment
from avatarlm.data.speech.phrases import backchannels, sample_text
from avatarlm.data.speech.visemes import mouth_track
from avatarlm.data.speech.voices import Voice, sample_voice, speak

FPS = 25.0
FORMAT_VERSION = 1


@dataclass(frozen=True)
class ClipSpec:
    """Everything that determines a clip; the same spec always gives the same clip."""

    key: str
    seed: int
    kind: str  # "monologue" or "dialogue"
    language: str
    identity_seed: int
    partner_identity_seed: int
    duration: float  # target seconds (the clip ends after its last utterance)
    height: int = 128
    width: int = 128
    fps: float = FPS
    split: str = "train"
    held_out_voice: bool = False
    head_turns: bool = False  # deliberate head turns of their own (behaviour.head_turn_track)

    def __post_init__(self) -> None:
        if self.kind not in ("monologue", "dialogue"):
            raise ValueError(f"clip kind must be 'monologue' or 'dialogue', got {self.kind!r}")


@dataclass
class RoleTruth:
    """Per-frame ground truth of one avatar."""

    face: np.ndarray  # (n, len(FACE_STATE_FIELDS)) float32
    keypoints: np.ndarray  # (n, len(KEYPOINT_NAMES), 2) float32, normalised to the frame
    speaking: np.ndarray  # (n,) uint8
    listening: np.ndarray  # (n,) uint8: the partner speaks and this avatar does not


@dataclass
class Clip:
    spec: ClipSpec
    frames: np.ndarray  # (n, H, W, 3) uint8
    audio: np.ndarray  # (2, samples) float32: self, partner
    truth: RoleTruth
    instructions: np.ndarray  # (n, len(INSTRUCTION_NAMES)) uint8
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n_frames(self) -> int:
        return len(self.frames)


def plan_speech(spec: ClipSpec, rng: np.random.Generator) -> tuple[Conversation, list[Voice]]:
    voices = [sample_voice(spec.language, rng, held_out=spec.held_out_voice)]
    voices.append(sample_voice(spec.language, rng, held_out=spec.held_out_voice))
    aug_rng = np.random.default_rng(rng.integers(2**63))

    def speaker(voice: Voice):  # text -> utterance with this voice, sometimes augmented
        def say(text: str):
            utt = speak(voice, text)
            return (
                augment(utt, aug_rng, strength=float(aug_rng.uniform(0.3, 1.0)))
                if aug_rng.random() < 0.6
                else utt
            )

        return say

    def text() -> str:
        return sample_text(spec.language, rng, approx_seconds=float(rng.uniform(1.2, 4.0)))

    def backchannel() -> str:
        options = backchannels(spec.language)
        return options[int(rng.integers(len(options)))]

    if spec.kind == "monologue":
        return monologue(rng, speaker(voices[0]), text, spec.duration), voices[:1]
    return dialogue(rng, (speaker(voices[0]), speaker(voices[1])), text, backchannel, spec.duration), voices


def role_behaviour(
    conv: Conversation,
    who: int,
    n_frames: int,
    fps: float,
    instructions: list[TimedInstruction],
    rng: np.random.Generator,
    partner_gaze_x: float,
    head_turns: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Face track, speaking and partner-speaking flags of avatar `who` in the conversation; ``head_turns``
    (n, 3) degrees are added to its head pose."""
    mouth = np.zeros((n_frames, 3), dtype=np.float32)
    for p in conv.streams[who]:
        mouth += mouth_track(p.utterance.phonemes, n_frames, fps=fps, offset_s=p.start)
    speaking = conv.speaking(who, n_frames, fps)
    partner = conv.speaking(1 - who, n_frames, fps)
    inputs = BehaviourInputs(
        mouth=mouth,
        self_speaking=speaking,
        partner_speaking=partner,
        self_energy=frame_energy(conv.audio(who), n_frames, fps),
        backchannels=nod_times(conv, who, rng),
        instructions=instructions,
        partner_gaze_x=partner_gaze_x,
        head_turns=head_turns,
    )
    return behaviour_track(inputs, fps, rng), speaking, partner


def render_role(renderer: Renderer, face: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    states = [FaceState.from_vector(v) for v in face]
    frames = np.stack([renderer.render(s) for s in states])
    keypoints = np.stack([renderer.keypoints(s) for s in states]).astype(np.float32)
    return frames, keypoints


def make_clip(spec: ClipSpec, instructions: list[TimedInstruction] | None = None) -> Clip:
    """Render the clip of ``spec``; ``instructions`` replace the sampled ones (evaluation clips that must
    hold a given instruction), leaving everything else as the spec makes it."""
    rng = np.random.default_rng(spec.seed)
    conv, voices = plan_speech(spec, rng)
    n = int(round(conv.duration * spec.fps))
    sampled = sample_instructions(rng, conv.duration)
    instructions = sampled if instructions is None else instructions
    gaze = 0.0 if spec.kind == "monologue" else float(rng.choice([-0.5, 0.5]))
    # Turns draw from a generator of their own, so a clip without them is the clip it always was.
    turns = (
        head_turn_track(np.random.default_rng([spec.seed, 0x7E7E]), n, spec.fps) if spec.head_turns else None
    )
    face, speaking, partner = role_behaviour(conv, 0, n, spec.fps, instructions, rng, gaze, turns)
    frames, keypoints = render_role(
        Renderer(Identity.from_seed(spec.identity_seed), spec.height, spec.width), face
    )
    truth = RoleTruth(face, keypoints, speaking.astype(np.uint8), (partner & ~speaking).astype(np.uint8))
    audio = np.stack([conv.audio(0), conv.audio(1)])
    meta = {
        "format_version": FORMAT_VERSION,
        "spec": asdict(spec),
        "n_frames": n,
        "duration": conv.duration,
        "voices": [v.as_dict() for v in voices],
        "face_fields": list(FACE_STATE_FIELDS),
        "keypoint_names": list(KEYPOINT_NAMES),
        "instruction_names": list(INSTRUCTION_NAMES),
        "instructions": [asdict(i) for i in instructions],
        "utterances": [
            [
                {
                    "start": round(p.start, 4),
                    "end": round(p.end, 4),
                    "text": p.utterance.text,
                    "engine": p.utterance.engine,
                    "voice": p.utterance.voice,
                    "backchannel": p.backchannel,
                    "phonemes": [
                        [ph.symbol, round(ph.start, 4), round(ph.end, 4)] for ph in p.utterance.phonemes
                    ],
                }
                for p in stream
            ]
            for stream in conv.streams
        ],
        "generator": "avatarlm synthetic world",
    }
    return Clip(spec, frames, audio, truth, active_matrix(instructions, n, spec.fps), meta)


def to_sample(clip: Clip) -> Sample:
    truth = {
        "face": clip.truth.face,
        "keypoints": clip.truth.keypoints,
        "speaking": clip.truth.speaking,
        "listening": clip.truth.listening,
        "instructions": clip.instructions,
    }
    return Sample(
        clip.spec.key, clip.meta, clip.frames, {"self": clip.audio[0], "partner": clip.audio[1]}, truth
    )


def from_sample(sample: Sample) -> Clip:
    t = sample.truth
    truth = RoleTruth(t["face"], t["keypoints"], t["speaking"], t["listening"])
    audio = np.stack([sample.audio["self"], sample.audio["partner"]])
    spec = ClipSpec(**sample.meta["spec"])
    return Clip(spec, sample.frames, audio, truth, t["instructions"], sample.meta)


def summary(clip: Clip) -> dict[str, Any]:
    """What the shard sidecar and the index record about a clip."""
    s = clip.spec
    return {
        "kind": s.kind,
        "language": s.language,
        "identity_seed": s.identity_seed,
        "duration": round(clip.meta["duration"], 3),
        "voices": [v["engine"] + ":" + v["name"] for v in clip.meta["voices"]],
    }
