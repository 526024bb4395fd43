"""Per-frame behaviour of one avatar: idle motion, blinks, prosody-driven head motion while speaking,
listening behaviour while the partner speaks, and timed instructions. Output is the FaceState track."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avatarlm.data.face import EXPRESSIONS, FACE_STATE_FIELDS
from avatarlm.data.instructions import TimedInstruction

F = {name: i for i, name in enumerate(FACE_STATE_FIELDS)}


@dataclass
class BehaviourInputs:
    """What drives one avatar's behaviour, all sampled at the video frame rate."""

    mouth: np.ndarray  # (n, 3) open, width, round from the viseme track of the avatar's own speech
    self_speaking: np.ndarray  # (n,) bool
    partner_speaking: np.ndarray  # (n,) bool
    self_energy: np.ndarray  # (n,) loudness of own speech in [0, 1]
    backchannels: list[float]  # times (s) of the avatar's own backchannels or of partner pauses worth a nod
    instructions: list[TimedInstruction]
    partner_gaze_x: float = 0.0  # where the partner sits, as gaze_x; 0 = the camera (monologue)
    head_turns: np.ndarray | None = None  # (n, 3) yaw/pitch/roll degrees added to the head (head_turn_track)


def smooth_noise(rng: np.random.Generator, n: int, fps: float, seconds: float) -> np.ndarray:
    """Unit-variance noise low-passed with a gaussian of the given width in seconds."""
    width = max(1.0, seconds * fps)
    half = int(3 * width)
    kernel = np.exp(-0.5 * (np.arange(-half, half + 1) / width) ** 2)
    white = rng.standard_normal(n + 2 * half)
    out = np.convolve(white, kernel / kernel.sum(), mode="valid")[:n]
    return (out / (out.std() + 1e-8)).astype(np.float32)


def span_envelope(t: np.ndarray, start: float, end: float, ramp: float = 0.25) -> np.ndarray:
    """0 outside [start, end], 1 inside, with smooth ramps of `ramp` seconds at both ends."""
    up = np.clip((t - start) / ramp, 0, 1)
    down = np.clip((end - t) / ramp, 0, 1)
    env = np.minimum(up, down)
    return env * env * (3 - 2 * env)


def blink_track(rng: np.random.Generator, n: int, fps: float) -> np.ndarray:
    """Blinks as a renewal process (mean gap ~3.5 s), each ~200 ms with a fast close and slower reopen."""
    out = np.zeros(n, dtype=np.float32)
    t = float(rng.uniform(0.3, 3.0))
    profile = np.array([0.5, 1.0, 1.0, 0.6, 0.25])
    while t * fps < n:
        i = int(t * fps)
        k = min(len(profile), n - i)
        out[i : i + k] = np.maximum(out[i : i + k], profile[:k])
        t += max(0.8, float(rng.exponential(3.5)))
    return out


def nod(t: np.ndarray, at: float, amplitude: float = 7.0, hz: float = 2.0, cycles: float = 1.0) -> np.ndarray:
    """A nod (head pitch down then up) of `cycles` periods starting at `at`."""
    phase = (t - at) * hz
    inside = (phase >= 0) & (phase < cycles)
    return np.where(inside, -amplitude * np.sin(2 * np.pi * phase), 0.0).astype(np.float32)


# Deliberate head turns: a new head direction every HOLD_MEAN_S seconds on average (at least HOLD_MIN_S, so
# a turn has ended before the next begins), reached in MOVE_S seconds, anywhere inside TURN_RANGE degrees
# (yaw, pitch, roll).
HOLD_MEAN_S, HOLD_MIN_S, MOVE_S = 1.6, 0.7, (0.25, 0.6)
TURN_RANGE = (22.0, 12.0, 10.0)


def head_turn_track(rng: np.random.Generator, n: int, fps: float) -> np.ndarray:
    """(n, 3) float32 yaw/pitch/roll offsets of a head that turns to a new direction now and then, at
    moments and to directions of its own (not the speech's or the past motion's): what only a pose given
    from outside can tell. Each turn eases from the last direction to the next (smoothstep)."""
    out = np.zeros((n, 3), dtype=np.float32)
    t = np.arange(n) / fps
    at, current = 0.0, np.zeros(3, dtype=np.float32)
    while True:
        at += max(HOLD_MIN_S, float(rng.exponential(HOLD_MEAN_S)))
        if at * fps >= n:
            break
        target = (rng.uniform(-1, 1, 3) * TURN_RANGE).astype(np.float32)
        move = float(rng.uniform(*MOVE_S))
        s = np.clip((t - at) / move, 0, 1)[:, None]
        ease = s * s * (3 - 2 * s)
        after = t >= at
        out[after] = (current + ease * (target - current))[after]
        current = target
    return out


