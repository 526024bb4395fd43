"""The systems ``benchmarks/scaling.py`` counts: presets composed into whole generators, everything counted
for one at a full rolling window (``count_system``), and what a training window of one costs in FLOPs and
memory."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from avatarlm.ar_config import ARConfig, composed
from avatarlm.config import AutoencoderConfig
from avatarlm.model import ARModel
from avatarlm.sequence import build_layout
from scaling_count import (
    AECosts,
    Cost,
    autoencoder_costs,
    backbone_meta_step,
    backbone_step,
    conditions_flops_per_frame,
    head_costs,
    head_time_modulation,
    kv_numbers_per_token,
)

# ---------------------------------------------------------------------------------------------------------
# The presets
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class System:
    """A whole generator: the AR model, its autoencoder and the streaming window it runs with."""

    name: str
    ar: ARConfig
    ae_preset: str
    window_frames: int = 30  # SessionConfig's default: generated frames kept besides f_0
    evict_frames: int = 10
    note: str = ""

    @property
    def fps(self) -> int:
        return self.ar.conditions.fps

    @property
    def ae(self) -> AutoencoderConfig:
        """The autoencoder preset with its temporal layers (stage 2, as streamed)."""
        return AutoencoderConfig.preset(self.ae_preset, temporal=True)


def compose(preset: str, ae_preset: str, chunk_size: int = 1, audio_streams: int = 1) -> ARConfig:
    """``ar_config.composed`` as a config: `small` and `paper` are ``ARConfig.preset`` of these."""
    return ARConfig.from_dict(composed(preset, ae_preset, chunk_size, audio_streams))


def systems() -> list[System]:
    return [
        System("tiny", ARConfig.preset("tiny"), "tiny", note="`ARConfig.preset('tiny')`, the bundled model's shape"),
        System("small", ARConfig.preset("small"), "small_f64", note="`ARConfig.preset('small')`"),
        System("small/f32", compose("small", "small_f32"), "small_f32", note="composed on `small_f32`"),
        System("paper", ARConfig.preset("paper"), "paper", window_frames=30, evict_frames=12,
               note="`ARConfig.preset('paper')`; chunks of n = 6 as in the paper"),
    ]  # fmt: skip


# ---------------------------------------------------------------------------------------------------------
# Counted per frame
# ---------------------------------------------------------------------------------------------------------


@dataclass
class SystemCosts:
    """Everything counted for one system, per generated frame at a full rolling window."""

    system: System
    context: int  # cached tokens when a chunk's first step starts (a full window)
    max_cache: int  # cached tokens after the chunk's last step
    backbone: Cost  # per frame: the chunk's n steps / n
    backbone_first: Cost  # the step that opens a chunk (its condition group + the first frame)
    backbone_check: Cost  # that step run on the meta device
    head_encode: Cost
    head_denoise: Cost
    ae: AECosts
    conditions_flops: float
    parameters: dict[str, int]

    @property
    def head(self) -> Cost:
        return self.head_encode + self.head_denoise.scaled(self.system.ar.head.sample_steps)

    @property
    def conditions(self) -> Cost:
        return Cost([(self.conditions_flops, float(self.parameters["conditions"]), 0.0)])

    @property
    def frame(self) -> Cost:
        return self.conditions + self.backbone + self.head + self.ae.decode

    @property
    def first_frame(self) -> Cost:
        """The work before a chunk's first frame can be shown."""
        return (
            self.conditions.scaled(self.system.ar.chunk_size)
            + self.backbone_first
            + self.head
            + self.ae.decode
        )

    @property
    def ops(self) -> float:
        return self.backbone_check.ops + self.head.ops + self.ae.decode.ops

    @property
    def kv_numbers(self) -> int:
        return kv_numbers_per_token(self.system.ar.backbone) * self.max_cache

    def share(self, part: Cost) -> float:
        """``part``'s fraction of the frame's FLOPs."""
        return part.flops / self.frame.flops

    def session_numbers(self) -> int:
        """Per-session state: the KV cache at a full window and the decoder's temporal cache."""
        return self.kv_numbers + self.ae.decode_cache_numbers

    def weight_numbers(self) -> int:
        """Everything a serving process holds: the AR model and the whole autoencoder."""
        p = self.parameters
        return p["ar"] + p["ae_encoder"] + p["ae_decoder"]

    def frame_weight_numbers(self) -> int:
        """Distinct weights a frame reads: conditions, backbone, head and decoder."""
        p = self.parameters
        return p["conditions"] + p["backbone"] + p["head"] + p["ae_decoder"]


