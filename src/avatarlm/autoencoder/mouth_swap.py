"""The mouth-swap objective: the first ``k`` latent channels hold the mouth, the same way on every face.

On a triple (face, target, donor) from :class:`avatarlm.data.mouth_swap.MouthSwapSampler` the model
encodes all three frames once and decodes three latents: the face's and the donor's own (ordinary
reconstruction) and the face's latent with its first ``k`` channels, in every token, replaced by the
donor's (``swap_mouth``), which must decode to the target — the face wearing the donor's mouth. A third
term asks the other channels of face and target, which differ only in the mouth, to be equal, so that a
mouth movement changes the mouth channels alone: the latent change that opens a mouth is then one shared
direction, which an AR model can learn from audio once instead of once per face.

A model whose decoder reads a reference frame (``reference_levels``) learns it here too, from the start,
on batches (B, 5, 3, H, W) that add each identity's reference (``MouthSwapSampler(references=True)``): face
and swap decode with the face's reference, the donor with its own, so the latent need not carry what the
picture shows and the mouth is all the reference gets wrong about the target. ``change_weight`` then
counts the L1 over the pixels where a frame differs from its reference again (``reference.changed_l1``).
"""

from __future__ import annotations

import torch
from torch import nn

from .loss import AutoencoderLoss
from .model import DCAutoencoder
from .reference import changed_l1


def swap_mouth(face: torch.Tensor, donor: torch.Tensor, mouth_channels: int) -> torch.Tensor:
    """Latents (..., C, h, w): ``face`` with its first ``mouth_channels`` channels taken from ``donor``."""
    if face.shape != donor.shape:
        raise ValueError(f"face and donor latents differ in shape: {face.shape} vs {donor.shape}")
    if not 0 < mouth_channels < face.shape[-3]:
        raise ValueError(f"mouth_channels must be in 1..{face.shape[-3] - 1}, got {mouth_channels}")
    return torch.cat([donor[..., :mouth_channels, :, :], face[..., mouth_channels:, :, :]], dim=-3)


def mouth_invariance(face: torch.Tensor, target: torch.Tensor, mouth_channels: int) -> torch.Tensor:
    """Mean squared difference of the non-mouth channels of two latents (..., C, h, w) that differ only
    in the mouth, relative to those channels' variance over the batch (so shrinking the latent does not
    lower it)."""
    a, b = face[..., mouth_channels:, :, :], target[..., mouth_channels:, :, :]
    spread = a.detach().flatten(0, -4).var(dim=0).mean().clamp_min(1e-6)
    return (a - b).pow(2).mean() / spread


def mouth_l1(decoded: torch.Tensor, triples: torch.Tensor) -> torch.Tensor:
    """Mean L1 over the mouth's pixels, where a triple's face and target (the same face with two mouths)
    differ: of the face's reconstruction against the face and of the swapped decode against the target
    (``decoded`` (B, 3, 3, H, W): face, donor, swapped). The mouth is a few percent of a frame, so the
    whole-frame loss learns it last; counted again here, it is learned early."""
    face, target = triples[:, 0:1], triples[:, 1:2]
    return 0.5 * (
        changed_l1(decoded[:, 0:1], face, target[:, 0]) + changed_l1(decoded[:, 2:3], target, face[:, 0])
    )


def _reference_rows(batch: int, device: torch.device) -> torch.Tensor:
    """Which of the 2B references (face's, donor's per item) each of the 3B decoded rows reads."""
    return (
        2 * torch.arange(batch, device=device)[:, None] + torch.tensor([0, 1, 0], device=device)
    ).flatten()


class MouthSwapLoss(nn.Module):
    """Reconstruction of face and donor + the swap term + the invariance term, on triples (B, 3, 3, H, W)."""

    def __init__(
        self,
        pixel_loss: AutoencoderLoss,
        mouth_channels: int,
        swap_weight: float = 1.0,
        invariance_weight: float = 1.0,
        mouth_weight: float = 0.0,
        change_weight: float = 0.0,
    ) -> None:
        super().__init__()
        if mouth_channels < 1:
            raise ValueError(f"the mouth swap needs mouth_channels >= 1, got {mouth_channels}")
        self.pixel_loss = pixel_loss
        self.mouth_channels = mouth_channels
        self.swap_weight, self.invariance_weight = swap_weight, invariance_weight
        self.mouth_weight, self.change_weight = mouth_weight, change_weight

    def forward(
        self, model: DCAutoencoder, triples: torch.Tensor, step: int = 0
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
        """(loss, reconstructions of the faces (B, 1, 3, H, W), logged parts). ``triples`` (B, 3, 3, H, W),
        or (B, 5, 3, H, W) with the face's and the donor's reference frames for a reference-reading model."""
        if triples.dim() != 5 or triples.shape[1] not in (3, 5):
            raise ValueError(
                f"mouth-swap batches are (B, 3, 3, H, W) triples (B, 5, ... with references), got "
                f"{tuple(triples.shape)}"
            )
        b, frame = triples.shape[0], triples.shape[2:]
        references = triples[:, 3:].reshape(-1, *frame) if triples.shape[1] == 5 else None
        if references is not None and not model.config.reference_levels:
            raise ValueError(
                "reference frames given, but the model's decoder reads none (reference_levels=0)"
            )
        triples = triples[:, :3]
        z = model.encode_raw(triples.reshape(3 * b, 1, *frame)).view(b, 3, *model.latent_shape)
        face, target, donor = z.unbind(1)
        swapped = swap_mouth(face, donor, self.mouth_channels)
        features = None
        if references is not None:  # rows face, donor, swap of each item read references 2i, 2i + 1, 2i
            features = model.reference_features(references)
            assert features is not None  # the model reads references: checked above
            features = features.select(_reference_rows(b, references.device))
        latents = torch.stack([face, donor, swapped], 1).flatten(0, 1)[:, None]
        decoded = model.decode_raw(latents, reference=features).float().view(b, 3, *frame)
        with torch.autocast(decoded.device.type, enabled=False):  # losses in fp32 under mixed precision
            # face and donor reconstructions (2B, 1, ...) against their frames; the swap against the target
            own = decoded[:, [0, 1]].reshape(2 * b, 1, *frame)
            rec_loss, parts = self.pixel_loss(own, triples[:, [0, 2]].reshape(2 * b, 1, *frame), step)
            swap_loss, swap_parts = self.pixel_loss(decoded[:, 2:3], triples[:, 1:2], step)
            inv = mouth_invariance(face.float(), target.float(), self.mouth_channels)
        loss = rec_loss + self.swap_weight * swap_loss + self.invariance_weight * inv
        if self.mouth_weight > 0:  # face and target differ only in the mouth: their difference marks it
            mouth = mouth_l1(decoded, triples)
            loss = loss + self.mouth_weight * mouth
            parts.update(mouth_l1=float(mouth.detach()))
        if features is not None and self.change_weight > 0:
            truth = triples[:, [0, 2, 1]].reshape(3 * b, 1, *frame)  # what face, donor and swap decode to
            changed = changed_l1(decoded.reshape(3 * b, 1, *frame), truth, features.image)
            loss = loss + self.change_weight * changed
            parts.update(changed_l1=float(changed.detach()))
        parts.update(swap_l1=swap_parts["l1"], invariance=float(inv.detach()), loss=float(loss.detach()))
        return loss, decoded[:, :1], parts
