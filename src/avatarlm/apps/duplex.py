"""The duplex loop: microphone in, the avatar's voice out, in lock-step on one simulated clock.

Each ``tick(mic)`` takes one chunk of microphone audio (``TTSConfig.chunk_s`` long, 20 ms by default)
and returns the chunk of the avatar's voice to play next (silence when it is quiet), plus the turn events
the microphone chunk decided. The microphone chunk covering [t, t + dt) is judged before the chunk that
plays over [t + dt, t + 2 dt) is handed out, so a barge-in decided inside the tick silences the avatar
from the very next chunk: its audio stops at most one chunk after the onset decision.

Speech recognition is not part of this loop: ``end_of_turn`` events carry the stream span of the user's
turn, and whoever transcribes it calls ``reply_to(text)`` (responder -> avatar speech) or ``say(text)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from avatarlm.apps.responder import Message, Responder, ScriptedResponder
from avatarlm.apps.tts import SpeechStream, TTSConfig, stream_reply
from avatarlm.apps.turns import TurnConfig, TurnDetector, TurnEvent, TurnState
from avatarlm.apps.vad import SAMPLE_RATE, as_pcm

UNHEARD_TURN = "(a turn the recogniser could not transcribe)"


@dataclass
class DuplexConfig:
    turns: TurnConfig = field(default_factory=TurnConfig)
    tts: TTSConfig = field(default_factory=TTSConfig)


@dataclass(frozen=True)
class Tick:
    """One step: the avatar audio to play from ``plays_at_sample`` on, and the events decided meanwhile."""

    plays_at_sample: int
    avatar_audio: np.ndarray
    avatar_speaking: bool  # avatar_audio holds the avatar's speech (not filler silence)
    events: list[TurnEvent]

    @property
    def plays_at(self) -> float:
        return self.plays_at_sample / SAMPLE_RATE


class DuplexLoop:
    """Lock-step microphone / avatar-voice loop around a TurnDetector and a responder."""

    def __init__(
        self,
        config: DuplexConfig | None = None,
        responder: Responder | None = None,
        detector: TurnDetector | None = None,
    ) -> None:
        self.config = config or DuplexConfig()
        self.responder: Responder = responder if responder is not None else ScriptedResponder()
        self.detector = detector or TurnDetector(self.config.turns)
        self.tick_samples = self.config.tts.chunk_samples
        self.history: list[Message] = []
        self.stream: SpeechStream | None = None
        self._mic_samples = 0

    @property
    def state(self) -> TurnState:
        return self.detector.state

    def say(self, text: str) -> SpeechStream:
        """Start the avatar speaking `text` from the next tick on (only while listening)."""
        if self.detector.state is not TurnState.LISTENING:
            raise RuntimeError(
                f"the avatar can start speaking only while listening, not in {self.state.name}"
            )
        stream = stream_reply(text, self.config.tts)
        self.detector.avatar_started()
        self.stream = stream
        return stream

    def reply_to(self, text: str) -> str:
        """Ask the responder for a reply to the user's `text`, remember both, and start saying it. An empty
        `text` (a turn the recogniser could not transcribe) is passed on as such."""
        text = text or UNHEARD_TURN
        answer = self.responder.reply(list(self.history), text)
        self.say(answer)
        self.history += [("user", text), ("assistant", answer)]
        return answer

    def tick(self, mic: np.ndarray) -> Tick:
        """Judge one microphone chunk, then hand out the avatar's next chunk (silence after a barge-in)."""
        pcm = as_pcm(mic)
        if len(pcm) != self.tick_samples:
            raise ValueError(f"each tick takes {self.tick_samples} microphone samples, got {len(pcm)}")
        events = self.detector.push(pcm)
        self._mic_samples += len(pcm)
        if self.stream is not None and any(e.stop_avatar for e in events):
            self.stream.stop()
            self.stream = None
        chunk = self.stream.next_chunk() if self.stream is not None else None
        if chunk is None and self.stream is not None:  # the last chunk has played out
            self.stream = None
            self.detector.avatar_finished()
        speaking = chunk is not None
        audio = chunk if chunk is not None else np.zeros(self.tick_samples, np.float32)
        return Tick(self._mic_samples, audio, speaking, events)
