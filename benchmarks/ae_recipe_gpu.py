"""Autoencoder recipes on a CUDA GPU: train on freshly rendered frames, score on held-out identities.

Separate commands, so that several recipes can train side by side on one GPU:

    python benchmarks/ae_recipe_gpu.py bank --out /tmp/bank --identities 6000 --frames 144000
    python benchmarks/ae_recipe_gpu.py train --bank /tmp/bank --recipe enc_deep --seconds 360 --out runs/r
    python benchmarks/ae_recipe_gpu.py eval --bank /tmp/bank --model models/tiny/ae --out runs/bundled
    python benchmarks/ae_recipe_gpu.py table runs/r runs/bundled --copy-best runs/best

``bank`` renders training frames of train-split identities (uint8, one .npy) and two held-out sets of
test-split identities (typical states like the clips', and wide ones over the full control ranges) with
their mouth boxes. ``train`` keeps the bank on the GPU, measures its own step time, picks the number of
steps that fits ``--seconds`` and trains with ``train_autoencoder``; ``--wait-for N`` makes N recipes
started together time their steps only once all of them are training. Scores are the mean per-frame PSNR
of the whole frame and of the mouth box (``box_psnr``: padded by 4 pixels, as in ``avatarlm.eval.ae_quality``),
reconstructing each frame on its own in fp32.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from multiprocessing import Pool
from pathlib import Path
from typing import Any

import numpy as np
import torch

from avatarlm.autoencoder.model import DCAutoencoder
from avatarlm.config import AutoencoderConfig
from avatarlm.data.render_sampler import RenderedClipSampler
from avatarlm.data.splits import identity_split
from avatarlm.eval.image_metrics import box_psnr, psnr
from avatarlm.trainer.ae import clips_to_tensor, train_autoencoder
from avatarlm.trainer.ae_config import AETrainConfig

DEEP_ENCODER = {"encoder_depths": (2, 2, 3, 4, 4)}
# name -> autoencoder overrides of the "tiny" preset, AETrainConfig overrides, batch, final lr fraction
RECIPES: dict[str, dict[str, Any]] = {
    "tiny_b16": dict(ae={}, train={}, batch=16, final=None),
    "tiny_b128_cos": dict(ae={}, train=dict(lr=8e-4, warmup_steps=500), batch=128, final=0.02),
    "enc_deep": dict(ae=DEEP_ENCODER, train=dict(lr=8e-4, warmup_steps=500), batch=128, final=0.02),
    "enc_deep_ssim01": dict(
        ae=DEEP_ENCODER, train=dict(lr=8e-4, warmup_steps=500, ssim_weight=0.1), batch=128, final=0.02
    ),
    "enc_deep_dec8": dict(
        ae={**DEEP_ENCODER, "decoder_depths": (1, 1, 1, 2, 2)},
        train=dict(lr=8e-4, warmup_steps=500),
        batch=128,
        final=0.02,
    ),
}


def split_seeds(split: str, count: int, start: int = 0) -> list[int]:
    """The first ``count`` identity seeds from ``start`` on that belong to ``split``."""
    out, seed = [], start
    while len(out) < count:
        if identity_split(seed) == split:
            out.append(seed)
        seed += 1
    return out


def _render_chunk(job: tuple[list[int], int, int, int, float]) -> tuple[np.ndarray, np.ndarray]:
    seeds, frames, size, seed, wide = job
    sampler = RenderedClipSampler(seeds, size=size, wide_fraction=wide)
    x, ids, states = sampler.draw(np.random.default_rng(seed), frames)
    boxes = np.array([sampler.renderer(i).mouth_box(s[0]) for i, s in zip(ids, states, strict=True)])
    return x[:, 0], boxes


def render(seeds: list[int], frames: int, size: int, wide: float, workers: int, seed: int) -> tuple:
    """Frames (N, H, W, 3) and mouth boxes (N, 4) rendered in parallel; each job draws from its own slice
    of ``seeds`` so that its renderer cache holds all of them."""
    n_jobs = max(1, min(len(seeds), frames, 4 * workers))
    seed_parts = np.array_split(np.array(seeds), n_jobs)
    frame_parts = np.array_split(np.arange(frames), n_jobs)
    jobs = [
        ([int(v) for v in ids], len(f), size, seed * 1_000_003 + i, wide)
        for i, (ids, f) in enumerate(zip(seed_parts, frame_parts, strict=True))
    ]
    with Pool(workers) as pool:
        parts = pool.map(_render_chunk, jobs)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def cmd_bank(args: argparse.Namespace) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    train = split_seeds("train", args.identities)
    frames, _ = render(train, args.frames, args.size, args.wide, args.workers, seed=1)
    np.save(out / "train.npy", frames)
    held = split_seeds("test", args.eval_identities, start=10_000_000)
    for name, wide in (("typical", 0.0), ("wide", 1.0)):
        x, boxes = render(held, args.eval_frames, args.size, wide, args.workers, seed=2 if wide else 3)
        np.savez(out / f"eval_{name}.npz", frames=x, boxes=boxes)
    meta = dict(train_identities=len(train), train_frames=len(frames), eval_identities=held[:3] + ["..."])
    (out / "bank.json").write_text(json.dumps(meta))
    print(f"bank: {len(frames)} frames of {len(train)} identities in {time.perf_counter() - t0:.0f} s")


@torch.no_grad()
def evaluate(model: DCAutoencoder, bank: Path, device: torch.device) -> dict[str, float]:
    """Mean per-frame PSNR and mouth PSNR on both held-out sets, fp32, each frame on its own."""
    model.eval()
    c = model.config
    result: dict[str, float] = {}
    for name in ("typical", "wide"):
        data = np.load(bank / f"eval_{name}.npz")
        frames, boxes = data["frames"], data["boxes"]
        recon = []
        for i in range(0, len(frames), 256):
            x = clips_to_tensor(frames[i : i + 256, None], c.image_height, c.image_width, device)
            y = model.decode(model.encode(x.float()))
            recon.append(y[:, 0].permute(0, 2, 3, 1).add(1).mul(127.5).round().clamp(0, 255).byte().cpu())
        rec = torch.cat(recon).numpy()
        ps, mps = [], []
        for t, box in enumerate(boxes):
            ps.append(psnr(rec[t], frames[t]))
            mps.append(box_psnr(rec[t], frames[t], tuple(box)))
        result[f"psnr_{name}"] = float(np.mean(ps))
        result[f"mouth_{name}"] = float(np.mean(mps))
    result["psnr"] = (result["psnr_typical"] + result["psnr_wide"]) / 2
    result["mouth"] = (result["mouth_typical"] + result["mouth_wide"]) / 2
    return result


class BankSampler:
    """Random frames (B, 1, H, W, 3) uint8 of a bank held on the device."""

    def __init__(self, path: Path, device: torch.device, batch: int, chunk: int = 8192) -> None:
        host = np.load(path, mmap_mode="r")
        self.frames = torch.empty(host.shape, dtype=torch.uint8, device=device)
        for i in range(0, len(host), chunk):
            self.frames[i : i + chunk] = torch.from_numpy(np.array(host[i : i + chunk]))
        self.batch, self.device = batch, device

    def __call__(self, rng: np.random.Generator) -> torch.Tensor:
        idx = torch.from_numpy(rng.integers(0, len(self.frames), size=self.batch)).to(self.device)
        return self.frames[idx][:, None]


def recipe_config(name: str) -> AETrainConfig:
    r = RECIPES[name]
    ae = AutoencoderConfig.preset("tiny", **r["ae"])
    return AETrainConfig(autoencoder=ae, checkpoint_every=5000, latent_stats_batches=8, **r["train"])


def step_seconds(
    cfg: AETrainConfig, sampler: BankSampler, device: torch.device, scratch: Path, n: int = 40
) -> float:
    """Median seconds per step of a short throwaway run of the real training loop (in ``scratch``)."""
    stamps: list[float] = []
    train_autoencoder(
        cfg,
        sampler,
        scratch,
        n,
        progress=False,
        on_step=lambda *_: stamps.append(time.perf_counter()),
        device=device,
    )
    shutil.rmtree(scratch, ignore_errors=True)
    return float(np.median(np.diff(stamps)[n // 4 :]))


def cmd_train(args: argparse.Namespace) -> None:
    device, out, bank = torch.device(args.device), Path(args.out), Path(args.bank)
    torch.backends.cudnn.benchmark = True
    cfg, r = recipe_config(args.recipe), RECIPES[args.recipe]
    sampler = BankSampler(bank / "train.npy", device, r["batch"])
    if args.wait_for > 1:  # time the steps only once every recipe of the group is on the GPU
        (bank / f"ready_{args.recipe}").touch()
        while len(list(bank.glob("ready_*"))) < args.wait_for:
            time.sleep(0.5)
    per_step = step_seconds(cfg, sampler, device, out.parent / f".calibrate_{args.recipe}")
    steps = args.steps or max(100, int(args.seconds * args.safety / per_step))
    print(f"{args.recipe}: {per_step * 1e3:.1f} ms/step -> {steps} steps of batch {r['batch']}", flush=True)
    t0 = time.perf_counter()

    def log(step: int, parts: dict[str, float]) -> None:
        if step % 1000 == 0:
            print(
                f"{args.recipe} step {step} {time.perf_counter() - t0:.0f} s l1 {parts['l1']:.4f}", flush=True
            )

    model = train_autoencoder(
        cfg, sampler, out, steps, progress=False, on_step=log, device=device, final_lr_fraction=r["final"]
    )
    seconds = time.perf_counter() - t0
    model.save_pretrained(out / "model_fp16", dtype=torch.float16)
    enc = sum(p.numel() for p in model.encoder.parameters())
    dec = sum(p.numel() for p in model.decoder.parameters())
    result = dict(
        recipe=args.recipe, steps=steps, batch=r["batch"], train_s=seconds, enc_params=enc, dec_params=dec
    )
    result.update(evaluate(model, bank, device))
    result.update(ae=r["ae"], train=r["train"], final_lr_fraction=r["final"])
    (out / "result.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result), flush=True)


def cmd_eval(args: argparse.Namespace) -> None:
    device, out = torch.device(args.device), Path(args.out)
    model = DCAutoencoder.from_pretrained(args.model, device=device)
    result: dict[str, Any] = dict(recipe=f"model {args.model}", steps=0, batch=0, train_s=0.0)
    result.update(evaluate(model, Path(args.bank), device))
    out.mkdir(parents=True, exist_ok=True)
    (out / "result.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result), flush=True)


def cmd_table(args: argparse.Namespace) -> None:
    done = [Path(d) for d in args.runs if (Path(d) / "result.json").is_file()]
    rows = [json.loads((d / "result.json").read_text()) for d in done]
    cols = ("psnr_typical", "mouth_typical", "psnr_wide", "mouth_wide", "psnr", "mouth")
    lines = [
        "| recipe | steps | batch | train s | " + " | ".join(cols) + " |",
        "|---" * (4 + len(cols)) + "|",
    ]
    for r in rows:
        lines.append(
            f"| {r['recipe']} | {r['steps']} | {r['batch']} | {r['train_s']:.0f} | "
            + " | ".join(f"{r[c]:.2f}" for c in cols)
            + " |"
        )
    print("\n".join(lines))
    if args.copy_best:
        trained = [(r["psnr"], str(d)) for r, d in zip(rows, done, strict=True) if r["steps"] > 0]
        if not trained:
            raise ValueError("no trained run has a result.json")
        best = max(trained)[1]
        shutil.copytree(Path(best) / "model_fp16", args.copy_best, dirs_exist_ok=True)
        print(f"best: {best} -> {args.copy_best}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("bank", help="render the training bank and the held-out sets")
    b.add_argument("--out", required=True)
    b.add_argument("--identities", type=int, default=6000, help="train-split identities")
    b.add_argument("--frames", type=int, default=144_000, help="training frames")
    b.add_argument("--eval-identities", type=int, default=32, help="held-out test-split identities")
    b.add_argument("--eval-frames", type=int, default=1280, help="frames per held-out set")
    b.add_argument("--size", type=int, default=128)
    b.add_argument("--wide", type=float, default=0.4, help="fraction of wide-range states in training")
    b.add_argument("--workers", type=int, default=15)
    t = sub.add_parser("train", help="train one recipe on the bank and score it")
    t.add_argument("--bank", required=True)
    t.add_argument("--recipe", required=True, choices=list(RECIPES))
    t.add_argument("--out", required=True)
    t.add_argument("--seconds", type=float, default=300.0, help="training time budget")
    t.add_argument("--steps", type=int, default=0, help="fixed number of steps (overrides --seconds)")
    t.add_argument("--safety", type=float, default=0.85, help="fraction of --seconds the planned steps fill")
    t.add_argument("--wait-for", type=int, default=1, help="recipes started together")
    t.add_argument("--device", default="cuda")
    e = sub.add_parser("eval", help="score a saved model folder on the held-out sets")
    e.add_argument("--bank", required=True)
    e.add_argument("--model", required=True)
    e.add_argument("--out", required=True)
    e.add_argument("--device", default="cuda")
    s = sub.add_parser("table", help="print the results of run folders; copy the best model folder")
    s.add_argument("runs", nargs="+")
    s.add_argument("--copy-best", default=None)
    args = p.parse_args()
    {"bank": cmd_bank, "train": cmd_train, "eval": cmd_eval, "table": cmd_table}[args.command](args)


if __name__ == "__main__":
    main()
