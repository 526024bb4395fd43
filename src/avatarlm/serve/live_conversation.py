"""Conversation mode of a live session: the microphone goes through the duplex loop (voice activity, end
of turn, barge-in; ``apps/duplex.py``), each finished turn is transcribed and answered by the responder
(an OpenAI-compatible endpoint from AVATARLM_CHAT_*, else the labelled offline one), and the answer is
spoken by the avatar. The user can interrupt it: the avatar stops within one 20 ms chunk of the VAD's
decision and listens.

The recogniser and the responder run inside the session's tick (a worker thread): a slow endpoint holds
that session's frames (its clock waits, see ``live_session.py``), never another session's.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from avatarlm.apps.asr import Transcriber, hear_turn, transcriber_for
from avatarlm.apps.duplex import DuplexConfig, DuplexLoop
from avatarlm.apps.responder import FallbackResponder, Responder, ScriptedResponder
from avatarlm.apps.tts import TTSConfig
from avatarlm.apps.turns import TurnConfig, TurnState
from avatarlm.apps.vad import SAMPLE_RATE

KEEP_SECONDS = 30.0  # microphone audio kept for the recogniser (a turn longer than this is cut)


class LiveConversation:
    """``feed(mic)`` with 16 kHz microphone audio (a multiple of ``tick_samples``) -> (the avatar's voice
    for the same span, notices for the client)."""

    def __init__(
        self,
        language: str = "en",
        responder: Responder | None = None,
        transcriber: Transcriber | None = None,
        end_of_turn: float = 0.6,
    ) -> None:
        config = DuplexConfig(TurnConfig(end_of_turn_silence=end_of_turn), TTSConfig(language=language))
        self.responder = responder or FallbackResponder.from_env(fallback=ScriptedResponder())
        self.loop = DuplexLoop(config, self.responder)
        self.transcriber = transcriber or transcriber_for(language)
        self.tick_samples = self.loop.tick_samples
        self._recent = np.zeros(0, np.float32)  # the last KEEP_SECONDS of microphone audio
        self._recent_start = 0  # its first sample's index in the stream

    def feed(self, mic: np.ndarray) -> tuple[np.ndarray, list[dict[str, Any]]]:
        n = self.tick_samples
        if len(mic) % n:
            raise ValueError(f"feed takes a multiple of {n} samples, got {len(mic)}")
        voice, notices = [], []
        for chunk in mic.reshape(-1, n):
            self._remember(chunk)
            step = self.loop.tick(chunk)
            for event in step.events:
                if event.kind == "barge_in":
                    notices.append({"type": "barge_in", "seconds": round(event.decided_at, 2)})
                elif event.kind == "end_of_turn":
                    notices.append(self._answer(event.turn_start_sample or 0, event.sample))
            voice.append(step.avatar_audio)
        return (np.concatenate(voice) if voice else np.zeros(0, np.float32)), notices

    def say(self, text: str) -> None:
        """The avatar says ``text`` now (only while it listens and the user is quiet)."""
        if self.loop.state is not TurnState.LISTENING:
            raise ValueError(
                f"the avatar can start speaking only while listening, not while {self.loop.state.name.lower()}"
            )
        self.loop.say(text)

    def stop(self) -> None:
        """The avatar stops speaking and listens."""
        if self.loop.stream is not None:
            self.loop.stream.stop()
            self.loop.stream = None
            self.loop.detector.avatar_finished()

    def _remember(self, chunk: np.ndarray) -> None:
        self._recent = np.concatenate([self._recent, chunk])
        extra = len(self._recent) - int(KEEP_SECONDS * SAMPLE_RATE)
        if extra > 0:
            self._recent = self._recent[extra:]
            self._recent_start += extra

    def _answer(self, start: int, end: int) -> dict[str, Any]:
        heard = hear_turn(self.transcriber, self._recent, start, end, first_sample=self._recent_start)
        answer = self.loop.reply_to(heard)
        notice = getattr(self.responder, "notice", None)
        return {"type": "turn", "heard": heard, "answer": answer, **({"notice": notice} if notice else {})}
