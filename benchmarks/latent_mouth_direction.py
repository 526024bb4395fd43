"""How identity-independent is "open the mouth" in the autoencoder's latent space?

For N unseen identities, render the same neutral face with the mouth closed and open (0.9), encode both,
and compare the latent change across identities (cosine of the flattened (tokens x channels) deltas), and
for one identity across head yaw -20..20 degrees; pixel-space deltas for reference. A high cosine means one
latent direction opens every mouth, which an AR model can learn from a few hundred faces; a low one means
the mapping from sound to latent change depends on the face, and it must be learned per face.

    python benchmarks/latent_mouth_direction.py [--ae models/tiny/ae] [--identities 40]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from avatarlm.autoencoder.model import DCAutoencoder
from avatarlm.data.face import FaceState
from avatarlm.data.identity import Identity
from avatarlm.data.render import Renderer


def mean_off_diagonal_cosine(rows: np.ndarray) -> tuple[float, float]:
    unit = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    cos = (unit @ unit.T)[~np.eye(len(rows), dtype=bool)]
    return float(cos.mean()), float(np.percentile(cos, 10))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ae", default="models/tiny/ae")
    parser.add_argument("--identities", type=int, default=40)
    args = parser.parse_args()
    torch.set_num_threads(1)
    ae = DCAutoencoder.from_pretrained(args.ae).eval()
    size = ae.config.image_height

    @torch.no_grad()
    def latent(image: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(image).permute(2, 0, 1)[None, None].float() / 127.5 - 1
        return ae.encode(x).flatten().numpy()

    seeds = np.random.default_rng(0).integers(0, 10**6, args.identities)
    latent_deltas, pixel_deltas = [], []
    for seed in seeds:
        renderer = Renderer(Identity.from_seed(int(seed)), size, size)
        closed, opened = (
            renderer.render(FaceState(mouth_open=0.0)),
            renderer.render(FaceState(mouth_open=0.9)),
        )
        latent_deltas.append(latent(opened) - latent(closed))
        pixel_deltas.append(opened.astype(np.float64).ravel() - closed.ravel())
    renderer = Renderer(Identity.from_seed(int(seeds[0])), size, size)
    yaw_deltas = [
        latent(renderer.render(FaceState(mouth_open=0.9, yaw=y))) - latent(renderer.render(FaceState(yaw=y)))
        for y in (-20, -10, 0, 10, 20)
    ]
    print(f"mouth-open direction, cosine between {args.identities} unseen identities (mean, p10):")
    print("  latent  {:.3f}  {:.3f}".format(*mean_off_diagonal_cosine(np.stack(latent_deltas))))
    print("  pixels  {:.3f}  {:.3f}".format(*mean_off_diagonal_cosine(np.stack(pixel_deltas))))
    print(
        "one identity, yaw -20..20 degrees: latent {:.3f}  {:.3f}".format(
            *mean_off_diagonal_cosine(np.stack(yaw_deltas))
        )
    )


if __name__ == "__main__":
    main()
