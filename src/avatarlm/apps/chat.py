"""`avatarlm chat --in user.wav --out conversation.mp4`: a whole conversation from a file.

The user's recording plays as the microphone, 20 ms at a time, through the duplex loop (``duplex.py``: VAD,
end of turn, barge-in). When a turn ends, its audio is transcribed (``asr.py``), the responder answers and
the avatar speaks the answer (espeak-ng). Every tick, the avatar's own voice goes to the streaming session
as its audio — and, for a duplex model, the user's as the partner stream, so it listens while the user
talks — and the frames go straight into the mp4, whose sound is stereo: avatar left, user right. After the
recording ends the loop runs on in silence until the avatar has finished its last answer.

Response latency is split as the issue defines it: the end-of-turn silence wait (a config value), then from
the end-of-turn decision to the first frame the answer moves: speech synthesis (wall time) + the session's
look-ahead and one chunk of audio + that frame's compute.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from avatarlm.apps.asr import Transcriber, hear_turn
from avatarlm.apps.duplex import DuplexConfig, DuplexLoop
from avatarlm.apps.responder import Responder
from avatarlm.pipeline.folder import Pipeline
from avatarlm.pipeline.session import SessionConfig, StreamingSession

SAMPLE_RATE = 16_000


@dataclass
class Turn:
    start: float  # the user's turn, seconds of conversation time
    end: float
    decided: float  # when the end of turn was decided
    heard: str  # the transcript ("" when nothing was recognised)
    answer: str
    synthesis_ms: float  # wall time of the answer's speech synthesis
    first_frame_ms: float = float("nan")  # decision -> first frame driven by the answer (see module doc)


@dataclass
class Conversation:
    seconds: float
    frames: int
    turns: list[Turn] = field(default_factory=list)
    barge_ins: int = 0

    def summary(self, end_of_turn_silence: float) -> str:
        lines = [f"{self.seconds:.1f} s of conversation, {self.frames} frames, {len(self.turns)} turns, "
                 f"{self.barge_ins} barge-ins"]  # fmt: skip
        for i, t in enumerate(self.turns, 1):
            lines.append(f"  turn {i} ({t.start:.2f}-{t.end:.2f} s) heard {t.heard or '(nothing)'!r}")
            lines.append(f"    answer {t.answer!r}")
            lines.append(
                f"    response: end-of-turn wait {end_of_turn_silence * 1000:.0f} ms, then "
                f"{t.first_frame_ms:.0f} ms to the first answering frame (synthesis {t.synthesis_ms:.0f} ms)"
            )
        return "\n".join(lines)


def converse(
    pipe: Pipeline,
    user: np.ndarray,
    out: str | os.PathLike[str],
    responder: Responder,
    transcriber: Transcriber,
    reference: np.ndarray | None = None,
    identity_seed: int | None = None,
    config: DuplexConfig | None = None,
    session_config: SessionConfig | None = None,
    max_tail_seconds: float = 30.0,
) -> Conversation:
    """Hold the conversation the 16 kHz recording ``user`` makes and write it to ``out`` (mp4)."""
    from avatarlm.media import write_mp4

    loop = DuplexLoop(config, responder)
    session = StreamingSession(pipe, reference=reference, identity_seed=identity_seed, config=session_config)
    duplex = pipe.model.config.conditions.audio_streams == 2
    tick = loop.tick_samples
    # the wait before an answer's first frame can be drawn: the look-ahead and one chunk of its audio
    wait_ms = 1000 * (pipe.model.config.conditions.lookahead_frames / session.fps + tick / SAMPLE_RATE)
    talk = Conversation(0.0, 0)
    avatar: list[np.ndarray] = []
    mic_all: list[np.ndarray] = []
    pending: list[tuple[Turn, int]] = []  # answers waiting for their first frame: (turn, first sample)

    def frames() -> Iterator[np.ndarray]:
        i = 0
        while i < len(user) or (loop.stream is not None and i < len(user) + max_tail_seconds * SAMPLE_RATE):
            mic = np.zeros(tick, np.float32)
            piece = user[i : i + tick]
            mic[: len(piece)] = piece
            step = loop.tick(mic)
            for event in step.events:
                if event.kind == "barge_in":
                    talk.barge_ins += 1
                elif event.kind == "end_of_turn":
                    start = event.turn_start_sample or 0
                    heard = hear_turn(transcriber, user, start, event.sample)
                    began = time.perf_counter()
                    answer = loop.reply_to(heard)
                    turn = Turn(start / SAMPLE_RATE, event.time, event.decided_at, heard, answer,
                                1000 * (time.perf_counter() - began))  # fmt: skip
                    talk.turns.append(turn)
                    pending.append((turn, i + tick))  # its first chunk plays from the next tick
            avatar.append(step.avatar_audio)
            mic_all.append(mic)
            session.push_audio(step.avatar_audio)
            if duplex:
                session.push_partner_audio(mic)
            for _, frame in session.frames():
                _time_answers(session, pending, wait_ms)
                yield frame
            i += tick
        session.flush()
        for _, frame in session.frames():
            _time_answers(session, pending, wait_ms)
            yield frame

    video = list(frames())  # the sound track is known only once the loop has run (~50 kB a frame at 128²)
    talk.frames = len(video)
    spf = SAMPLE_RATE // session.fps
    sound = np.stack([np.concatenate(avatar), np.concatenate(mic_all)])[:, : (len(video) - 1) * spf]
    write_mp4(Path(out), iter(video), session.fps, sound)
    talk.seconds = sound.shape[1] / SAMPLE_RATE
    return talk


def _time_answers(session: StreamingSession, pending: list[tuple[Turn, int]], wait_ms: float) -> None:
    """Fill in the first-frame latency of answers whose first frame the session just made."""
    timing = session.timings[-1] if session.timings else None
    if timing is None:
        return
    frame_end = (timing.index + 1) * SAMPLE_RATE // session.fps
    for turn, first_sample in list(pending):
        if frame_end > first_sample:  # this frame's own 40 ms hold the answer's first sound
            compute_ms = 1000 * timing.compute
            turn.first_frame_ms = turn.synthesis_ms + wait_ms + compute_ms
            pending.remove((turn, first_sample))
