"""Speech timelines: a monologue, or a two-party dialogue with turn-taking, pauses, overlaps and
backchannels."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from avatarlm.data.speech.utterance import SAMPLE_RATE, Utterance


@dataclass
class Placed:
    """An utterance placed on a stream's timeline."""

    start: float
    utterance: Utterance
    backchannel: bool = False

    @property
    def end(self) -> float:
        return self.start + self.utterance.duration


@dataclass
class Conversation:
    """Two audio streams: stream 0 is the rendered avatar ("self"), stream 1 its partner (silent in a
    monologue)."""

    duration: float
    streams: tuple[list[Placed], list[Placed]] = field(default_factory=lambda: ([], []))

    def audio(self, who: int) -> np.ndarray:
        out = np.zeros(int(round(self.duration * SAMPLE_RATE)), dtype=np.float32)
        for p in self.streams[who]:
            i = int(round(p.start * SAMPLE_RATE))
            seg = p.utterance.audio[: max(0, len(out) - i)]
            out[i : i + len(seg)] += seg
        return np.clip(out, -1.0, 1.0)

    def speaking(self, who: int, n_frames: int, fps: float) -> np.ndarray:
        t = (np.arange(n_frames) + 0.5) / fps
        out = np.zeros(n_frames, dtype=bool)
        for p in self.streams[who]:
            out |= (t >= p.start) & (t < p.end)
        return out


Speaker = Callable[[str], Utterance]  # text -> utterance (voice and augmentation already chosen)


def monologue(
    rng: np.random.Generator, speak: Speaker, text: Callable[[], str], duration: float
) -> Conversation:
    """One speaker: utterances separated by 0.2-1.2 s pauses until about `duration` seconds are filled."""
    conv = Conversation(duration)
    t = float(rng.uniform(0.2, 0.8))
    while t < duration - 1.0:
        utt = speak(text())
        if conv.streams[0] and t + utt.duration > duration:
            break
        conv.streams[0].append(Placed(t, utt))
        t += utt.duration + float(rng.uniform(0.2, 1.2))
    conv.duration = max(duration, conv.streams[0][-1].end + 0.3) if conv.streams[0] else duration
    return conv


def dialogue(
    rng: np.random.Generator,
    speakers: tuple[Speaker, Speaker],
    text: Callable[[], str],
    backchannel_text: Callable[[], str],
    duration: float,
) -> Conversation:
    """Turns alternate between the two speakers with gaps or overlaps (-0.4..1.2 s); during long turns the
    listener sometimes backchannels ("mm-hmm")."""
    conv = Conversation(duration)
    who = int(rng.integers(2))
    t = float(rng.uniform(0.2, 0.8))
    while t < duration - 1.0:
        turn_start = t
        for _ in range(int(rng.integers(1, 3))):
            utt = speakers[who](text())
            if conv.streams[who] and t + utt.duration > duration:
                break
            conv.streams[who].append(Placed(t, utt))
            t += utt.duration + float(rng.uniform(0.15, 0.5))
        turn_end = t
        listener = 1 - who
        if turn_end - turn_start > 2.0 and rng.random() < 0.6:
            bc = speakers[listener](backchannel_text())
            at = float(rng.uniform(turn_start + 0.8, max(turn_start + 0.9, turn_end - bc.duration - 0.2)))
            conv.streams[listener].append(Placed(at, bc, backchannel=True))
        t = max(turn_start + 0.5, turn_end + float(np.clip(rng.normal(0.25, 0.35), -0.4, 1.2)))
        who = listener
    for s in conv.streams:
        s.sort(key=lambda p: p.start)
    ends = [p.end for s in conv.streams for p in s]
    conv.duration = max(duration, max(ends) + 0.3) if ends else duration
    return conv


def nod_times(conv: Conversation, who: int, rng: np.random.Generator) -> list[float]:
    """When the avatar `who` nods: at its own backchannels and sometimes when the partner pauses."""
    own = [p.start for p in conv.streams[who] if p.backchannel]
    pauses = [p.end for p in conv.streams[1 - who] if not p.backchannel and rng.random() < 0.4]
    return sorted(own + pauses)


def frame_energy(audio: np.ndarray, n_frames: int, fps: float) -> np.ndarray:
    """Loudness per video frame in [0, 1] (RMS in dB, -60 dB -> 0, 0 dB -> 1)."""
    hop = SAMPLE_RATE / fps
    out = np.zeros(n_frames, dtype=np.float32)
    for i in range(n_frames):
        seg = audio[int(i * hop) : int((i + 1) * hop)]
        if len(seg):
            out[i] = 20 * np.log10(np.sqrt(np.mean(seg.astype(np.float64) ** 2)) + 1e-6)
    return np.clip((out + 60.0) / 60.0, 0.0, 1.0)
