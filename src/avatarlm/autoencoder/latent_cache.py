"""`avatarlm ae encode`: encode every clip of a dataset once and store its latents, so AR training never
runs the encoder (like MAR's cache step).

Layout: DATA/latents/<tag>/<split>/shard-NNNNN.safetensors, one file per frame shard, holding one tensor
per clip key (T, C, h, w) in fp16 (normalised latents are O(1), so fp16 loses nothing that matters) and
metadata naming the model. Each file is written atomically; a rerun skips finished shards.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.numpy import save_file
from tqdm import tqdm

from avatarlm.autoencoder.model import DCAutoencoder
from avatarlm.data.shards import read_index, read_shard

# Written into every shard's metadata. Version 1 (no entry) stored most clips with each frame's values
# permuted (channels-last memory read as channels-first): such caches are refused and re-encoded.
CACHE_VERSION = "2"


def shard_metadata(path: str | Path) -> dict[str, str]:
    """A cached shard's metadata: ``autoencoder`` (the config JSON) and ``latent_cache_version``."""
    with safe_open(str(path), "np") as f:
        return dict(f.metadata() or {})


def latent_path(data: str | Path, tag: str, shard: str) -> Path:
    return Path(data) / "latents" / tag / Path(shard).with_suffix(".safetensors")


@torch.inference_mode()
def encode_frames(model: DCAutoencoder, frames: np.ndarray, chunk: int = 32) -> np.ndarray:
    """uint8 (T, H, W, 3) -> normalised latents (T, C, h, w), streaming through the temporal encoder."""
    cache = model.new_cache()
    out = []
    for i in range(0, len(frames), chunk):
        x = torch.from_numpy(frames[i : i + chunk]).permute(0, 3, 1, 2).float().div(127.5).sub(1)[None]
        out.append(model.encode(x, cache)[0])
    # the encoder may hand back a channels-last layout: make it C-ordered, as every reader assumes
    return np.ascontiguousarray(torch.cat(out).numpy())


def encode_dataset(model: DCAutoencoder, data: str | Path, tag: str, show_progress: bool = True) -> int:
    """Encode every shard of the dataset that has no latents yet (or latents of an older cache version).
    Returns the number of shards written."""
    model.eval()
    cfg = model.config
    shards = read_index(data)["shards"]
    written = 0
    for shard in tqdm(shards, desc=f"encode latents ({tag})", disable=not show_progress):
        path = latent_path(data, tag, shard["path"])
        if path.exists() and shard_metadata(path).get("latent_cache_version") == CACHE_VERSION:
            continue
        latents: dict[str, np.ndarray] = {}
        for sample in read_shard(Path(data) / shard["path"]):
            if sample.frames.shape[1:3] != (cfg.image_height, cfg.image_width):
                raise ValueError(
                    f"clip {sample.key} has {sample.frames.shape[2]}x{sample.frames.shape[1]} frames; the "
                    f"autoencoder takes {cfg.image_width}x{cfg.image_height}"
                )
            # C order: safetensors.numpy writes an array's memory as it lies, whatever its strides
            latents[sample.key] = np.ascontiguousarray(encode_frames(model, sample.frames), np.float16)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        meta = {"autoencoder": json.dumps(cfg.to_dict()), "latent_cache_version": CACHE_VERSION}
        save_file(latents, str(tmp), metadata=meta)
        tmp.replace(path)
        written += 1
    return written


def load_latents(data: str | Path, tag: str, split: str | None = None) -> dict[str, np.ndarray]:
    """clip key -> fp32 latents (T, C, h, w) for every shard of `split` (or all)."""
    out: dict[str, np.ndarray] = {}
    for shard in read_index(data)["shards"]:
        if split is None or shard["split"] == split:
            path = latent_path(data, tag, shard["path"])
            if not path.exists():
                raise FileNotFoundError(f"no latents for {shard['path']}: run `avatarlm ae encode` first")
            with safe_open(str(path), "np") as f:  # one open for the version and the tensors
                if (f.metadata() or {}).get("latent_cache_version") != CACHE_VERSION:
                    raise ValueError(
                        f"{path} was written by an older avatarlm that stored most clips scrambled; rerun "
                        f"`avatarlm ae encode --data {data} --tag {tag} --model AE` to rewrite it"
                    )
                out.update({k: f.get_tensor(k).astype(np.float32) for k in f.keys()})  # noqa: SIM118
    return out
