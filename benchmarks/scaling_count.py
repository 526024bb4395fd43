"""Counting for ``benchmarks/scaling.py``: FLOPs, weights read and other numbers moved by each kernel of a
run, from forward hooks on the meta device (``counting()``) checked by ``FlopCounterMode``; the backbone's
KV-cached step in closed form; and the per-frame costs of the head, the autoencoder and the condition
encoders."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from avatarlm.autoencoder.blocks import SpatialAttention
from avatarlm.autoencoder.model import DCAutoencoder
from avatarlm.autoencoder.temporal import CausalTemporalAttention
from avatarlm.backbone import Backbone, BackboneConfig
from avatarlm.conditions.config import ConditionConfig
from avatarlm.conditions.pose import NUM_KEYPOINTS
from avatarlm.conditions.projector import ConditionBatch, ConditionEncoder
from avatarlm.config import AutoencoderConfig
from avatarlm.head import HeadConfig, build_head
from avatarlm.head.transformer import FrameAttention

if TYPE_CHECKING:  # for annotations only: scaling_hardware imports scaling_systems, which imports this
    from scaling_hardware import Hardware

# ---------------------------------------------------------------------------------------------------------
# Kernels, hooks and the counting context
# ---------------------------------------------------------------------------------------------------------

Call = tuple[float, float, float]  # (FLOPs, weight numbers read, other numbers read or written)


@dataclass
class Cost:
    """Work of some kernels: one ``Call`` per matmul / conv / attention, so a roofline can be taken per
    kernel; ``checked`` is ``FlopCounterMode``'s count of the same run, ``ops`` the aten ops dispatched."""

    calls: list[Call] = field(default_factory=list)
    checked: float = 0.0
    ops: float = 0.0

    @property
    def flops(self) -> float:
        return sum(c[0] for c in self.calls)

    @property
    def weights(self) -> float:
        return sum(c[1] for c in self.calls)

    @property
    def other(self) -> float:
        return sum(c[2] for c in self.calls)

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.calls + other.calls, self.checked + other.checked, self.ops + other.ops)

    def scaled(self, k: float) -> Cost:
        """``k`` times the work (``k`` runs, or ``1/n`` of a chunk's)."""
        return Cost([(f * k, w * k, a * k) for f, w, a in self.calls], self.checked * k, self.ops * k)

    def seconds(self, hw: Hardware, sessions: int = 1) -> float:
        """Sum over kernels of max(FLOPs / FLOP/s, bytes / bandwidth); ``sessions`` rows batched into each
        kernel share its weight read."""
        b = hw.bytes_per_number
        return sum(
            max(sessions * f / hw.flops, (w + sessions * a) * b / hw.bandwidth) for f, w, a in self.calls
        )

    def bound(self, hw: Hardware) -> str:
        """Which side of the roofline most of the time is on."""
        b = hw.bytes_per_number
        compute = sum(f / hw.flops for f, w, a in self.calls if f / hw.flops >= (w + a) * b / hw.bandwidth)
        return "compute" if compute >= 0.5 * self.seconds(hw) else "memory"