def behaviour_track(inputs: BehaviourInputs, fps: float, rng: np.random.Generator) -> np.ndarray:
    """(n, len(FACE_STATE_FIELDS)) float32 face controls for every frame."""
    n = len(inputs.mouth)
    t = np.arange(n) / fps
    out = np.zeros((n, len(FACE_STATE_FIELDS)), dtype=np.float32)
    speaking = inputs.self_speaking.astype(np.float32)
    listening = (inputs.partner_speaking & ~inputs.self_speaking).astype(np.float32)
    expressive = float(rng.uniform(0.6, 1.4))

    # Idle micro-motion, always on; larger and faster while speaking, driven by prosody.
    energy = inputs.self_energy.astype(np.float32)
    emphasis = np.clip(energy - np.convolve(energy, np.ones(13) / 13, mode="same"), 0, None)
    out[:, F["yaw"]] = 3.0 * smooth_noise(rng, n, fps, 1.2) + 4.0 * expressive * speaking * smooth_noise(
        rng, n, fps, 0.5
    )
    out[:, F["pitch"]] = 2.0 * smooth_noise(rng, n, fps, 1.0) - 14.0 * expressive * emphasis * speaking
    out[:, F["roll"]] = 1.5 * smooth_noise(rng, n, fps, 1.5) + 2.0 * expressive * speaking * smooth_noise(
        rng, n, fps, 0.8
    )
    out[:, F["brow_raise"]] = 0.1 * smooth_noise(rng, n, fps, 1.0) + 1.5 * expressive * emphasis * speaking
    out[:, F["blink"]] = blink_track(rng, n, fps)

    # Gaze: at the camera while speaking with brief glances away; at the partner while listening.
    glance = 0.25 * smooth_noise(rng, n, fps, 0.6)
    out[:, F["gaze_x"]] = glance + listening * inputs.partner_gaze_x
    out[:, F["gaze_y"]] = 0.15 * smooth_noise(rng, n, fps, 0.8)
    out[:, F["yaw"]] += listening * 12.0 * inputs.partner_gaze_x
    if inputs.head_turns is not None:
        for i, name in enumerate(("yaw", "pitch", "roll")):
            out[:, F[name]] += inputs.head_turns[:, i]

    # Mouth from the visemes of the avatar's own speech (closed whenever it is silent).
    out[:, F["mouth_open"]] = inputs.mouth[:, 0]
    out[:, F["mouth_width"]] = inputs.mouth[:, 1]
    out[:, F["mouth_round"]] = inputs.mouth[:, 2]

    # Expression: a mild baseline; listeners smile at backchannels and nod.
    expression = np.zeros(n, dtype=np.int64)
    strength = np.zeros(n, dtype=np.float32)
    baseline = int(rng.choice([0, 1, 1, 3]))
    expression[:] = baseline
    strength[:] = 0.0 if baseline == 0 else float(rng.uniform(0.1, 0.3))
    smile = EXPRESSIONS.index("smile")
    for at in inputs.backchannels:
        out[:, F["pitch"]] += nod(t, at, amplitude=float(rng.uniform(4, 8)), cycles=float(rng.choice([1, 2])))
        if rng.random() < 0.5:
            env = span_envelope(t, at, at + 1.2, 0.3) * 0.5
            take = env > strength
            expression[take], strength[take] = smile, env[take]

    # Timed instructions override the rest over their spans.
    for ins in inputs.instructions:
        env = span_envelope(t, ins.start, ins.end)
        name = ins.name
        if name == "nod":
            out[:, F["pitch"]] += env * -8.0 * np.sin(2 * np.pi * 2.0 * (t - ins.start))
        elif name == "shake_head":
            out[:, F["yaw"]] += env * 14.0 * np.sin(2 * np.pi * 2.5 * (t - ins.start))
        elif name in ("look_left", "look_right"):
            side = -1.0 if name == "look_left" else 1.0
            out[:, F["yaw"]] = (1 - env) * out[:, F["yaw"]] + env * side * 22.0
            out[:, F["gaze_x"]] = (1 - env) * out[:, F["gaze_x"]] + env * side * 0.8
        elif name == "raise_eyebrows":
            out[:, F["brow_raise"]] = np.maximum(out[:, F["brow_raise"]], env)
        else:
            target = {"smile": "smile", "look_surprised": "surprise", "look_sad": "sad"}[name]
            level = env * 0.9
            take = level > 0.05
            expression[take], strength[take] = EXPRESSIONS.index(target), level[take]
            if target == "surprise":
                out[:, F["brow_raise"]] = np.maximum(out[:, F["brow_raise"]], env * 0.9)
                out[:, F["mouth_open"]] = np.maximum(out[:, F["mouth_open"]], env * 0.3 * (1 - speaking))

    out[:, F["expression"]] = expression
    out[:, F["expression_strength"]] = strength
    limits = {"yaw": 30, "pitch": 25, "roll": 20, "gaze_x": 1, "gaze_y": 1, "brow_raise": 1, "mouth_width": 1}
    for name, lim in limits.items():
        out[:, F[name]] = np.clip(out[:, F[name]], -lim, lim)
    for name in ("blink", "mouth_open", "mouth_round", "expression_strength"):
        out[:, F[name]] = np.clip(out[:, F[name]], 0, 1)
    return out
