"""The streaming session: audio (and pose and instructions) go in, in any chunking; frames come out on the
video clock.

A session owns the audio input (``audio_input.py``: the avatar's own voice and, for duplex models, the
partner's, aligned for the streaming encoder), the backbone's KV cache (a rolling window, see
``rolling.py``) and the autoencoder's decode cache. Frame j (shown at ``j / fps`` s) is generated as soon
as cond(j) is complete, i.e. once the audio (every stream) up to ``(j + L) * 40 ms`` has arrived (L = the
model's look-ahead in frames); :meth:`flush` ends the input and pads the look-ahead with silence. Frame 0 is
the decoded reference. Audio at 16 kHz pushed in any chunking gives bit-identical frames (every step runs on
tensors of the same shapes); the offline :func:`~avatarlm.pipeline.offline.generate_clip` agrees within float
rounding (without a window roll; a roll differs from the offline run's unbounded context).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from avatarlm.conditions.action import NO_ACTION
from avatarlm.conditions.pose import NUM_KEYPOINTS
from avatarlm.conditions.projector import ConditionBatch
from avatarlm.pipeline.anchor import anchor_step, check_anchor, resolve_anchor
from avatarlm.pipeline.audio_input import SAMPLE_RATE, AudioInput
from avatarlm.pipeline.folder import Pipeline
from avatarlm.pipeline.offline import decode_frame, decoder_cache, encode_reference
from avatarlm.pipeline.rolling import KeptFrame, evict_frames, rebuild_state
from avatarlm.pipeline.step_batcher import StepBatcher

DEFAULT_WINDOW, DEFAULT_EVICT = 30, 10


@dataclass
class SessionConfig:
    """``window_frames``: generated frames kept in the backbone's window besides f_0 (at most the training
    window, 31 for ``tiny``); ``evict_frames``: how many leave at once when it is full (one re-encode per
    eviction); ``roll``: how the window drops them (see ``rolling.py``); ``seed``: the noise of the whole
    session; ``lip_strength``: classifier-free guidance on the condition that drives the session — the
    audio of a talking head, the actions of a world model (``--action-strength``) — (1 = none; otherwise
    every step runs the backbone twice, with and without it); ``anchor``: each frame, the generated latent's channels
    outside the autoencoder's mouth channels move this share of the way back to the reference's (0 = off;
    None = the pipeline's default; see ``anchor.py``)."""

    window_frames: int = DEFAULT_WINDOW
    evict_frames: int = DEFAULT_EVICT
    seed: int = 0
    lip_strength: float = 1.0  # guidance on the audio (world models: the actions): > 1 follows it harder
    grace_seconds: float = 0.2  # live sessions: audio this late is taken as silence (see advance())
    roll: str = "rotate"  # "rotate": drop + re-rotate cached keys, no pass; "reencode": the training layout
    cuda_graphs: bool = True  # on a GPU, replay the backbone's steps and the head's sampling as CUDA graphs
    anchor: float | None = None  # pull toward the reference per frame: bounds drift, slows head motion

    def __post_init__(self) -> None:
        if self.window_frames < 2:
            raise ValueError(f"window_frames must be >= 2, got {self.window_frames}")
        if not 1 <= self.evict_frames < self.window_frames:
            raise ValueError(
                f"evict_frames must be in [1, window_frames={self.window_frames}), got {self.evict_frames}"
            )
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if self.grace_seconds < 0:
            raise ValueError(f"grace_seconds must be >= 0, got {self.grace_seconds}")
        if self.roll not in ("reencode", "rotate"):
            raise ValueError(f"roll must be 'reencode' or 'rotate', got {self.roll!r}")
        if not 0.0 <= self.lip_strength <= 10.0:
            raise ValueError(f"lip_strength must be in [0, 10], got {self.lip_strength}")
        if self.anchor is not None:
            check_anchor(self.anchor)

    @property
    def guided(self) -> bool:
        return self.lip_strength != 1.0

    def for_pipeline(self, pipe: Pipeline) -> SessionConfig:
        """This config as a session of ``pipe`` runs it: windows in whole chunks (:meth:`for_chunks`) and the
        anchor filled in (the pipeline's default where it is None) and checked."""
        anchor = resolve_anchor(self.anchor, pipe.autoencoder, pipe.model)
        return replace(self.for_chunks(pipe.model.config.chunk_size), anchor=anchor)

    def for_chunks(self, n: int) -> SessionConfig:
        """This config for a model with chunks of ``n`` frames, which rolls its window by whole chunks: the
        default window and eviction (30 and 10 frames) round to multiples of n; other values must be."""
        if n == 1:
            return self
        window, evict = self.window_frames, self.evict_frames
        if window == DEFAULT_WINDOW:
            window = max(2 * n, window // n * n)
        if evict == DEFAULT_EVICT:
            evict = max(n, round(evict / n) * n)
        if self.roll != "rotate" or window % n or evict % n:
            raise ValueError(
                f"a model with chunks of {n} frames rolls its window by whole chunks: roll='rotate' with "
                f"window_frames and evict_frames multiples of {n}"
            )
        return replace(self, window_frames=window, evict_frames=evict)


@dataclass
class FrameTiming:
    """When frame ``index`` became computable (its last input arrived) and when it left the session."""

    index: int
    ready: float
    done: float
    seconds: dict[str, float] = field(default_factory=dict)  # per stage: conditions ... decode

    @property
    def compute(self) -> float:
        """Compute latency (DESIGN.md): seconds of all stages of this frame."""
        return sum(self.seconds.values())


def reference_image(pipe: Pipeline, identity_seed: int) -> np.ndarray:
    """A neutral render of a synthetic identity at the pipeline's frame size (uint8 H x W x 3)."""
    from avatarlm.data.face import FaceState
    from avatarlm.data.identity import Identity
    from avatarlm.data.render import Renderer

    c = pipe.autoencoder.config
    return Renderer(Identity.from_seed(identity_seed), c.image_height, c.image_width).render(FaceState())


class StreamingSession:
    """``push_audio`` / ``push_partner_audio`` / ``push_text`` / ``push_pose`` / ``push_action`` in any order
    and chunking; ``frames()`` yields ``(seconds, frame)``.

    The model's clock is its audio: frame j comes once the audio up to its look-ahead is in. A model with
    actions and no audio (a world model) is clocked by its actions instead: every pushed action is one
    frame's (the action taken before it), and the frame comes as soon as its action is in.

    ``batcher``: a :class:`StepBatcher` shared with other sessions of the same model on other threads (a
    server's), which runs their generation steps together; the frames stay the same."""

    def __init__(
        self,
        pipe: Pipeline,
        reference: np.ndarray | None = None,
        identity_seed: int | None = None,
        config: SessionConfig | None = None,
        batcher: StepBatcher | None = None,
    ) -> None:
        if (reference is None) == (identity_seed is None):
            raise ValueError("give exactly one of a reference image or an identity seed")
        model, cond = pipe.model.eval(), pipe.model.config.conditions
        self._chunk = n = model.config.chunk_size
        self.pipe, self.config = pipe, (config or SessionConfig()).for_pipeline(pipe)
        if batcher is not None and batcher.model is not model:
            raise ValueError("the step batcher serves another model than this pipeline's")
        self._step = batcher.step if batcher is not None else model.step
        self._clock = "audio" if "audio" in cond.modalities else "action"
        if self._clock not in cond.modalities:
            raise ValueError("a session needs a model with an audio or an action condition")
        self._num_actions = cond.num_actions if "action" in cond.modalities else 0
        self._takes_text = "text" in cond.modalities
        self.fps = cond.fps
        image = reference if reference is not None else reference_image(pipe, int(identity_seed or 0))
        self.reference_image = image  # uint8 (H, W, 3): what the session animates
        self.reference = encode_reference(pipe.autoencoder, image)
        self._audio = AudioInput(model.conditions.audio_stream(1)) if self._clock == "audio" else None
        self._action = NO_ACTION  # audio-clocked models with actions: the running one
        self._text: str | None = None
        self._spans: list[tuple[float, float, str]] = []  # (start s, end s, instruction) pushed with a span
        self._pose: tuple[torch.Tensor, torch.Tensor] | None = None  # (1, 1, 3), (1, 1, K, 2)
        self._pose_before: tuple[torch.Tensor, torch.Tensor] | None = None  # the last frame's pose
        self._tokens: deque[torch.Tensor] = deque()  # audio tokens (S*T, d) or action ids of frames to come
        self._arrival: deque[float] = deque()  # when each of those became available
        self._kept: list[KeptFrame] = []
        self._inside = 0  # frames of the current chunk still to generate (chunks of n > 1 frames)
        self._chunk_ready = 0.0  # when the current chunk's conditions were complete
        self._flushed = False
        cuda = pipe.device.type == "cuda"  # GPU work is asynchronous: wait for it to time each stage
        graphs = cuda and self.config.cuda_graphs
        if cuda and graphs != model.uses_cuda_graphs:
            model.use_cuda_graphs(graphs)
        rows = 2 if self.config.guided else 1
        first = self.reference[None].expand(rows, -1, -1)
        mc = model.config  # the most the rolling window holds, so the graphs are recorded once
        capacity = (self.config.window_frames + 2 * n + 1) * (mc.cond_tokens_per_frame + mc.tokens_per_frame)
        static = graphs and batcher is None  # a batcher steps many caches at once
        self._state = model.start(first, seed=self.config.seed, static_capacity=capacity if static else None)
        self._decode_cache = decoder_cache(pipe.autoencoder.eval(), image)
        self._sync = (lambda: torch.cuda.synchronize(pipe.device)) if cuda else (lambda: None)
        self._pending_reference = True
        self.frames_out = 0
        self.timings: list[FrameTiming] = []
        self._start = time.perf_counter()

    # -- input ---------------------------------------------------------------------------------------
    def push_audio(self, pcm: np.ndarray | torch.Tensor, sample_rate: int = SAMPLE_RATE) -> None:
        """Append the avatar's own voice: mono PCM (int16, or float in [-1, 1]) at ``sample_rate``; other
        rates than 16 kHz go through one stateful resampler (the first rate pushed is the stream's)."""
        self._take(self._audio_input().push(0, pcm, sample_rate))

    def push_partner_audio(self, pcm: np.ndarray | torch.Tensor, sample_rate: int = SAMPLE_RATE) -> None:
        """Append the other party's voice (duplex models): the avatar listens while it plays. Frame j waits
        for both streams up to its look-ahead; ``advance`` fills a silent partner on the clock."""
        self._take(self._audio_input().push(1, pcm, sample_rate))

    def push_action(self, action: int | None, frames: int = 1) -> None:
        """The action taken before the next frame (an id in [0, num_actions), None for none). A world
        model (actions, no audio) gets one frame per action, ``frames`` frames when the same action is held
        that long; a model that also hears audio takes it for the frames generated from now on."""
        if not self._num_actions:
            raise ValueError("this model takes no action condition")
        if action is None:
            action = NO_ACTION
        if isinstance(action, bool) or not isinstance(action, int | np.integer):
            raise ValueError(f"an action is an integer id or None, got {action!r}")
        if not NO_ACTION <= int(action) < self._num_actions:
            raise ValueError(f"action ids are 0..{self._num_actions - 1} (or None), got {action}")
        if self._clock == "audio":
            self._action = int(action)
            return
        if isinstance(frames, bool) or not isinstance(frames, int) or frames < 1:
            raise ValueError(f"frames must be a positive integer, got {frames!r}")
        self._take(torch.full((1, frames), int(action), dtype=torch.long))

    def _audio_input(self) -> AudioInput:
        if self._audio is None:
            raise ValueError("this model takes no audio: it is driven by push_action")
        return self._audio

    def _take(self, items: torch.Tensor) -> None:
        """Queue (1, F, ...) per-frame inputs: audio tokens, or action ids for an action-clocked model."""
        now = time.perf_counter()
        for i in range(items.shape[1]):
            self._tokens.append(items[0, i])
            self._arrival.append(now)

    @property
    def silence_filled(self) -> int:
        """Samples of silence ``advance`` filled in for late audio, over all streams."""
        return sum(self._audio.silence_filled) if self._audio is not None else 0

    def advance(self, now: float | None = None) -> None:
        """Keep a live session on the clock: where an audio stream is more than ``grace_seconds`` behind
        ``now`` (seconds since the session started; default: the wall clock), the missing part is taken as
        silence, so the avatar goes on (and goes quiet) when the speaker stops or the connection stalls.
        Audio that arrives later follows the silence (a server delays the sound track by the session's
        latency)."""
        if self._audio is None:  # action-clocked: frames wait for their actions
            return
        if now is None:
            now = time.perf_counter() - self._start
        self._take(self._audio.advance(now - self.config.grace_seconds))

    def push_text(self, instruction: str | None, span: tuple[float, float] | None = None) -> None:
        """The instruction (or caption) for the frames generated from now on; None or "" clears it. With
        ``span`` = (start, end) in seconds of video time it applies to the frames shown in [start, end)
        instead, on top of (and ahead of) the running one; spans may be pushed ahead of time."""
        if instruction is not None and not isinstance(instruction, str):
            raise ValueError(f"an instruction must be a string or None, got {type(instruction).__name__}")
        if instruction and not self._takes_text:
            raise ValueError("this model takes no text condition")
        if span is None:
            self._text = instruction or None
            return
        start, end = (float(v) for v in span)
        if not (np.isfinite(start) and np.isfinite(end) and 0 <= start < end):
            raise ValueError(f"an instruction span must be 0 <= start < end seconds, got {span}")
        if instruction:
            self._spans.append((start, end, instruction))

    def _text_at(self, seconds: float) -> str | None:
        """The instruction of the frame shown at ``seconds``: the latest span covering it, else the running one."""
        for start, end, text in reversed(self._spans):
            if start <= seconds < end:
                return text
        return self._text

    def push_pose(self, rotation: np.ndarray | None, keypoints: np.ndarray | None = None) -> None:
        """The head pose for the frames generated from now on: ``rotation`` (3,) yaw/pitch/roll in degrees
        and ``keypoints`` (K, 2) in [0, 1] (DESIGN.md's named set); None clears it (the model then gets its
        null pose tokens and moves the head by itself)."""
        if rotation is None:
            self._pose = None
            return
        if "pose" not in self.pipe.model.config.conditions.modalities:
            raise ValueError("this model takes no pose condition")
        rot = np.asarray(rotation, dtype=np.float32)
        kp = np.asarray(keypoints, dtype=np.float32) if keypoints is not None else None
        if rot.shape != (3,) or kp is None or kp.shape != (NUM_KEYPOINTS, 2):
            got = None if kp is None else kp.shape
            raise ValueError(
                f"a pose is rotation (3,) in degrees and keypoints ({NUM_KEYPOINTS}, 2); got {rot.shape}, {got}"
            )
        if not (np.isfinite(rot).all() and np.isfinite(kp).all()):
            raise ValueError("pose values must be finite")
        self._pose = (torch.from_numpy(rot)[None, None], torch.from_numpy(kp)[None, None])

    def flush(self) -> None:
        """End of the audio: the streams are padded with silence to the longest and then past its
        look-ahead, so every pushed 40 ms gets a frame."""
        if self._audio is not None:
            self._take(self._audio.flush())
        self._flushed = True

    # -- output --------------------------------------------------------------------------------------
    def frames(self) -> Iterator[tuple[float, np.ndarray]]:
        """Every frame computable from the input so far, in order: ``(timestamp in s, uint8 H x W x 3)``."""
        if self._pending_reference:
            self._pending_reference = False
            yield 0.0, self._decode(self.reference)
            self.frames_out = 1
        while self._inside or len(self._tokens) >= self._chunk or (self._flushed and self._tokens):
            yield self.frames_out / self.fps, self._next_frame()

    @torch.no_grad()
    def _next_frame(self) -> np.ndarray:
        cfg = self.config
        t0 = time.perf_counter()
        guidance = cfg.lip_strength if cfg.guided else None
        if self._inside:  # inside a chunk: its conditions went in with its first frame
            cond, ready = None, self._chunk_ready
            self._inside -= 1
        else:
            cond, ready = self._chunk_conditions()
        self._sync()
        t1 = time.perf_counter()
        self._step(self._state, cond, guidance=guidance)
        anchor_step(
            self._state, self.reference, self.pipe.autoencoder.config.mouth_channels, cfg.anchor or 0.0
        )
        latent = self._state.latent[0]
        index = self._state.frame
        self._sync()
        t2 = time.perf_counter()
        self._roll(cond, latent)
        self._sync()
        t3 = time.perf_counter()
        frame = self._decode(latent)
        done = time.perf_counter()
        stages = {
            "conditions": t1 - t0,
            "backbone+head": t2 - t1,
            "window roll": t3 - t2,
            "decode": done - t3,
        }
        self.timings.append(FrameTiming(index, ready, done, stages))
        self.frames_out += 1
        return frame

    def _chunk_conditions(self) -> tuple[torch.Tensor, float]:
        """cond(k+1 .. k+n) (rows, n, k, D) for the chunk the next frame opens (n = 1: one frame), and when
        its last audio arrived. At the end of the input a last partial chunk is padded with zeros, as the
        offline run and the training layout pad conditions past the clip."""
        model, n, k = self.pipe.model, self._chunk, self._state.frame
        take = min(n, len(self._tokens))
        inputs = torch.stack([self._tokens.popleft() for _ in range(take)])[None]
        audio, action = (inputs, None) if self._clock == "audio" else (None, inputs)
        if self._clock == "audio" and self._num_actions:
            action = torch.full((1, take), self._action, dtype=torch.long)
        ready = [self._arrival.popleft() for _ in range(take)][-1]
        self._inside = take - 1
        self._chunk_ready = ready
        texts = [[self._text_at((k + 1 + i) / self.fps) for i in range(take)]] if self._takes_text else None
        self._spans = [sp for sp in self._spans if sp[1] > k / self.fps]  # bounded
        pose, keypoints = self._pose if self._pose is not None else (None, None)
        before = self._pose_before or (None, None)  # for a pose encoder that reads the change of pose
        if pose is not None and keypoints is not None:
            pose, keypoints = pose.expand(1, take, -1), keypoints.expand(1, take, -1, -1)
        self._pose_before = None if self._pose is None else (self._pose[0][:, 0], self._pose[1][:, 0])
        batch = ConditionBatch(audio_tokens=audio, text=texts, pose=pose, keypoints=keypoints, action=action,
                               pose_previous=before[0], keypoints_previous=before[1],
                               batch_size=1, num_frames=take)  # fmt: skip
        cond = model.encode_conditions(batch)
        if self.config.guided:  # row 1: the same frames without the driving stream (null audio or actions)
            unguided = replace(batch, audio_tokens=None, action=action if self._clock == "audio" else None)
            cond = torch.cat([cond, model.encode_conditions(unguided)])
        if take < n:
            cond = torch.cat([cond, cond.new_zeros(cond.shape[0], n - take, *cond.shape[2:])], dim=1)
        return cond, ready

    def _roll(self, cond: torch.Tensor | None, latent: torch.Tensor) -> None:
        """Keep the window bounded (see ``rolling.py``): n = 1 by frames, chunked models by whole chunks."""
        model, cfg, n = self.pipe.model, self.config, self._chunk
        if n == 1:
            assert cond is not None
            self._kept.append(KeptFrame(self._state.frame, cond[:, 0], latent))
            if len(self._kept) > cfg.window_frames:
                self._kept = self._kept[cfg.evict_frames :]
                if cfg.roll == "rotate":
                    evict_frames(model, self._state, cfg.evict_frames)
                else:
                    self._state = rebuild_state(model, self.reference, self._kept, cfg.seed)
            return
        if self._state.frame % n == 0:  # the cache holds whole chunks
            mc = model.config
            chunks = self._state.cache.length // (n * (mc.cond_tokens_per_frame + mc.tokens_per_frame))
            if (chunks - 1) * n > cfg.window_frames:
                evict_frames(model, self._state, cfg.evict_frames)

    def _decode(self, tokens: torch.Tensor) -> np.ndarray:
        return decode_frame(self.pipe.autoencoder, tokens, self._decode_cache)
