"""Counterfactual frame triples for teaching an autoencoder one mouth code shared by every face.

A triple is (face, target, donor): ``face`` is identity A in a random state; ``donor`` is another identity
B in another random state (another head pose, gaze, expression); ``target`` is A in the face's state with
only the mouth controls (opening, width, rounding) taken from the donor. An autoencoder that must decode
``target`` from the face's latent with its mouth channels replaced by the donor's learns mouth channels
that mean the same mouth on every face and in every pose, and other channels that carry no mouth — which
the renderer can show it, because it can draw the same face with any mouth. Real video has no such pairs.

With ``references`` the sampler also draws what a reference-reading decoder reads (``reference.py``): each
item gets two more frames, the face's and the donor's identity in a typical state of their own (another
pose, gaze and mouth), as the picture a session animates would be.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from avatarlm.data.face import FaceState
from avatarlm.data.render_sampler import F, RenderedClipSampler, random_state_vector

MOUTH_CONTROLS: tuple[str, ...] = ("mouth_open", "mouth_width", "mouth_round")
_MOUTH = [F[name] for name in MOUTH_CONTROLS]


class MouthSwapSampler:
    """Draws uint8 (B, 3, size, size, 3) batches: frame 0 the face, 1 the target, 2 the donor; with
    ``references`` (B, 5, ...): 3 the face's reference, 4 the donor's.

    The donor's identity differs from the face's whenever ``identity_seeds`` holds two or more. The
    donor's mouth is open (≥ 0.15) half of the time and the face's own mouth is drawn independently, so
    most targets show a mouth different from the face's. The output depends only on the ``rng`` passed.
    """

    def __init__(
        self,
        identity_seeds: Sequence[int],
        size: int = 128,
        wide_fraction: float = 0.4,
        references: bool = False,
    ) -> None:
        self.faces = RenderedClipSampler(identity_seeds, size=size, wide_fraction=wide_fraction)
        self.size = self.faces.size
        self.references = references

    def _identity(self, rng: np.random.Generator, avoid: int | None = None) -> int:
        seeds = self.faces.identity_seeds
        while True:
            seed = seeds[int(rng.integers(len(seeds)))]
            if seed != avoid or len(set(seeds)) < 2:
                return seed

    def draw(
        self, rng: np.random.Generator, batch: int
    ) -> tuple[np.ndarray, list[tuple[int, int]], list[FaceState]]:
        """Frames (B, 3, H, W, 3) uint8 (B, 5, ... with references), the (face, donor) identity seeds and
        the target's face state of every item."""
        if batch < 1:
            raise ValueError(f"batch must be at least 1, got {batch}")
        frames = 5 if self.references else 3
        out = np.empty((batch, frames, self.size, self.size, 3), dtype=np.uint8)
        pairs: list[tuple[int, int]] = []
        targets: list[FaceState] = []
        wide = self.faces.wide_fraction
        for b in range(batch):
            face_id = self._identity(rng)
            donor_id = self._identity(rng, avoid=face_id)
            face, donor = random_state_vector(rng, wide), random_state_vector(rng, wide)
            if rng.random() < 0.5:
                donor[_MOUTH] = (rng.uniform(0.15, 1.0), rng.uniform(-1.0, 1.0), rng.uniform(0.0, 1.0))
            target = face.copy()
            target[_MOUTH] = donor[_MOUTH]
            face_renderer = self.faces.renderer(face_id)
            out[b, 0] = face_renderer.render(FaceState.from_vector(face))
            targets.append(FaceState.from_vector(target))
            out[b, 1] = face_renderer.render(targets[-1])
            donor_renderer = self.faces.renderer(donor_id)
            out[b, 2] = donor_renderer.render(FaceState.from_vector(donor))
            if self.references:  # a typical state of each identity: the picture a session would animate
                for k, renderer in ((3, face_renderer), (4, donor_renderer)):
                    out[b, k] = renderer.render(FaceState.from_vector(random_state_vector(rng, 0.0)))
            pairs.append((face_id, donor_id))
        return out, pairs, targets

    def __call__(self, rng: np.random.Generator, batch: int = 8) -> np.ndarray:
        """The uint8 triples (B, 3, H, W, 3) alone, the call signature of the other frame samplers."""
        return self.draw(rng, batch)[0]
