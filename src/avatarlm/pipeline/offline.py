"""Offline generation of a whole clip from a pipeline: reference frame + conditions -> frames.

This is the same computation a streaming session performs step by step (KV-cached AR steps seeded per
frame, then the autoencoder's streaming decode), with the conditions of the whole clip encoded up front.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
from tqdm import tqdm

from avatarlm.autoencoder.model import AutoencoderCache, DCAutoencoder
from avatarlm.autoencoder.tokens import grid_to_tokens, tokens_to_grid
from avatarlm.conditions.projector import ConditionBatch
from avatarlm.model import ARModel
from avatarlm.pipeline.anchor import anchor_step, resolve_anchor


@torch.no_grad()
def generate_latents(
    model: ARModel,
    reference: torch.Tensor,
    cond_tokens: torch.Tensor,
    seed: int = 0,
    progress: bool = False,
    unconditional: torch.Tensor | None = None,
    guidance: float = 1.0,
    anchor: float = 0.0,
    free_channels: int = 0,
) -> torch.Tensor:
    """Tokens (F + 1, T, C): the reference (T, C) followed by the F frames cond_tokens (F, k, D) drive
    (cond_tokens[j] is cond(j + 1)); a model with chunks of n frames gets them a chunk at a time.

    With ``unconditional`` (F, k, D), the same frames without what is guided (e.g. null audio), every step
    follows classifier-free guidance of strength ``guidance``, as a session with ``lip_strength`` does.
    ``anchor``: every frame is pulled that share of the way back to the reference in the channels from
    ``free_channels`` on (``anchor.py``), as in a session."""
    model.eval()
    n = model.config.chunk_size
    frames = cond_tokens.shape[0]
    rows = cond_tokens[None]
    if unconditional is not None:
        if unconditional.shape != cond_tokens.shape:
            raise ValueError(
                f"unconditional {tuple(unconditional.shape)} must match {tuple(cond_tokens.shape)}"
            )
        rows = torch.stack([cond_tokens, unconditional])
    if (
        frames % n
    ):  # a last partial chunk: its condition group is complete, zeros past the clip (as in training)
        rows = torch.cat([rows, rows.new_zeros(rows.shape[0], n - frames % n, *rows.shape[2:])], dim=1)
    state = model.start(reference[None].expand(rows.shape[0], -1, -1), seed=seed)
    step_guidance = guidance if unconditional is not None else None
    out = [reference]
    for j in tqdm(range(frames), desc="generate", disable=not progress):
        chunk = rows[:, j : j + n] if j % n == 0 else None
        model.step(state, chunk, guidance=step_guidance)
        anchor_step(state, reference, free_channels, anchor)
        out.append(state.latent[0])
    return torch.stack(out)


@torch.no_grad()
def decode_frame(ae: DCAutoencoder, tokens: torch.Tensor, cache: AutoencoderCache) -> np.ndarray:
    """One frame's tokens (T, C) -> uint8 (H, W, 3), through (and advancing) the decoder's ``cache``."""
    _, h, w = ae.latent_shape
    grid = tokens_to_grid(tokens, h, w)
    assert isinstance(grid, torch.Tensor)
    x = ae.decode_step(grid[None], cache)[0]  # (3, H, W) in [-1, 1]
    return x.permute(1, 2, 0).add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8).cpu().numpy()


@torch.no_grad()
def decode_tokens(
    ae: DCAutoencoder, tokens: torch.Tensor, reference_image: np.ndarray | None = None
) -> np.ndarray:
    """Tokens (N, T, C) -> uint8 frames (N, H, W, 3), frame by frame through the decoder's caches; a
    reference-conditioned decoder reads ``reference_image`` (uint8 (H, W, 3)), as a session's does."""
    ae.eval()
    cache = decoder_cache(ae, reference_image)
    return np.stack([decode_frame(ae, tokens[i], cache) for i in range(len(tokens))])


def image_tensor(ae: DCAutoencoder, image: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) image of the autoencoder's size -> (1, 3, H, W) in [-1, 1] on its device."""
    c = ae.config
    if image.dtype != np.uint8 or image.shape != (c.image_height, c.image_width, 3):
        raise ValueError(
            f"reference image must be uint8 ({c.image_height}, {c.image_width}, 3), got {image.dtype} "
            f"{image.shape}"
        )
    device = next(ae.parameters()).device
    return (
        torch.from_numpy(np.ascontiguousarray(image))
        .to(device)
        .permute(2, 0, 1)
        .float()
        .div(127.5)
        .sub(1)[None]
    )


@torch.no_grad()
def decoder_cache(ae: DCAutoencoder, reference_image: np.ndarray | None) -> AutoencoderCache:
    """A fresh streaming cache; a reference-conditioned decoder's holds ``reference_image``'s features."""
    return ae.new_cache(None if reference_image is None else image_tensor(ae, reference_image))


@torch.no_grad()
def encode_reference(ae: DCAutoencoder, image: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) image -> reference tokens (T, C) in the AR model's normalised latent space."""
    z = ae.encode(image_tensor(ae, image)[None], ae.new_cache())[0, 0]
    tokens = grid_to_tokens(z)
    assert isinstance(tokens, torch.Tensor)
    return tokens


def generate_clip(
    ae: DCAutoencoder,
    model: ARModel,
    reference: torch.Tensor,
    conditions: ConditionBatch,
    seed: int = 0,
    progress: bool = False,
    lip_strength: float = 1.0,
    anchor: float | None = None,
    reference_image: np.ndarray | None = None,
) -> np.ndarray:
    """uint8 frames (F + 1, H, W, 3): the decoded reference, then the F generated frames. ``lip_strength``
    other than 1: classifier-free guidance on the audio (the same conditions with null audio as the
    unconditional row), as :class:`~avatarlm.pipeline.session.SessionConfig` applies it; ``anchor`` as there
    (None: the pipeline's default). ``reference_image``: the picture ``reference`` was encoded from, which
    a reference-conditioned decoder reads (a session's reference image)."""
    model.eval()
    uncond = None
    with torch.no_grad():
        full = model.encode_conditions(conditions)
        cond = full[0]
        if lip_strength != 1.0:
            b, f = full.shape[:2]
            silent = replace(
                conditions, audio=None, audio_tokens=None, audio_history_frames=0, batch_size=b, num_frames=f
            )
            uncond = model.encode_conditions(silent)[0]
    share = resolve_anchor(anchor, ae, model)
    latents = generate_latents(
        model, reference, cond, seed, progress, uncond, lip_strength, share, ae.config.mouth_channels
    )
    return decode_tokens(ae, latents, reference_image)
