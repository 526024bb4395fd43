"""Autoencoder training frames rendered on the fly: random identities and random face states, no dataset.

Unlike :class:`avatarlm.data.frame_sampler.FrameSampler` it needs no shards on disk (and no audio stack),
and every batch shows new faces and new states, so a long run cannot overfit a fixed set of identities.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from numbers import Integral

import numpy as np

from avatarlm.data.face import EXPRESSIONS, FACE_STATE_FIELDS, FaceState
from avatarlm.data.identity import Identity
from avatarlm.data.render import Renderer

F = {name: i for i, name in enumerate(FACE_STATE_FIELDS)}

# (low, high) of every continuous control: the limits the synthetic clips are clipped to.
LIMITS: dict[str, tuple[float, float]] = {
    "yaw": (-30.0, 30.0),
    "pitch": (-25.0, 25.0),
    "roll": (-20.0, 20.0),
    "gaze_x": (-1.0, 1.0),
    "gaze_y": (-1.0, 1.0),
    "blink": (0.0, 1.0),
    "brow_raise": (-1.0, 1.0),
    "mouth_open": (0.0, 1.0),
    "mouth_width": (-1.0, 1.0),
    "mouth_round": (0.0, 1.0),
    "expression_strength": (0.0, 1.0),
}
# The "wide" draw: uniform over these (slightly inside LIMITS for the head pose, as in the clips).
WIDE: dict[str, tuple[float, float]] = {
    **LIMITS,
    "pitch": (-20.0, 15.0),
    "roll": (-15.0, 15.0),
}
# The "typical" draw: gaussian (mean, std) like a talking or listening avatar's statistics.
TYPICAL: dict[str, tuple[float, float]] = {
    "yaw": (0.0, 8.0),
    "pitch": (-1.0, 4.0),
    "roll": (0.0, 4.0),
    "gaze_x": (0.0, 0.4),
    "gaze_y": (0.0, 0.25),
    "brow_raise": (0.05, 0.3),
}
# Largest change per frame of each control along a window (a smooth trajectory).
MAX_SPEED: dict[str, float] = {
    "yaw": 2.0,
    "pitch": 1.5,
    "roll": 1.0,
    "gaze_x": 0.1,
    "gaze_y": 0.06,
    "blink": 0.25,
    "brow_raise": 0.08,
    "mouth_open": 0.12,
    "mouth_width": 0.1,
    "mouth_round": 0.1,
    "expression_strength": 0.05,
}


def random_state_vector(rng: np.random.Generator, wide_fraction: float = 0.4) -> np.ndarray:
    """One random face state as a vector (FACE_STATE_FIELDS order).

    With probability ``wide_fraction`` every control is uniform over its range (extreme poses, frowns,
    any expression); otherwise pose, gaze and brows are gaussian around rest like the clips' statistics,
    mostly open eyes, a closed mouth 40 % of the time and a mild expression.
    """
    v = np.zeros(len(FACE_STATE_FIELDS), dtype=np.float64)
    if rng.random() < wide_fraction:
        for name, (lo, hi) in WIDE.items():
            v[F[name]] = rng.uniform(lo, hi)
        v[F["expression"]] = rng.integers(len(EXPRESSIONS))
        return v
    for name, (mean, std) in TYPICAL.items():
        v[F[name]] = rng.normal(mean, std)
    v[F["blink"]] = rng.uniform(0.0, 1.0) if rng.random() < 0.2 else 0.0
    if rng.random() >= 0.4:
        v[F["mouth_open"]] = rng.uniform(0.0, 0.85)
        v[F["mouth_width"]] = rng.uniform(-0.7, 0.7)
        v[F["mouth_round"]] = rng.uniform(0.0, 0.95)
    v[F["expression"]] = rng.choice([0, 0, 1, 1, 2, 3, 4])
    v[F["expression_strength"]] = rng.uniform(0.0, 0.9) if v[F["expression"]] else 0.0
    return clip_to_limits(v)


def clip_to_limits(v: np.ndarray) -> np.ndarray:
    """Clip the continuous controls of state vectors (..., n_fields) to LIMITS, in place; returns ``v``."""
    for name, (lo, hi) in LIMITS.items():
        np.clip(v[..., F[name]], lo, hi, out=v[..., F[name]])
    return v


def random_trajectory(rng: np.random.Generator, window: int, wide_fraction: float = 0.4) -> np.ndarray:
    """(window, n_fields) state vectors: a random start moving at a constant random speed per control
    (at most MAX_SPEED per frame), clipped to the limits; the expression stays fixed."""
    if window < 1:
        raise ValueError(f"window must be at least 1 frame, got {window}")
    start = random_state_vector(rng, wide_fraction)
    speed = np.zeros_like(start)
    for name, limit in MAX_SPEED.items():
        speed[F[name]] = rng.uniform(-limit, limit)
    t = np.arange(window, dtype=np.float64)[:, None]
    return clip_to_limits(start[None, :] + t * speed[None, :])


class RenderedClipSampler:
    """Draws (B, T, size, size, 3) uint8 batches of freshly rendered frames of the given identities.

    Each batch item picks an identity seed uniformly from ``identity_seeds`` and renders ``window``
    frames of one smooth random state trajectory (a single random state when ``window`` is 1).
    Renderers are cached per identity (least recently used beyond ``cache_size``). The output depends
    only on the ``rng`` passed to each call.
    """

    def __init__(
        self,
        identity_seeds: Sequence[int],
        size: int = 128,
        window: int = 1,
        wide_fraction: float = 0.4,
        cache_size: int = 512,
    ) -> None:
        seeds = list(identity_seeds)
        if not seeds:
            raise ValueError("identity_seeds must name at least one identity")
        for s in seeds:
            if isinstance(s, bool) or not isinstance(s, Integral) or s < 0:
                raise ValueError(f"identity seeds must be non-negative ints, got {s!r}")
        if isinstance(size, bool) or not isinstance(size, Integral) or size < 16:
            raise ValueError(f"size must be an int of at least 16 pixels, got {size!r}")
        if window < 1:
            raise ValueError(f"window must be at least 1 frame, got {window}")
        if not 0.0 <= wide_fraction <= 1.0:
            raise ValueError(f"wide_fraction must be in [0, 1], got {wide_fraction}")
        if cache_size < 1:
            raise ValueError(f"cache_size must be at least 1, got {cache_size}")
        self.identity_seeds: list[int] = [int(s) for s in seeds]
        self.size: int = int(size)
        self.window: int = int(window)
        self.wide_fraction: float = float(wide_fraction)
        self.cache_size: int = int(cache_size)
        self._renderers: OrderedDict[int, Renderer] = OrderedDict()

    def renderer(self, seed: int) -> Renderer:
        """The (cached) renderer of identity ``seed`` at this sampler's size."""
        r = self._renderers.get(seed)
        if r is None:
            r = Renderer(Identity.from_seed(seed), self.size, self.size)
            self._renderers[seed] = r
            if len(self._renderers) > self.cache_size:
                self._renderers.popitem(last=False)
        else:
            self._renderers.move_to_end(seed)
        return r

    def draw(
        self, rng: np.random.Generator, batch: int
    ) -> tuple[np.ndarray, list[int], list[list[FaceState]]]:
        """Frames (B, T, H, W, 3) uint8 with the identity seed and the face states of every item."""
        if batch < 1:
            raise ValueError(f"batch must be at least 1, got {batch}")
        out = np.empty((batch, self.window, self.size, self.size, 3), dtype=np.uint8)
        seeds: list[int] = []
        states: list[list[FaceState]] = []
        for b in range(batch):
            seed = self.identity_seeds[int(rng.integers(len(self.identity_seeds)))]
            renderer = self.renderer(seed)
            track = [
                FaceState.from_vector(v) for v in random_trajectory(rng, self.window, self.wide_fraction)
            ]
            for t, state in enumerate(track):
                out[b, t] = renderer.render(state)
            seeds.append(seed)
            states.append(track)
        return out, seeds, states

    def __call__(self, rng: np.random.Generator, batch: int = 8) -> np.ndarray:
        """A uint8 batch (B, T, H, W, 3), the same call signature as FrameSampler."""
        return self.draw(rng, batch)[0]
