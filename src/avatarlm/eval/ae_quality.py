"""How well an autoencoder reconstructs held-out clips: whole-frame PSNR, SSIM and flicker when streaming;
on talking-avatar clips also mouth-region PSNR and whether the mouth-open label can still be read from the
pixels (world rollouts have no mouth: those read NaN)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from avatarlm.autoencoder.loss import ssim
from avatarlm.autoencoder.model import DCAutoencoder
from avatarlm.data.face import FACE_STATE_FIELDS, FaceState
from avatarlm.data.identity import Identity
from avatarlm.data.render import Renderer
from avatarlm.data.shards import iter_samples
from avatarlm.eval.image_metrics import DARK_AREA_LEVEL, box_psnr, dark_area, flicker, psnr, spearman
from avatarlm.eval.lipsync import mouth_dark_level

MOUTH_OPEN = FACE_STATE_FIELDS.index("mouth_open")


@dataclass
class AEQuality:
    clips: int
    frames: int
    psnr: float
    mouth_psnr: float  # NaN without a rendered face (world rollouts)
    ssim: float
    flicker: float
    flicker_truth: float  # mean |truth_t - truth_{t-1}|, for scale
    # Spearman(mouth_open label, dark mouth area: dark relative to the face, lipsync.mouth_dark_level)
    mouth_probe_truth: float  # on the true frames
    mouth_probe_recon: float  # the same on reconstructions

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def to_tensor(frames: np.ndarray) -> torch.Tensor:
    """uint8 (T, H, W, 3) -> float (1, T, 3, H, W) in [-1, 1]."""
    return torch.from_numpy(frames).permute(0, 3, 1, 2).float().div(127.5).sub(1).unsqueeze(0)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """float (1, T, 3, H, W) in [-1, 1] -> uint8 (T, H, W, 3)."""
    return x[0].permute(0, 2, 3, 1).add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8).numpy()


@torch.inference_mode()
def reconstruct_clip(
    model: DCAutoencoder, frames: np.ndarray, streaming: bool, reference: np.ndarray | None = None
) -> np.ndarray:
    """Encode and decode a clip; streaming=True goes frame by frame through the temporal caches,
    streaming=False treats every frame as an independent image. ``reference`` (uint8 (H, W, 3)): the
    picture a reference-conditioned decoder reads."""
    x = to_tensor(frames)
    ref = None if reference is None else to_tensor(reference[None])[:, 0]
    if not streaming:
        features = model.reference_features(ref)  # once; every frame is a stream of its own
        features = None if features is None else features.expand(len(frames))
        return to_uint8(model.decode(model.encode(x.transpose(0, 1)), reference=features).transpose(0, 1))
    cache = model.new_cache(ref)
    out = [model.decode_step(model.encode_step(x[:, t], cache), cache) for t in range(x.shape[1])]
    return to_uint8(torch.stack(out, dim=1))


def evaluate_autoencoder(
    model: DCAutoencoder,
    data: str | Path,
    split: str = "test",
    max_clips: int = 8,
    window: int = 32,
    streaming: bool = True,
    use_reference: bool = True,
) -> AEQuality:
    """Metrics over the first `window` frames of up to `max_clips` clips of `split`. A reference-
    conditioned model reads each clip's last frame as its reference (outside the window when the clip is
    longer than it, as a session's reference picture is not one of its frames), unless `use_reference`
    is False (what the latent alone holds)."""
    model.eval()
    ps, mps, ss, fl, flt, labels, dark_t, dark_r = [], [], [], [], [], [], [], []
    n_clips = 0
    for sample in iter_samples(data, split):
        frames = sample.frames[:window]
        spec = sample.meta.get("spec")  # a rendered face's, absent from world rollouts
        renderer, dark = None, DARK_AREA_LEVEL
        if spec:
            renderer = Renderer(Identity.from_seed(spec["identity_seed"]), spec["height"], spec["width"])
            dark = mouth_dark_level(spec["identity_seed"], DARK_AREA_LEVEL)  # dark skin, beards
        reference = sample.frames[-1] if use_reference and model.config.reference_levels else None
        recon = reconstruct_clip(model, frames, streaming, reference)
        for t in range(len(frames)):
            ps.append(psnr(recon[t], frames[t]))
            if renderer is None:
                continue
            state = FaceState.from_vector(sample.truth["face"][t])
            mps.append(box_psnr(recon[t], frames[t], renderer.mouth_box(state)))
            labels.append(state.mouth_open)
            dark_t.append(dark_area(frames[t], renderer.mouth_box(state), dark))
            dark_r.append(dark_area(recon[t], renderer.mouth_box(state), dark))
        ss.append(float(ssim(to_tensor(recon)[0], to_tensor(frames)[0])))
        fl.append(flicker(recon, frames))
        flt.append(float(np.mean(np.abs(np.diff(frames.astype(np.float64), axis=0)))))
        n_clips += 1
        if n_clips >= max_clips:
            break
    if not n_clips:
        raise ValueError(f"no clips in split {split!r} of {data}")
    return AEQuality(
        clips=n_clips,
        frames=len(ps),
        psnr=float(np.mean(ps)),
        mouth_psnr=float(np.mean(mps)) if mps else float("nan"),
        ssim=float(np.mean(ss)),
        flicker=float(np.mean(fl)),
        flicker_truth=float(np.mean(flt)),
        mouth_probe_truth=spearman(np.array(labels), np.array(dark_t)) if labels else float("nan"),
        mouth_probe_recon=spearman(np.array(labels), np.array(dark_r)) if labels else float("nan"),
    )
