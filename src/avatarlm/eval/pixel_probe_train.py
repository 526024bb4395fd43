"""Train the pixel probe on rendered frames (half of them through the autoencoder) and score it on renders of unseen identities and on their
autoencoder reconstructions (the frames a model makes pass through the AE, so that is the error bar that
counts). Identities: the probe trains on ``val``-split identities and is scored on ``test``-split ones."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from avatarlm.autoencoder.model import DCAutoencoder
from avatarlm.data.render_sampler import RenderedClipSampler
from avatarlm.data.splits import split_identities
from avatarlm.eval.pixel_probe import PROBED, PixelProbe, PixelProbeConfig, state_targets
from avatarlm.eval.probe_batches import ProbeBatches, reconstruct, render_batch
from avatarlm.trainer.schedule import warmup_cosine_lr


def train_probe(
    config: PixelProbeConfig,
    out: str | os.PathLike[str],
    steps: int,
    batch: int = 32,
    lr: float = 1e-3,
    render_size: int = 128,
    identities: int = 400,
    seed: int = 0,
    progress: bool = True,
    ae: DCAutoencoder | None = None,
    device: str | torch.device = "cpu",
    workers: int = 0,
    save_every: int = 250,
) -> PixelProbe:
    """Train on fresh renders of ``identities`` val-split faces; writes the probe folder ``out``. With ``ae``,
    half of every batch is shown through the autoencoder, as generated frames are (a probe trained on
    clean renders alone reads blurred mouths badly); a reference-reading one reads a picture of the same
    face, as in a session. ``workers`` processes render the batches (0: this one); the probe and the
    autoencoder run on ``device``. The folder is also written every ``save_every`` steps, so a run stopped
    early (a time limit, Ctrl-C) leaves the probe it had then. Returns the probe on the CPU."""
    if steps < 1 or batch < 2 or save_every < 1:
        raise ValueError(
            f"steps and save_every must be >= 1 and batch >= 2, got {steps}, {save_every} and {batch}"
        )
    device = torch.device(device)
    torch.manual_seed(seed)
    probe = PixelProbe(config).to(device)
    if ae is not None:
        ae = ae.to(device).eval()
    opt = torch.optim.AdamW(probe.parameters(), lr=lr, weight_decay=0.01)
    bar = tqdm(total=steps, desc="train probe", disable=not progress)
    ids = split_identities("val", identities)
    stride = 2 if ae is not None else None  # the references of the frames shown through the autoencoder
    with ProbeBatches(ids, render_size, batch, seed, workers, stride) as batches:
        for step, b in enumerate(batches.iterate(steps)):
            for group in opt.param_groups:
                group["lr"] = warmup_cosine_lr(step, steps, lr, min(100, steps // 10), 0.05)
            frames = b.frames
            if ae is not None:
                frames[::2] = reconstruct(ae, frames[::2], b.references)
            controls, expression = state_targets(b.states)
            pred, logits = probe(probe.prepare(frames))
            loss = nn.functional.mse_loss(pred, torch.from_numpy(controls).to(device))
            loss = loss + 0.3 * nn.functional.cross_entropy(logits, torch.from_numpy(expression).to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            bar.update()
            if step % 20 == 0:
                bar.set_postfix(loss=f"{float(loss.detach()):.4f}")
            if (step + 1) % save_every == 0 and step + 1 < steps:
                probe.save_pretrained(out)  # atomic files: a folder that is always whole
    bar.close()
    probe = probe.cpu().eval()
    probe.save_pretrained(out)
    return probe


@dataclass
class ProbeScores:
    r2: dict[str, float]  # per probed control
    blink_accuracy: float  # closed (> 0.5) or open
    expression_accuracy: float

    def row(self, label: str) -> str:
        r2 = " ".join(f"{self.r2[n]:6.3f}" for n in PROBED)
        return f"{label:>16} {r2}  {self.blink_accuracy:6.3f} {self.expression_accuracy:6.3f}"


def header() -> str:
    return f"{'frames':>16} " + " ".join(f"{n[:6]:>6}" for n in PROBED) + "  blink  expr"


def score(probe: PixelProbe, frames: np.ndarray, states: np.ndarray) -> ProbeScores:
    """R² of every control (on the [-1, 1] scale), blink and expression accuracy of ``frames`` vs ``states``."""
    return score_readings(*probe.read(frames), states)


def score_readings(pred: np.ndarray, classes: np.ndarray, states: np.ndarray) -> ProbeScores:
    """Scores of probe readings (controls (N, len(PROBED)), expression classes (N,)) against ``states``."""
    controls, expression = state_targets(states)
    sse = ((pred - controls) ** 2).sum(axis=0)
    sst = ((controls - controls.mean(axis=0)) ** 2).sum(axis=0)
    r2 = {n: float(1.0 - sse[i] / max(sst[i], 1e-12)) for i, n in enumerate(PROBED)}
    b = PROBED.index("blink")
    blink = float(((pred[:, b] > 0.0) == (controls[:, b] > 0.0)).mean())  # 0 on the [-1, 1] scale = 0.5
    return ProbeScores(r2, blink, float((classes == expression).mean()))


@torch.no_grad()
def evaluate_probe(
    probe: PixelProbe,
    count: int = 256,
    ae: DCAutoencoder | None = None,
    render_size: int = 128,
    seed: int = 1,
) -> dict[str, ProbeScores]:
    """Scores on ``count`` renders of test-split identities and, with ``ae``, on their reconstructions (a
    reference-reading autoencoder reads a picture of the same face in another state)."""
    sampler = RenderedClipSampler(split_identities("test", 200), size=render_size)
    b = render_batch(sampler, seed, 0, count)
    out = {"renders": score(probe, b.frames, b.states)}
    if ae is not None:
        out["reconstructions"] = score(probe, reconstruct(ae, b.frames, b.references), b.states)
    return out
