"""Reference-conditioned decoding: the decoder also reads the stream's reference frame at full detail.

Sixteen latent tokens cannot hold a face's texture, but every session has the picture it animates (the
reference image). With ``reference_levels`` = k > 0 the k finest decoder levels each read the encoder's
features of that picture at the same resolution: the features are turned into a per-level input once per
stream (``ReferenceFeatures``), and every decoded frame adds a fusion of its own features and that input.
The head moves between the reference and the frame, so the reference is first warped to the frame:
``ReferenceWarp`` reads a flow field off the coarsest fused level (the frame's features beside the
reference's) and every fused level, and the picture, is resampled along it. Last, ``ReferenceBlend``
copies the warped reference's pixels where the decoder's features say they hold (most of a talking head's
frame: the background, the clothes, the hair; the face once warped), x + g * a * (reference - x) with a
per-pixel a in (0, 1). The fusions' last convs, the flow's and the blend's gate g start at zero, so adding
them to a trained decoder does not change its output. A decode without a reference skips all of them
(training drops the reference now and then, so the decoder stays usable alone). Latents do not change: the
encoder and the latent space stay the AR model's. ``changed_l1`` is the training term that keeps the decoder
from drawing the reference where the frame differs from it (a moved head, another mouth).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class ReferenceFeatures:
    """What the decoder reads of one reference frame: one tensor (B, C_i, H_i, W_i) per fused level,
    finest first. Computed once per stream by ``DCAutoencoder.reference_features``."""

    levels: list[torch.Tensor]
    image: torch.Tensor  # (B, 3, H, W) in [-1, 1], what the blend copies

    @property
    def batch(self) -> int:
        return self.image.shape[0]

    def select(self, index: torch.Tensor) -> ReferenceFeatures:
        """The features of streams ``index`` (a 1-D index into the batch, repeats allowed), in that order."""
        return ReferenceFeatures([t[index] for t in self.levels], self.image[index])

    def expand(self, batch: int) -> ReferenceFeatures:
        """One stream's features (batch 1) as ``batch`` streams with that reference, without copying."""
        if self.batch != 1:
            raise ValueError(f"expand takes the features of one stream, these are of {self.batch}")
        return ReferenceFeatures(
            [t.expand(batch, -1, -1, -1) for t in self.levels], self.image.expand(batch, -1, -1, -1)
        )


def _per_frame(reference: torch.Tensor, rows: int) -> torch.Tensor:
    """(B, ...) per stream -> (rows, ...) per frame of B streams of rows / B frames each."""
    frames = rows // reference.shape[0]
    if frames * reference.shape[0] != rows:
        raise ValueError(f"reference batch {reference.shape[0]} does not divide {rows} frames")
    return reference.repeat_interleave(frames, dim=0) if frames > 1 else reference


class ReferenceFusion(nn.Module):
    """h + conv(silu(conv_h(h) + conv_r(reference))) at one decoder level; ``prepare`` runs conv_r once."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.from_features = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.from_reference = nn.Conv2d(channels, channels, 3, padding=1)
        self.out = nn.Conv2d(channels, channels, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)  # type: ignore[arg-type]

    def prepare(self, encoder_features: torch.Tensor) -> torch.Tensor:
        return self.from_reference(encoder_features)

    def forward(self, h: torch.Tensor, prepared: torch.Tensor) -> torch.Tensor:
        """``h`` (B*T, C, H, W) of B streams; ``prepared`` (B, C, H, W), the same for all T frames."""
        return h + self.out(F.silu(self.from_features(h) + _per_frame(prepared, h.shape[0])))


class ReferenceWarp(nn.Module):
    """A flow field (N, 2, h, w), offsets in grid_sample's [-1, 1] coordinates, from a frame's features and
    the reference's at one level; zero (no warp) at initialisation."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(2 * channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, 2, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)  # type: ignore[arg-type]

    def forward(self, h: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        both = torch.cat([h, _per_frame(reference, h.shape[0])], dim=1)
        return self.conv2(F.silu(self.conv1(both)))


def warp(reference: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Resample per-stream ``reference`` (B, C, H, W) for each of the N frames ``flow`` (N, 2, h, w) is for:
    output pixel p reads the reference at p + flow(p) (the flow resized to H x W)."""
    reference = _per_frame(reference, flow.shape[0])
    n, _, height, width = reference.shape
    if flow.shape[-2:] != (height, width):
        flow = F.interpolate(flow, size=(height, width), mode="bilinear", align_corners=False)
    ys = torch.linspace(-1 + 1 / height, 1 - 1 / height, height, device=flow.device, dtype=flow.dtype)
    xs = torch.linspace(-1 + 1 / width, 1 - 1 / width, width, device=flow.device, dtype=flow.dtype)
    base = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)  # (H, W, 2) as (x, y)
    grid = base + flow.permute(0, 2, 3, 1)
    return F.grid_sample(reference, grid, mode="bilinear", padding_mode="border", align_corners=False)


class ReferenceBlend(nn.Module):
    """x + g * a * (reference - x): a (per output pixel) from the level-0 features, the decoded frame and
    the reference, both space-to-channel by ``patch``; the gate g starts at 0. g is its parameter times
    ``GATE_SCALE``: Adam moves every parameter by about the learning rate per step, which would take a
    lone scalar thousands of steps to open."""

    GATE_SCALE = 10.0

    def __init__(self, width: int, channels: int, patch: int) -> None:
        super().__init__()
        self.patch = patch
        self.conv1 = nn.Conv2d(width + 2 * channels * patch * patch, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, patch * patch, 3, padding=1)
        self.gate = nn.Parameter(torch.zeros(()))

    def forward(self, h: torch.Tensor, x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        """``h`` (B*T, width, H/p, W/p), ``x`` (B*T, C, H, W) decoded, ``reference`` (B, C, H, W)."""
        p, reference = self.patch, _per_frame(reference, x.shape[0])
        unshuffle = (lambda t: F.pixel_unshuffle(t, p)) if p > 1 else (lambda t: t)
        z = self.conv2(F.silu(self.conv1(torch.cat([h, unshuffle(x), unshuffle(reference)], dim=1))))
        share = torch.sigmoid(F.pixel_shuffle(z, p) if p > 1 else z)
        return x + self.GATE_SCALE * self.gate * share * (reference - x)


def fusion_blocks(widths: tuple[int, ...], levels: int) -> nn.ModuleList:
    """One fusion per fused level, finest first (empty when ``levels`` is 0)."""
    return nn.ModuleList(ReferenceFusion(widths[i]) for i in range(levels))


def changed_l1(
    recon: torch.Tensor, frames: torch.Tensor, reference: torch.Tensor, threshold: float = 0.05
) -> torch.Tensor:
    """Mean L1 of ``recon`` against ``frames`` (B, T, C, H, W) over the pixels where the frame differs from
    its ``reference`` (B, C, H, W) by more than ``threshold`` in some channel: where copying the reference
    is wrong (a moved head, another mouth) and the latent must decide. Added to the loss, it keeps the
    decoder from drawing the reference where it is unsure."""
    changed = (frames - reference[:, None]).abs().amax(dim=2, keepdim=True).gt(threshold).to(recon.dtype)
    error = (recon - frames).abs().mean(dim=2, keepdim=True)
    return (error * changed).sum() / changed.sum().clamp_min(1.0)
