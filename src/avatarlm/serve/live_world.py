"""One connection's world model: a game played from the keyboard, frame by frame on the wall clock.

The session starts from the real game's first frame of an episode (its seed is the page's "game seed"),
then every frame that falls due at the model's rate takes the action the player holds — a key held down
on the page, ``noop`` when none — through :meth:`StreamingSession.push_action`, as ``avatarlm play``
replays a list. Same interface as :class:`~avatarlm.serve.live_session.LiveSession` (``handle``,
``hear``, ``tick``, ``ready_message``, ``stats``), so the server runs either; frames go out as JPEG with
an empty voice packet (a world model is silent). When generation falls behind the clock the clock waits
(``max_lag``), so held keys act on the frames that come next, not on a backlog.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from avatarlm.apps.play import check_action_count, is_world_model
from avatarlm.data.world_envs import env_class, make_env, require_package
from avatarlm.pipeline.folder import Pipeline
from avatarlm.pipeline.generate import fit_image
from avatarlm.pipeline.session import SessionConfig, StreamingSession
from avatarlm.pipeline.step_batcher import StepBatcher
from avatarlm.serve import protocol as P
from avatarlm.serve.live_session import LiveStats, VideoClock, model_facts


def check_world(pipe: Pipeline, env: str | None) -> None:
    """A world model needs the game it learned (for its first frames); a talking-head model takes none."""
    if not is_world_model(pipe):
        if env is not None:
            raise ValueError("--env is for world models; this model is a talking head (it hears audio)")
        return
    if env is None:
        raise ValueError("this is a world model: name its game with --env crafter or --env vizdoom")
    require_package(env)
    check_action_count(pipe, env, len(env_class(env).action_names))
    size = pipe.autoencoder.config
    if size.image_height != size.image_width:
        raise ValueError(
            f"the games render square frames; the model's are {size.image_width}x{size.image_height}"
        )


class LiveWorld:
    """``handle(command)`` as messages arrive (``action`` holds an action, ``reset`` starts another
    episode); ``tick(now)`` -> the frames due by then."""

    def __init__(
        self,
        pipe: Pipeline,
        env: str,
        seed: int = 0,
        config: SessionConfig | None = None,
        jpeg_quality: int = 80,
        max_lag: float = 0.25,
        batcher: StepBatcher | None = None,
    ) -> None:
        check_world(pipe, env)
        self.pipe, self.env, self.config = pipe, env, config or SessionConfig()
        self.jpeg_quality, self.batcher = jpeg_quality, batcher
        self.fps = pipe.fps
        self.max_lag = max_lag + pipe.model.config.chunk_size / self.fps
        self.action_names = env_class(env).action_names
        self.noop = self.action_names.index("noop")
        self.stats = LiveStats()
        self._restart(self._first_frame(seed))

    def _first_frame(self, seed: int) -> np.ndarray:
        game = make_env(self.env, self.pipe.autoencoder.config.image_height, self.fps)
        try:
            frame, _ = game.reset(seed)
        finally:
            game.close()
        return frame

    def _restart(self, frame: np.ndarray) -> None:
        self.session = StreamingSession(self.pipe, reference=frame, config=self.config, batcher=self.batcher)
        self.clock = VideoClock(self.fps, self.max_lag, self.stats)
        self._pushed = 0  # frames whose action went in
        self.held = self.noop

    def ready_message(self) -> dict[str, Any]:
        return {
            "type": "ready",
            **model_facts(self.pipe),
            "env": self.env,
            "actions": list(self.action_names),
        }

    # -- input ---------------------------------------------------------------------------------------
    def hear(self, data: bytes) -> None:
        raise P.ProtocolError("a world model hears nothing: send actions")

    def handle(self, command: P.Command) -> None:
        """Apply one command; a refused one raises ProtocolError with a message for the client."""
        if isinstance(command, P.Action):
            if not 0 <= command.id < len(self.action_names):
                raise P.ProtocolError(f"action.id must be in 0..{len(self.action_names) - 1} ({self.env})")
            self.held = command.id
        elif isinstance(command, P.Reset):
            if command.image is not None:
                c = self.pipe.autoencoder.config
                self._restart(fit_image(P.decode_image(command.image), c.image_height, c.image_width))
            else:
                self._restart(self._first_frame(int(command.identity or 0)))
        else:
            raise P.ProtocolError("a world model is played with actions (and reset for a new game)")

    # -- output --------------------------------------------------------------------------------------
    def tick(self, now: float | None = None) -> list[bytes | dict[str, Any]]:
        """Push the held action for every frame due by ``now`` (seconds since the session's start;
        default: the wall clock) and return the frames it completes."""
        now = self.clock.video_time(self.session.frames_out, now)
        due = int(now * self.fps) - self._pushed
        if due > 0:
            self.session.push_action(self.held, frames=due)
            self._pushed += due
        return list(self.clock.frame_messages(self.session, self.jpeg_quality, lambda: b""))