def count_system(system: System) -> SystemCosts:
    ar = system.ar
    n, k, t = ar.chunk_size, ar.cond_tokens_per_frame, ar.tokens_per_frame
    context = (system.window_frames // n + 1) * n * (k + t)  # f_0's chunk and the window's chunks
    steps, cached = [], context
    for i in range(n):
        new = n * k + t if i == 0 else t
        steps.append(backbone_step(ar.backbone, new, cached))
        cached += new
    per_frame = Cost()
    for s in steps:
        per_frame = per_frame + s
    with torch.device("meta"):
        model = ARModel(ar)
    backbone = model.backbone.num_parameters()
    head = model.head.num_parameters()
    conditions = sum(p.numel() for p in model.conditions.parameters())
    everything = sum(p.numel() for p in model.parameters()) - model.backbone.num_parameters(True) + backbone
    encode, denoise = head_costs(ar.head)
    ae = autoencoder_costs(system.ae)
    return SystemCosts(
        system=system,
        context=context,
        max_cache=cached,
        backbone=per_frame.scaled(1.0 / n),
        backbone_first=steps[0],
        backbone_check=backbone_meta_step(ar.backbone, n * k + t, context),
        head_encode=encode,
        head_denoise=denoise,
        ae=ae,
        conditions_flops=conditions_flops_per_frame(ar.conditions),
        parameters=dict(
            backbone=backbone,
            head=head,
            head_modulation=sum(p.numel() for p in model.head.modulation.parameters()),
            conditions=conditions,
            ar_other=everything - backbone - head - conditions,
            ar=everything,
            ae_encoder=ae.encoder_parameters,
            ae_decoder=ae.decoder_parameters,
        ),
    )


def paper_duplex(paper: SystemCosts) -> SystemCosts:
    """The paper system hearing two audio streams (duplex SFT: one more condition token per frame); only
    what a training window reads besides the config is recounted, the condition encoders' FLOPs."""
    system = System("paper duplex", compose("paper", "paper", chunk_size=6, audio_streams=2), "paper")
    flops = conditions_flops_per_frame(system.ar.conditions)
    return dataclasses.replace(paper, system=system, conditions_flops=flops)


# ---------------------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------------------


@dataclass
class TrainingWindow:
    """FLOPs of one training window (forward + backward = 3x forward) by part."""

    tokens: int
    predicted_frames: int
    backbone: float  # 6 x parameters x tokens
    attention: float  # 3 x 4 x layers x L^2 x d (dense masked scores)
    head: float
    conditions: float
    embed: float  # latent projection of every frame's tokens

    @property
    def total(self) -> float:
        return self.backbone + self.attention + self.head + self.conditions + self.embed


def training_window(costs: SystemCosts, window_frames: int) -> TrainingWindow:
    ar = costs.system.ar
    layout = build_layout(window_frames, ar.chunk_size, ar.tokens_per_frame, ar.cond_tokens_per_frame)
    tokens = layout.length
    predicted = int(layout.prediction_index()[1].numel())
    bb = ar.backbone
    repeat = ar.head.loss_repeat
    head_forward = predicted * (costs.head_encode.flops + repeat * costs.head_denoise.flops)
    head_forward += head_time_modulation(ar.head, predicted * repeat).flops
    return TrainingWindow(
        tokens=tokens,
        predicted_frames=predicted,
        backbone=6.0 * costs.parameters["backbone"] * tokens,
        attention=3.0 * 4.0 * bb.num_layers * tokens**2 * bb.hidden_size,
        head=3.0 * head_forward,
        conditions=3.0 * costs.conditions_flops * window_frames,
        embed=6.0 * ar.latent_channels * bb.hidden_size * window_frames * ar.tokens_per_frame,
    )


def training_memory(costs: SystemCosts, tokens: int) -> dict[str, float]:
    """Bytes: fp32 weights + fp32 gradients + AdamW moments + fp32 EMA (the trainer keeps all four; bf16
    is autocast only), and activations of one window after Korthikanti et al. 2022 (34 bytes per token and
    width per layer in bf16, flash attention so no L^2 term), with and without per-layer checkpointing."""
    bb = costs.system.ar.backbone
    per_layer = 34.0 * tokens * bb.hidden_size
    return dict(
        state=20.0 * costs.parameters["ar"],
        activations=bb.num_layers * per_layer,
        checkpointed=bb.num_layers * 4.0 * tokens * bb.hidden_size + per_layer,
    )