def _cpu_sdpa_flop(q: Any, k: Any, v: Any, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    return int(sdpa_flop_count(q, k, v))


def flop_counter() -> FlopCounterMode:
    """``FlopCounterMode`` that also counts the CPU flash-attention kernel (torch 2.13 knows only the CUDA
    ones, so a real CPU step would lose its attention FLOPs)."""
    cpu_sdpa = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
    return FlopCounterMode(display=False, custom_mapping={cpu_sdpa: _cpu_sdpa_flop})


class _OpCounter(TorchDispatchMode):
    """Counts aten ops that are not views: in eager mode each is a kernel launch (or a CPU dispatch)."""

    def __init__(self) -> None:
        super().__init__()
        self.ops = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if not func.is_view:
            self.ops += 1
        return func(*args, **(kwargs or {}))


def _matmul_hook(cost: Cost, module: nn.Module, args: tuple[Any, ...], out: torch.Tensor) -> None:
    weight = module.weight
    assert isinstance(weight, torch.Tensor)
    # a Conv2d output element takes (in / groups) x kh x kw multiply-adds, a Linear one in_features
    per_output = weight[0].numel()
    bias = module.bias
    weights = weight.numel() + (bias.numel() if isinstance(bias, torch.Tensor) else 0)
    cost.calls.append((2.0 * out.numel() * per_output, float(weights), float(args[0].numel() + out.numel())))


def _attention_hook(cost: Cost, module: nn.Module, args: tuple[Any, ...]) -> None:
    """The score and value matmuls of the attention modules (their projections are Linear / Conv2d)."""
    x = args[0]
    if isinstance(module, FrameAttention):  # (B, T, W): T tokens attend to each other
        b, t, w = x.shape
        flops, io = 4.0 * b * t * t * w, 4.0 * b * t * w
    elif isinstance(module, SpatialAttention):  # (N, C, H, W): every pixel attends to every pixel
        n, c, h, w = x.shape
        flops, io = 4.0 * n * (h * w) ** 2 * c, 4.0 * n * h * w * c
    else:  # CausalTemporalAttention (B, T, C, H, W): per pixel over the cached frames and the new ones
        assert isinstance(module, CausalTemporalAttention)
        b, t, c, h, w = x.shape
        state = args[1] if len(args) > 1 else None
        past = 0 if state is None or state.keys is None else int(state.keys.shape[2])
        keys = past + t
        flops, io = 4.0 * b * h * w * t * keys * c, 2.0 * b * h * w * c * (t + keys)
    cost.calls.append((flops, 0.0, io))


@contextmanager
def counting(module: nn.Module) -> Iterator[Cost]:
    """Count what ``module``'s Linear / Conv2d / attention submodules do inside the block."""
    cost = Cost()
    handles = []
    for m in module.modules():
        if isinstance(m, nn.Linear | nn.Conv2d):
            handles.append(m.register_forward_hook(partial(_matmul_hook, cost)))
        elif isinstance(m, FrameAttention | SpatialAttention | CausalTemporalAttention):
            handles.append(m.register_forward_pre_hook(partial(_attention_hook, cost)))
    flops, ops = flop_counter(), _OpCounter()
    try:
        with torch.no_grad(), flops, ops:
            yield cost
    finally:
        for h in handles:
            h.remove()
    cost.checked, cost.ops = float(flops.get_total_flops()), float(ops.ops)


# ---------------------------------------------------------------------------------------------------------
# The parts
# ---------------------------------------------------------------------------------------------------------


def backbone_step(cfg: BackboneConfig, new_tokens: int, context: int) -> Cost:
    """One KV-cached ``Backbone.step`` in closed form: ``new_tokens`` appended to a cache of ``context``.

    Per layer: the q, k, v, o projections, the SwiGLU MLP (gate, up, down) and attention of the new tokens
    over the cache and themselves (SDPA with an additive mask computes every score, masked or not; grouped
    key/value heads change the bytes, not the FLOPs). Other numbers: activations in and out of each matmul,
    the cached keys and values read and the new ones written. The RMSNorm weights are read for free."""
    d, f = cfg.hidden_size, cfg.intermediate_size
    kv = cfg.num_kv_heads * cfg.head_dim
    n, keys = new_tokens, context + new_tokens
    # q, k, v, o, then gate, up, down: (fan in, fan out, has a bias)
    matmuls = [(d, d, 1), (d, kv, 1), (d, kv, 1), (d, d, 0), (d, f, 0), (d, f, 0), (f, d, 0)]
    calls: list[Call] = []
    for _ in range(cfg.num_layers):
        for fan_in, fan_out, bias in matmuls:
            weights = fan_in * fan_out + bias * fan_out
            calls.append((2.0 * n * fan_in * fan_out, float(weights), float(n * (fan_in + fan_out))))
        calls.append((4.0 * n * keys * d, 0.0, float(2 * n * d + 2 * keys * kv + 2 * n * kv)))
    calls.append((0.0, float(cfg.num_layers * 2 * d + d), 0.0))
    return Cost(calls)


def backbone_parameters(cfg: BackboneConfig) -> int:
    """Parameters of the backbone without its (unused) embedding table, from the closed form."""
    return int(backbone_step(cfg, 1, 0).weights)


def kv_numbers_per_token(cfg: BackboneConfig) -> int:
    return cfg.num_layers * 2 * cfg.num_kv_heads * cfg.head_dim


def backbone_meta_step(cfg: BackboneConfig, new_tokens: int, context: int) -> Cost:
    """The same step run by ``Backbone.step`` on the meta device, for ``FlopCounterMode`` and the op count."""
    backbone = Backbone.on_meta(cfg)
    cache = backbone.new_cache()
    for i in range(cfg.num_layers):
        shape = (1, cfg.num_kv_heads, context, cfg.head_dim)
        cache.keys[i], cache.values[i] = torch.zeros(shape, device="meta"), torch.zeros(shape, device="meta")
    x = torch.zeros(1, new_tokens, cfg.hidden_size, device="meta")
    positions = torch.arange(context, context + new_tokens, device="meta")
    mask = torch.zeros(1, 1, new_tokens, context + new_tokens, device="meta")
    with counting(nn.Module()) as cost:
        backbone.step(x, positions, cache, mask)
    return cost


def head_costs(cfg: HeadConfig) -> tuple[Cost, Cost]:
    """(encode the condition: once per frame, one Euler step: ``sample_steps`` per frame) on the meta
    device. The per-step time modulations are a table cached across frames, so they cost nothing here."""
    with torch.device("meta"):
        head = build_head(cfg)
    t, c = cfg.tokens_per_frame, cfg.in_channels
    with counting(head) as encode:
        context = head.encode_cond(torch.zeros(1, t, cfg.cond_dim, device="meta"))
    time_mod = torch.zeros(1, head.modulation.time_linear.out_features, device="meta")
    with counting(head) as denoise:
        head.denoise(torch.zeros(1, t, c, device="meta"), time_mod, context)
    return encode, denoise


def head_time_modulation(cfg: HeadConfig, draws: int) -> Cost:
    """Training computes the time modulation of every draw (sampling caches it)."""
    with torch.device("meta"):
        head = build_head(cfg)
    with counting(head) as cost:
        head.time_modulation(torch.zeros(draws, device="meta"))
    return cost


@dataclass
class AECosts:
    encode: Cost
    decode: Cost
    decode_cache_numbers: int  # numbers held by the streaming decoder's temporal cache
    encoder_parameters: int
    decoder_parameters: int


def autoencoder_costs(cfg: AutoencoderConfig) -> AECosts:
    """Streaming encode and decode of one frame with full temporal caches (after ``temporal_window``
    frames), on the meta device."""
    with torch.device("meta"):
        ae = DCAutoencoder(cfg)
    cache = ae.new_cache()
    frame = torch.zeros(1, cfg.in_channels, cfg.image_height, cfg.image_width, device="meta")
    latent = torch.zeros(1, *ae.latent_shape, device="meta")
    with torch.no_grad():
        for _ in range(cfg.temporal_window):
            ae.encode_step(frame, cache)
            ae.decode_step(latent, cache)
    with counting(ae.encoder) as encode:
        ae.encode_step(frame, cache)
    with counting(ae.decoder) as decode:
        ae.decode_step(latent, cache)
    return AECosts(
        encode=encode,
        decode=decode,
        decode_cache_numbers=cache.decoder.nbytes() // 4,
        encoder_parameters=sum(p.numel() for p in ae.encoder.parameters()),
        decoder_parameters=sum(p.numel() for p in ae.decoder.parameters()),
    )


def conditions_flops_per_frame(cfg: ConditionConfig, frames: int = 25) -> float:
    """``FlopCounterMode`` over the offline condition encoder on ``frames`` frames of every modality, with
    real weights (the encoders are small), divided by ``frames``."""
    torch.manual_seed(0)
    encoder = ConditionEncoder(cfg).eval()
    m = cfg.modalities
    samples = cfg.samples_per_frame * (frames + cfg.lookahead_frames)
    batch = ConditionBatch(
        audio=torch.zeros(1, cfg.audio_streams, samples) if "audio" in m else None,
        pose=torch.zeros(1, frames, 3) if "pose" in m else None,
        keypoints=torch.full((1, frames, NUM_KEYPOINTS, 2), 0.5) if "pose" in m else None,
        text=[["smile"] * frames] if "text" in m else None,
        action=torch.zeros(1, frames, dtype=torch.long) if "action" in m else None,
        num_frames=frames,
        batch_size=1,
    )
    counter = flop_counter()
    with torch.no_grad(), counter:
        encoder(batch)
    return counter.get_total_flops() / frames
