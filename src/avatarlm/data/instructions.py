"""Timed text instructions ("smile", "nod", ...) and the behaviour each one triggers over its span."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Instruction text -> short name. The text is what a user types; the name is what ground truth stores.
INSTRUCTIONS: dict[str, str] = {
    "smile": "smile",
    "nod": "nod",
    "shake head": "shake_head",
    "look left": "look_left",
    "look right": "look_right",
    "raise eyebrows": "raise_eyebrows",
    "look surprised": "look_surprised",
    "look sad": "look_sad",
}
INSTRUCTION_NAMES: tuple[str, ...] = tuple(INSTRUCTIONS.values())


@dataclass(frozen=True)
class TimedInstruction:
    text: str
    start: float  # seconds
    end: float

    def __post_init__(self) -> None:
        if self.text not in INSTRUCTIONS:
            raise ValueError(f"unknown instruction {self.text!r}; known: {', '.join(INSTRUCTIONS)}")
        if not self.end > self.start >= 0:
            raise ValueError(
                f"instruction {self.text!r} needs 0 <= start < end, got {self.start}..{self.end}"
            )

    @property
    def name(self) -> str:
        return INSTRUCTIONS[self.text]


def sample_instructions(
    rng: np.random.Generator, duration: float, max_count: int = 3
) -> list[TimedInstruction]:
    """A few non-overlapping instructions of 1-3 s each, spread over the clip."""
    count = int(rng.integers(0, max_count + 1))
    out: list[TimedInstruction] = []
    texts = list(INSTRUCTIONS)
    for _ in range(count):
        length = float(rng.uniform(1.0, 3.0))
        if duration <= length + 0.5:
            break
        start = float(rng.uniform(0.2, duration - length))
        if any(start < o.end + 0.3 and o.start < start + length + 0.3 for o in out):
            continue
        out.append(
            TimedInstruction(texts[int(rng.integers(len(texts)))], round(start, 3), round(start + length, 3))
        )
    return sorted(out, key=lambda i: i.start)


def active_matrix(instructions: list[TimedInstruction], n_frames: int, fps: float) -> np.ndarray:
    """(n_frames, len(INSTRUCTION_NAMES)) uint8: 1 where the instruction is active at the frame's time."""
    t = np.arange(n_frames) / fps
    out = np.zeros((n_frames, len(INSTRUCTION_NAMES)), dtype=np.uint8)
    for ins in instructions:
        out[(t >= ins.start) & (t < ins.end), INSTRUCTION_NAMES.index(ins.name)] = 1
    return out
