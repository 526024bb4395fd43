"""A pipeline folder: everything a session needs, in one place.

    pipeline.json    format, preset, fps, chunk size, tokens per frame, latent grid, versions
    ae/              the autoencoder (config.json + model.safetensors)
    ar/              the AR model (config.json + model.safetensors)

The facts in pipeline.json are training-time facts; loading checks that they agree with the two models.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from avatarlm import __version__
from avatarlm.autoencoder.model import DCAutoencoder
from avatarlm.io import atomic_write_json, read_json
from avatarlm.model import ARModel

PIPELINE_JSON = "pipeline.json"
BUNDLED = Path(__file__).resolve().parents[3] / "models" / "tiny"  # the repository's default pipeline
FORMAT = "avatarlm-pipeline"
FORMAT_VERSION = 1


@dataclass
class Pipeline:
    autoencoder: DCAutoencoder
    model: ARModel
    info: dict[str, Any]

    @property
    def fps(self) -> int:
        return int(self.info["fps"])

    @property
    def device(self) -> torch.device:
        """Where the models' weights are (a session runs there)."""
        return next(self.model.parameters()).device


def check_compatible(ae: DCAutoencoder, ar: ARModel) -> None:
    """The AR model must predict the autoencoder's latents: same channels and tokens per frame, and the
    same mouth channels where it weighs them."""
    c, h, w = ae.latent_shape
    cfg = ar.config
    if (cfg.latent_channels, cfg.tokens_per_frame) != (c, h * w):
        raise ValueError(
            f"the AR model predicts {cfg.tokens_per_frame} tokens x {cfg.latent_channels} channels but the "
            f"autoencoder's latent is {h}x{w} tokens x {c} channels"
        )
    if cfg.mouth_channels not in (0, ae.config.mouth_channels):
        raise ValueError(
            f"the AR model weighs {cfg.mouth_channels} mouth channels but the autoencoder has "
            f"{ae.config.mouth_channels}"
        )


def pipeline_info(ae: DCAutoencoder, ar: ARModel, preset: str) -> dict[str, Any]:
    c, h, w = ae.latent_shape
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "avatarlm": __version__,
        "preset": preset,
        "fps": ar.config.conditions.fps,
        "chunk_size": ar.config.chunk_size,
        "tokens_per_frame": h * w,
        "latent_grid": [h, w],
        "latent_channels": c,
        "image_size": [ae.config.image_height, ae.config.image_width],
        "lookahead_frames": ar.config.conditions.lookahead_frames,
    }


def save_pipeline(
    folder: str | os.PathLike[str],
    ae_folder: str | os.PathLike[str],
    ar: ARModel,
    preset: str,
    dtype: torch.dtype | None = None,
) -> Path:
    """Write a pipeline folder from an autoencoder folder and an AR model, atomically. Without ``dtype``
    the autoencoder's files are copied and the AR model saved as it is; ``torch.float16`` stores both at
    half the size (loading upcasts them to fp32)."""
    folder = Path(folder)
    ae = DCAutoencoder.from_pretrained(ae_folder)
    check_compatible(ae, ar)
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    if dtype is None:
        (tmp / "ae").mkdir()
        for name in ("config.json", "model.safetensors"):
            shutil.copy2(Path(ae_folder) / name, tmp / "ae" / name)
    else:
        ae.save_pretrained(tmp / "ae", dtype=dtype)
    ar.save_pretrained(tmp / "ar", dtype=dtype)
    atomic_write_json(tmp / PIPELINE_JSON, pipeline_info(ae, ar, preset))
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(tmp, folder)
    return folder


def pack_pipeline(
    source: str | os.PathLike[str], out: str | os.PathLike[str], dtype: torch.dtype = torch.float16
) -> Path:
    """Copy the pipeline folder ``source`` to ``out`` with its weights stored as ``dtype`` (fp16: half the
    size, what the repository bundles); the preset and facts are kept."""
    source, out = Path(source), Path(out)
    if source.resolve() == out.resolve():
        raise ValueError(f"pack writes a new folder: --out must differ from {source}")
    pipe = load_pipeline(source)
    return save_pipeline(out, source / "ae", pipe.model, str(pipe.info.get("preset", "custom")), dtype=dtype)


def folder_megabytes(folder: str | os.PathLike[str]) -> float:
    """Size of every file below ``folder``, in MB (10^6 bytes)."""
    return sum(f.stat().st_size for f in Path(folder).rglob("*") if f.is_file()) / 1e6


def bundled_pipeline() -> Path | None:
    """The repository's default pipeline folder (``models/tiny``), or None where it is not there."""
    return BUNDLED if (BUNDLED / PIPELINE_JSON).is_file() else None


def check_device(device: str | torch.device) -> torch.device:
    """``device`` as a torch device, with one clear error where it names a GPU this machine lacks."""
    try:
        out = torch.device(device)
    except RuntimeError as err:
        raise ValueError(f"--device {device}: not a device (cpu, cuda, cuda:1, ...)") from err
    if out.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: no CUDA device is available")
    if out.type not in ("cpu", "cuda"):
        raise ValueError(f"--device {device}: sessions run on cpu or cuda")
    return out


def load_for_command(folder: str | os.PathLike[str] | None, device: str = "cpu") -> Pipeline:
    """:func:`load_pipeline` for the commands (``--model``, ``--device``): on a GPU it also lets fp32 matrix
    products use the tensor cores (TF32; 1.4x at `paper` scale on an H200, README)."""
    pipe = load_pipeline(folder, device)
    if pipe.device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    return pipe


def load_pipeline(
    folder: str | os.PathLike[str] | None = None, device: str | torch.device = "cpu"
) -> Pipeline:
    """Load and cross-check a pipeline folder (fp32, eval mode) onto ``device``; None: the bundled
    ``models/tiny``. On a CPU the autoencoder's weights are laid out channels-last, so its convolutions
    take oneDNN's NHWC kernels: a streamed frame decodes ~10% faster on 2 cores, the same picture to 1e-4.
    On a GPU the bundled decoder is launch-bound and channels-last was no faster there
    (``benchmarks/bench_gpu_decoder.py``)."""
    device = check_device(device)
    if folder is None:
        folder = bundled_pipeline()
        if folder is None:
            raise ValueError(
                f"no --model given and no bundled pipeline at {BUNDLED}; train one (avatarlm train all)"
            )
    folder = Path(folder)
    path = folder / PIPELINE_JSON
    if not path.is_file():
        raise ValueError(f"{folder} is not a pipeline folder: {PIPELINE_JSON} is missing")
    info = read_json(path)
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise ValueError(f"{path} is not an avatarlm pipeline description")
    ae = DCAutoencoder.from_pretrained(folder / "ae")
    ar = ARModel.from_pretrained(folder / "ar")
    check_compatible(ae, ar)
    if pipeline_info(ae, ar, info.get("preset", ""))["tokens_per_frame"] != info.get("tokens_per_frame"):
        raise ValueError(f"{path} says {info.get('tokens_per_frame')} tokens per frame; the models disagree")
    layout = torch.channels_last if device.type == "cpu" else torch.contiguous_format
    ae = ae.eval().to(device).to(memory_format=layout)  # type: ignore[call-overload]
    return Pipeline(ae, ar.to(device), info)
