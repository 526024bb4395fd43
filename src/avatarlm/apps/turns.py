"""Who has the floor: end-of-turn and barge-in detection on top of the streaming VAD.

A small state machine driven only by the microphone samples pushed (a simulated clock: stream time is
samples / 16 kHz, never the wall clock), so the same audio always gives the same events:

    LISTENING --user onset--> USER_SPEAKING            event "user_started"
    USER_SPEAKING --silence >= end_of_turn_silence--> LISTENING      event "end_of_turn"
    LISTENING --avatar_started()--> AVATAR_SPEAKING
    AVATAR_SPEAKING --avatar_finished()--> LISTENING
    AVATAR_SPEAKING --user onset--> USER_SPEAKING      event "barge_in" (stop_avatar=True)

The user's turn ends ``end_of_turn_silence`` seconds after the VAD's offset (where the speech stopped),
decided at the end of the first 32 ms window that reaches it; speech resuming before then continues the
same turn. A barge-in is emitted at the VAD's onset decision and tells the caller to stop the avatar's
audio at once. Echo of the avatar's own voice in the microphone is not cancelled here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

import numpy as np

from avatarlm.apps.vad import SAMPLE_RATE, WINDOW, StreamingVAD, StreamTimes, VADConfig, VADWindow


class TurnState(StrEnum):
    LISTENING = "listening"
    USER_SPEAKING = "user_speaking"
    AVATAR_SPEAKING = "avatar_speaking"


TurnEventKind = Literal["user_started", "end_of_turn", "barge_in"]


@dataclass
class TurnConfig:
    end_of_turn_silence: float = 0.6  # seconds of silence after the user's speech that end the turn
    vad: VADConfig = field(default_factory=VADConfig)

    def __post_init__(self) -> None:
        eot = self.end_of_turn_silence
        if not (math.isfinite(eot) and eot >= self.vad.min_silence_s and eot > 0.0):
            raise ValueError(
                "end_of_turn_silence must be a finite number of seconds > 0 and >= vad.min_silence_s "
                f"({self.vad.min_silence_s}), got {eot}"
            )


@dataclass(frozen=True)
class TurnEvent(StreamTimes):
    """``sample``: the user's speech onset (user_started, barge_in) or where the silence began
    (end_of_turn); ``decided_sample``: the stream sample at which the event was decided."""

    kind: TurnEventKind
    sample: int
    decided_sample: int
    stop_avatar: bool = False  # barge-in: stop the avatar's audio now
    turn_start_sample: int | None = None  # end_of_turn: the onset that opened the turn


class TurnDetector:
    """``push(mic_pcm)`` -> turn events; tell it when the avatar starts and stops talking."""

    def __init__(self, config: TurnConfig | None = None, vad: StreamingVAD | None = None) -> None:
        self.config = config or TurnConfig()
        self.vad = vad or StreamingVAD(self.config.vad)
        self._eot_samples = round(self.config.end_of_turn_silence * SAMPLE_RATE)
        self.reset()

    def reset(self) -> None:
        self.vad.reset()
        self.state = TurnState.LISTENING
        self._turn_start: int | None = None
        self._silence_since: int | None = None  # the offset of the current user turn, until it ends

    @property
    def time(self) -> float:
        """Stream time of the microphone: seconds of audio pushed."""
        return self.vad.time

    def push(self, samples: np.ndarray) -> list[TurnEvent]:
        """Feed microphone audio (16 kHz mono, any chunk size); returns the events it decided, in order."""
        return self._run(self.vad.push(samples))

    def flush(self) -> list[TurnEvent]:
        """Process the partial VAD window, padded with silence."""
        return self._run(self.vad.flush())

    def avatar_started(self) -> None:
        """The avatar began speaking; only while LISTENING (after the user's turn ended, or before any)."""
        if self.state is not TurnState.LISTENING:
            raise RuntimeError(
                f"the avatar can start speaking only while listening, not in {self.state.name}"
            )
        self.state = TurnState.AVATAR_SPEAKING

    def avatar_finished(self) -> None:
        """The avatar's speech ended (or was stopped); a no-op unless the state is AVATAR_SPEAKING."""
        if self.state is TurnState.AVATAR_SPEAKING:
            self.state = TurnState.LISTENING

    def _run(self, windows: list[VADWindow]) -> list[TurnEvent]:
        out: list[TurnEvent] = []
        for window in windows:
            out.extend(self._window(window))
        return out

    def _window(self, window: VADWindow) -> list[TurnEvent]:
        event = window.event
        end = window.start_sample + WINDOW
        if event is not None and event.kind == "onset":
            self._silence_since = None
            if self.state is TurnState.LISTENING:
                self.state, self._turn_start = TurnState.USER_SPEAKING, event.sample
                return [TurnEvent("user_started", event.sample, end)]
            if self.state is TurnState.AVATAR_SPEAKING:
                self.state, self._turn_start = TurnState.USER_SPEAKING, event.sample
                return [TurnEvent("barge_in", event.sample, end, stop_avatar=True)]
            return []  # speech resumed inside the user's turn
        if event is not None and event.kind == "offset" and self.state is TurnState.USER_SPEAKING:
            self._silence_since = event.sample
        if self._silence_since is not None and end - self._silence_since >= self._eot_samples:
            turn = TurnEvent("end_of_turn", self._silence_since, end, turn_start_sample=self._turn_start)
            self.state, self._silence_since, self._turn_start = TurnState.LISTENING, None, None
            return [turn]
        return []
