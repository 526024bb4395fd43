"""One connection's avatar: a :class:`StreamingSession` kept on the wall clock, fed by commands and
microphone audio, producing encoded frames with the avatar's voice attached. No networking here: the
server calls :meth:`LiveSession.tick` on a worker thread, the tests call it with a hand-made clock.

Both audio streams are paced by the clock: each tick pushes exactly the samples due since the last one,
taken from the speech queue (text the avatar says) and the microphone queue, silence where they run dry.
So the avatar idles when nobody speaks, and a late or bursty microphone cannot push the video clock.

When generation falls behind the clock (a slow machine, too many sessions), the clock slips: it waits for
the frames instead of queueing audio they cannot keep up with, so latency stays bounded (``max_lag``
past the look-ahead) and the video plays slower instead of later and later; ``stats.slipped`` says how much.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from avatarlm.conditions.resample import StreamResampler
from avatarlm.pipeline.audio_input import SAMPLE_RATE
from avatarlm.pipeline.folder import Pipeline
from avatarlm.pipeline.generate import domain_warning, fit_image, speak_text
from avatarlm.pipeline.session import SessionConfig, StreamingSession
from avatarlm.pipeline.step_batcher import StepBatcher
from avatarlm.serve import protocol as P
from avatarlm.serve.live_conversation import LiveConversation

MAX_SPEECH_SECONDS = 120.0  # queued text-to-speech
MAX_MIC_BACKLOG_SECONDS = 1.0  # microphone audio ahead of the clock (a client sending too fast)
STATS_WINDOW = 100  # frames the latency percentiles are taken over


@dataclass
class LiveStats:
    """Latency of the frames sent lately: audio-to-lip = sent time - the time its audio was due."""

    frames: int = 0
    slipped: float = 0.0  # seconds the clock waited for generation
    sent: deque[float] = field(default_factory=lambda: deque(maxlen=STATS_WINDOW))  # wall times
    latency: deque[float] = field(default_factory=lambda: deque(maxlen=STATS_WINDOW))
    compute: deque[float] = field(default_factory=lambda: deque(maxlen=STATS_WINDOW))

    def summary(self) -> dict[str, Any]:
        """The ``stats`` message: frames sent, frames sent in the last second, latency percentiles."""

        def ms(values: deque[float], q: float) -> float | None:
            return round(float(np.percentile(list(values), q)) * 1000, 1) if values else None

        return {
            "type": "stats",
            "frames": self.frames,
            "fps": sum(1 for t in self.sent if t > time.perf_counter() - 1.0),
            "latency_ms_p50": ms(self.latency, 50),
            "latency_ms_p95": ms(self.latency, 95),
            "compute_ms_p95": ms(self.compute, 95),
            "slipped_s": round(self.slipped, 2),
        }


class VideoClock:
    """Video time on the wall clock, slipping when generation falls behind: ``video_time`` never runs more
    than ``max_lag`` seconds ahead of the frames made, so latency stays bounded and the video plays slower."""

    def __init__(self, fps: float, max_lag: float, stats: LiveStats) -> None:
        self.fps, self.max_lag, self.stats = fps, max_lag, stats
        self.origin = time.perf_counter()  # wall time of video time 0
        self.slipped = 0.0  # seconds the clock waited for generation

    def video_time(self, frames_out: int, now: float | None = None) -> float:
        """Video time due at ``now`` (seconds since the start; default: the wall clock) with ``frames_out``
        frames made so far."""
        if now is None:
            now = time.perf_counter() - self.origin
        now -= self.slipped
        lag = now - frames_out / self.fps
        if lag > self.max_lag:
            self.slipped += lag - self.max_lag
            self.stats.slipped += lag - self.max_lag
            now -= lag - self.max_lag
        return now

    def frame_messages(
        self, session: StreamingSession, jpeg_quality: int, voice: Callable[[], bytes]
    ) -> list[bytes]:
        """Every frame ``session`` can make now, as a JPEG packet followed by its voice packet (``voice()``:
        that frame's PCM16 bytes); the stats record each one's latency and compute time."""
        out: list[bytes] = []
        for t, frame in session.frames():
            index = round(t * self.fps)
            ok, jpeg = cv2.imencode(".jpg", frame[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
            assert ok
            out.append(P.pack(P.FRAME, index, t, jpeg.tobytes()))
            out.append(P.pack(P.VOICE, index, t, voice()))
            self.stats.frames += 1
            sent = time.perf_counter()
            self.stats.sent.append(sent)
            self.stats.latency.append(max(0.0, sent - self.origin - self.slipped - t))
        for timing in session.timings:
            self.stats.compute.append(timing.compute)
        session.timings.clear()
        return out


class SampleQueue:
    """Float32 samples waiting to be pushed; ``take(n)`` returns exactly n, zero-padded when it runs dry."""

    def __init__(self, limit_seconds: float) -> None:
        self.limit = int(limit_seconds * SAMPLE_RATE)
        self._parts: deque[np.ndarray] = deque()
        self.size = 0

    def put(self, samples: np.ndarray) -> int:
        """Queue samples; returns how many old ones were dropped to stay within the limit."""
        self._parts.append(samples.astype(np.float32))
        self.size += len(samples)
        dropped = max(0, self.size - self.limit)
        if dropped:
            self.take(dropped)  # the oldest go
        return dropped

    def take(self, n: int) -> np.ndarray:
        out = np.zeros(n, np.float32)
        filled = 0
        while filled < n and self._parts:
            part = self._parts[0]
            k = min(n - filled, len(part))
            out[filled : filled + k] = part[:k]
            filled += k
            if k == len(part):
                self._parts.popleft()
            else:
                self._parts[0] = part[k:]
        self.size -= filled
        return out

    def clear(self) -> None:
        self._parts.clear()
        self.size = 0


def model_facts(pipe: Pipeline) -> dict[str, Any]:
    """What a client needs to know of the model: frame size and rate, audio rate and streams, conditions."""
    ae, cond = pipe.autoencoder.config, pipe.model.config.conditions
    return {
        "fps": pipe.fps,
        "width": ae.image_width,
        "height": ae.image_height,
        "sample_rate": SAMPLE_RATE,
        "audio_streams": cond.audio_streams,
        "modalities": list(cond.modalities),
    }


class LiveSession:
    """``handle(command)`` / ``hear(pcm16 bytes)`` as messages arrive; ``tick(now)`` -> messages to send."""

    def __init__(
        self,
        pipe: Pipeline,
        identity: int = 0,
        config: SessionConfig | None = None,
        jpeg_quality: int = 80,
        max_lag: float = 0.25,
        conversation: Callable[[str], LiveConversation] = LiveConversation,
        batcher: StepBatcher | None = None,
    ) -> None:
        self.pipe, self.config, self.jpeg_quality = pipe, config or SessionConfig(), jpeg_quality
        self.batcher = batcher  # shared with the server's other sessions: their steps run together
        self.duplex = pipe.model.config.conditions.audio_streams == 2
        self.fps = pipe.fps
        mc = pipe.model.config
        self.max_lag = max_lag + (mc.conditions.lookahead_frames + mc.chunk_size) / self.fps
        self._speech = SampleQueue(MAX_SPEECH_SECONDS)
        self._mic = SampleQueue(MAX_MIC_BACKLOG_SECONDS)
        self._audio_source = "microphone"
        self._resampler: StreamResampler | None = None
        self._mic_warned = False
        self._pending: list[dict[str, Any]] = []
        self.stats = LiveStats()
        self._new_conversation = conversation  # language -> LiveConversation
        self.conversation: LiveConversation | None = None
        self._restart(None, identity)

    def _restart(self, image: np.ndarray | None, identity: int | None) -> None:
        self.session = StreamingSession(self.pipe, image, identity, self.config, self.batcher)
        self.clock = VideoClock(self.fps, self.max_lag, self.stats)
        self._pushed = 0  # samples pushed to each stream
        self._voice: deque[np.ndarray] = deque()  # the avatar's voice per frame not sent yet
        self._voice_rest = np.zeros(0, np.float32)
        self._speech.clear()
        self._mic.clear()

    def ready_message(self) -> dict[str, Any]:
        from avatarlm.data.instructions import INSTRUCTIONS
        from avatarlm.data.speech.languages import LANGUAGES

        return {
            "type": "ready",
            **model_facts(self.pipe),
            "microphone": "partner" if self.duplex else "self",
            "languages": sorted(LANGUAGES),
            "instructions": list(INSTRUCTIONS),
        }

    # -- input ---------------------------------------------------------------------------------------
    def hear(self, data: bytes) -> None:
        """Binary audio (PCM16 at the declared rate): the microphone, or the avatar's voice."""
        samples = P.parse_audio(data)
        if self._resampler is not None:
            samples = self._resampler.process(samples.astype(np.float64)).astype(np.float32)
        if self._audio_source == "voice":
            if self.conversation is not None:
                raise P.ProtocolError("in conversation mode the avatar's voice comes from its answers")
            if self._speech.put(samples):
                raise P.ProtocolError(
                    f"the speech queue is full ({MAX_SPEECH_SECONDS:.0f} s); older speech dropped"
                )
            return
        if self._mic.put(samples) and not self._mic_warned:
            self._mic_warned = True
            self._pending.append(
                {
                    "type": "warning",
                    "message": "microphone audio is piling up (sent faster than real time, or the server is "
                    "behind): dropping the oldest",
                }
            )

    def handle(self, command: P.Command) -> None:
        """Apply one command; a refused one raises ProtocolError with a message for the client."""
        if isinstance(command, P.Say) and self.conversation is not None:
            try:
                self.conversation.say(command.text)
            except ValueError as e:
                raise P.ProtocolError(str(e)) from None
        elif isinstance(command, P.Stop) and self.conversation is not None:
            self.conversation.stop()
        elif isinstance(command, P.Conversation):
            self._speech.clear()
            self.conversation = None
            if command.on:
                from avatarlm.data.speech.languages import get_language

                try:
                    get_language(command.lang)
                except ValueError as e:
                    raise P.ProtocolError(str(e)) from None
                self.conversation = self._new_conversation(command.lang)
        elif isinstance(command, P.Say):
            try:
                speech = speak_text(command.text, command.lang)
            except ValueError as e:
                raise P.ProtocolError(str(e).replace("--text", "say.text")) from None
            if self._speech.put(speech):
                raise P.ProtocolError(
                    f"the speech queue is full ({MAX_SPEECH_SECONDS:.0f} s); older speech dropped"
                )
        elif isinstance(command, P.Stop):
            self._speech.clear()
        elif isinstance(command, P.Instruction):
            now = self.session.frames_out / self.fps
            span = None if command.seconds is None else (now, now + command.seconds)
            self.session.push_text(command.text, span)
        elif isinstance(command, P.Pose):
            try:
                self.session.push_pose(command.rotation, command.keypoints)
            except ValueError as e:
                raise P.ProtocolError(str(e)) from None
        elif isinstance(command, P.AudioFormat):
            self._audio_source = command.source
            self._resampler = (
                None if command.sample_rate == SAMPLE_RATE else StreamResampler(command.sample_rate)
            )
        elif isinstance(command, P.Reset):
            self._reset(command)
        elif isinstance(command, P.Action):
            raise P.ProtocolError("actions drive world models; this model takes audio, pose and text")

    def _reset(self, command: P.Reset) -> None:
        if command.image is None:
            self._restart(None, command.identity)
            return
        c = self.pipe.autoencoder.config
        image = fit_image(P.decode_image(command.image), c.image_height, c.image_width)
        warning = domain_warning(self.pipe.autoencoder, image)
        if warning:
            self._pending.append({"type": "warning", "message": warning})
        self._restart(image, None)

    # -- output --------------------------------------------------------------------------------------
    def tick(self, now: float | None = None) -> list[bytes | dict[str, Any]]:
        """Push the audio due by ``now`` (seconds since the session's start; default: the wall clock) and
        return every frame it completes (JPEG, then its voice) and any notices."""
        now = self.clock.video_time(self.session.frames_out, now)
        due = int(now * SAMPLE_RATE) - self._pushed
        if self.conversation is not None:  # the duplex loop runs in whole chunks
            due -= due % self.conversation.tick_samples
        if due > 0:
            self._push(due)
        out: list[bytes | dict[str, Any]] = list(self._pending)
        self._pending = []
        out += self.clock.frame_messages(self.session, self.jpeg_quality, self._next_voice)
        return out

    def _next_voice(self) -> bytes:
        voice = (self._voice.popleft() * 32767).astype("<i2") if self._voice else np.zeros(0, "<i2")
        return voice.tobytes()

    def _push(self, n: int) -> None:
        mic = self._mic.take(n)
        if self.conversation is not None:  # the avatar's voice: its answers
            speech, notices = self.conversation.feed(mic)
            self._pending.extend(notices)
            own = speech
        else:  # the avatar's voice: what it was told to say (and the microphone, for one-stream models)
            speech = self._speech.take(n)
            own = speech if self.duplex else np.clip(speech + mic, -1.0, 1.0)
        self.session.push_audio(own)
        if self.duplex:
            self.session.push_partner_audio(mic)
        self._pushed += n
        voice = np.concatenate([self._voice_rest, speech])  # what the avatar says goes back to the client
        per_frame = SAMPLE_RATE // self.fps
        whole = len(voice) // per_frame * per_frame
        self._voice.extend(voice[:whole].reshape(-1, per_frame))
        self._voice_rest = voice[whole:]
