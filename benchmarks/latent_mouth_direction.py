"""How identity-independent is "open the mouth" in an autoencoder's latent space?

For N unseen (test-split) identities, render the same neutral face with the mouth closed and open (0.9),
encode both, and compare the latent change across identities (cosine of the flattened, normalised
(channels x tokens) deltas), and for one identity across head yaw -20..20 degrees. A high cosine means one
latent direction opens every mouth, which an AR model can learn from a few hundred faces; a low one means
the mapping from sound to latent change depends on the face, and it must be learned per face.

For models with mouth channels (``avatarlm train ae --mouth-channels K``) it also reports the share of the
change that falls in those channels, their cosine alone, and the mouth swap on held-out triples: the
mouth-box PSNR of the face decoded with the donor's mouth channels against the target (the face wearing
the donor's mouth), beside the face decoded unchanged (what ignoring the donor gives) and the target's own
reconstruction (the ceiling).

    python benchmarks/latent_mouth_direction.py --model bundled=models/tiny/ae --model mouth4=runs/ae_mouth4/model
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from avatarlm.autoencoder.model import DCAutoencoder
from avatarlm.autoencoder.mouth_swap import swap_mouth
from avatarlm.data.face import FaceState
from avatarlm.data.identity import Identity
from avatarlm.data.mouth_swap import MouthSwapSampler
from avatarlm.data.render import Renderer
from avatarlm.data.splits import split_identities
from avatarlm.eval.image_metrics import box_psnr
from avatarlm.trainer.ae import clips_to_tensor


def mean_off_diagonal_cosine(rows: np.ndarray) -> tuple[float, float]:
    unit = rows / np.linalg.norm(rows, axis=1, keepdims=True).clip(1e-12)
    cos = (unit @ unit.T)[~np.eye(len(rows), dtype=bool)]
    return float(cos.mean()), float(np.percentile(cos, 10))


def to_uint8(x: torch.Tensor) -> np.ndarray:
    return x.permute(0, 2, 3, 1).add(1).mul(127.5).round().clamp(0, 255).byte().numpy()


@torch.no_grad()
def direction_figures(ae: DCAutoencoder, seeds: list[int]) -> dict[str, float]:
    size, k = ae.config.image_height, ae.config.mouth_channels

    def latent(image: np.ndarray) -> np.ndarray:
        return ae.encode(clips_to_tensor(image[None, None], size, size))[0, 0].numpy()  # (C, h, w)

    deltas = []
    for seed in seeds:
        renderer = Renderer(Identity.from_seed(seed), size, size)
        deltas.append(
            latent(renderer.render(FaceState(mouth_open=0.9))) - latent(renderer.render(FaceState()))
        )
    renderer = Renderer(Identity.from_seed(seeds[0]), size, size)
    yaw = [
        latent(renderer.render(FaceState(mouth_open=0.9, yaw=y))) - latent(renderer.render(FaceState(yaw=y)))
        for y in (-20, -10, 0, 10, 20)
    ]
    d = np.stack(deltas)
    out = {"cos": mean_off_diagonal_cosine(d.reshape(len(d), -1))[0]}
    out["cos_p10"] = mean_off_diagonal_cosine(d.reshape(len(d), -1))[1]
    out["yaw_cos"] = mean_off_diagonal_cosine(np.stack(yaw).reshape(len(yaw), -1))[0]
    if k:
        out["mouth_share"] = float((d[:, :k] ** 2).sum() / (d**2).sum())
        out["mouth_cos"] = mean_off_diagonal_cosine(d[:, :k].reshape(len(d), -1))[0]
    return out


@torch.no_grad()
def swap_figures(ae: DCAutoencoder, seeds: list[int], triples: int) -> dict[str, float]:
    size, k = ae.config.image_height, ae.config.mouth_channels
    sampler = MouthSwapSampler(seeds, size=size)
    frames, pairs, targets = sampler.draw(np.random.default_rng(7), triples)
    z = ae.encode(clips_to_tensor(frames.reshape(-1, 1, size, size, 3), size, size)).view(
        triples, 3, -1, *ae.latent_shape[1:]
    )
    face, target, donor = z.unbind(1)
    decoded = {
        "swap": ae.decode(swap_mouth(face, donor, k)[:, None]) if k else None,
        "face": ae.decode(face[:, None]),
        "target": ae.decode(target[:, None]),
    }
    out: dict[str, float] = {}
    for name, rec in decoded.items():
        if rec is None:
            continue
        images = to_uint8(rec[:, 0])
        scores = []
        for i, ((face_id, _), state) in enumerate(zip(pairs, targets, strict=True)):
            scores.append(box_psnr(images[i], frames[i, 1], sampler.faces.renderer(face_id).mouth_box(state)))
        out[f"swap_psnr_{name}"] = float(np.mean(scores))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", action="append", default=None, metavar="NAME=FOLDER")
    parser.add_argument("--identities", type=int, default=40)
    parser.add_argument("--triples", type=int, default=128)
    args = parser.parse_args()
    torch.set_num_threads(1)  # figures, not timings: one thread shares the machine best
    models = args.model or ["bundled=models/tiny/ae"]
    seeds = split_identities("test", args.identities)
    rows = []
    for spec in models:
        name, _, folder = spec.rpartition("=")
        ae = DCAutoencoder.from_pretrained(folder).eval()
        row = {"name": name or folder, "k": ae.config.mouth_channels}
        row |= direction_figures(ae, seeds)
        row |= swap_figures(
            ae, split_identities("test", 4 * args.identities)[args.identities :], args.triples
        )
        rows.append(row)
    print(
        f"mouth-open latent change over {args.identities} unseen identities; mouth swap on {args.triples} "
        "held-out triples (mouth-box PSNR against the target, dB)"
    )
    columns = {
        "model": "name",
        "mouth ch": "k",
        "cosine": "cos",
        "cosine p10": "cos_p10",
        "one face, yaw ±20°": "yaw_cos",
        "mouth-ch share": "mouth_share",
        "mouth-ch cosine": "mouth_cos",
        "swap": "swap_psnr_swap",
        "face unchanged": "swap_psnr_face",
        "target recon": "swap_psnr_target",
    }
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for r in rows:
        cells = []
        for key in columns.values():
            value = r.get(key, "—")
            cells.append(f"{value:.2f}" if isinstance(value, float) and key.startswith("swap") else
                         f"{value:.3f}" if isinstance(value, float) else str(value))  # fmt: skip
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
