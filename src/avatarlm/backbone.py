"""The autoregressive backbone: a Qwen2-architecture transformer driven by embeddings, without an LM head.

``forward`` runs a whole sequence through the library model (training, reference); ``step`` appends new
tokens to a :class:`KVCache` with a lean re-implementation of the same layers over the same weights. It
skips the library's per-call machinery (under 1 ms at 4x256, where matmuls take ~75% of a step) and, unlike
the library's sdpa path with a mask, uses grouped key/value heads without copying the cache (1.3-1.5x
faster at 2000-4750 tokens of context at 4x256; ``benchmarks/bench_backbone.py``). Both take explicit
``position_ids`` and an additive float mask, see :mod:`avatarlm.sequence`. The token-embedding table is
not used and kept at one row, so a 3B backbone carries no 0.3B vocabulary;
:meth:`Backbone.from_pretrained_qwen` skips it when loading Qwen weights.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, cast

import torch
import torch.nn.functional as F
from safetensors import safe_open
from torch import nn
from transformers import Qwen2Config, Qwen2Model
from transformers.models.qwen2.modeling_qwen2 import Qwen2Attention, Qwen2DecoderLayer, Qwen2RotaryEmbedding

from avatarlm.config import ComponentConfig, register_config
from avatarlm.kv_cache import KVCache

_SKIPPED_WEIGHTS = ("embed_tokens.", "lm_head.")


@register_config
@dataclass
class BackboneConfig(ComponentConfig):
    """Qwen2-architecture decoder (RMSNorm, RoPE, SwiGLU, grouped key/value heads, q/k/v biases)."""

    kind: ClassVar[str] = "backbone"
    _presets: ClassVar[dict[str, dict[str, Any]]] = {
        # CPU real time: 3.9M parameters (step times: benchmarks/bench_backbone.py).
        "tiny": dict(hidden_size=256, num_layers=4, num_heads=4, num_kv_heads=2, intermediate_size=1024),
        "small": dict(hidden_size=512, num_layers=8, num_heads=8, num_kv_heads=2, intermediate_size=2048),
        # Qwen2.5-3B dimensions (2.77B parameters without the vocabulary).
        "paper": dict(
            hidden_size=2048,
            num_layers=36,
            num_heads=16,
            num_kv_heads=2,
            intermediate_size=11008,
            rope_theta=1_000_000.0,
        ),
    }

    hidden_size: int = 256
    num_layers: int = 4
    num_heads: int = 4
    num_kv_heads: int = 2
    intermediate_size: int = 1024
    rope_theta: float = 10_000.0
    rms_norm_eps: float = 1e-6
    max_position_embeddings: int = 32768
    initializer_range: float = 0.02
    gradient_checkpointing: bool = False

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    def validate(self) -> None:
        for name in ("hidden_size", "num_layers", "num_heads", "num_kv_heads", "intermediate_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.hidden_size % self.num_heads or self.head_dim % 2:
            raise ValueError(
                f"hidden_size={self.hidden_size} must split into num_heads={self.num_heads} heads "
                "of even size"
            )
        if self.num_heads % self.num_kv_heads:
            raise ValueError(f"num_kv_heads={self.num_kv_heads} must divide num_heads={self.num_heads}")
        if self.rope_theta <= 0 or self.rms_norm_eps <= 0:
            raise ValueError(f"rope_theta={self.rope_theta} and rms_norm_eps={self.rms_norm_eps} must be > 0")

    def to_qwen_config(self) -> Qwen2Config:
        """The transformers config of this backbone (vocabulary of one unused row, sdpa attention)."""
        cfg = Qwen2Config(
            vocab_size=1,
            hidden_size=self.hidden_size,
            intermediate_size=self.intermediate_size,
            num_hidden_layers=self.num_layers,
            num_attention_heads=self.num_heads,
            num_key_value_heads=self.num_kv_heads,
            max_position_embeddings=self.max_position_embeddings,
            rms_norm_eps=self.rms_norm_eps,
            initializer_range=self.initializer_range,
            rope_parameters={"rope_type": "default", "rope_theta": self.rope_theta},
            use_cache=False,
            tie_word_embeddings=False,
        )
        cfg._attn_implementation = "sdpa"
        return cfg

    @classmethod
    def from_qwen_config(cls, cfg: Qwen2Config) -> BackboneConfig:
        """Our config for a transformers Qwen2 config; refuses features the backbone does not implement."""
        rope = dict(cfg.rope_parameters or {})
        if rope.get("rope_type", "default") != "default":
            raise ValueError(
                f"unsupported rope_type {rope.get('rope_type')!r}; only 'default' RoPE is supported"
            )
        if getattr(cfg, "use_sliding_window", False):
            raise ValueError("Qwen configs with use_sliding_window=true are not supported")
        if cfg.hidden_act != "silu":
            raise ValueError(f"unsupported hidden_act {cfg.hidden_act!r}; expected 'silu'")
        return cls(
            hidden_size=cfg.hidden_size,
            num_layers=cfg.num_hidden_layers,
            num_heads=cfg.num_attention_heads,
            num_kv_heads=cfg.num_key_value_heads or cfg.num_attention_heads,
            intermediate_size=cfg.intermediate_size,
            rope_theta=float(rope.get("rope_theta", 10_000.0)),
            rms_norm_eps=cfg.rms_norm_eps,
            max_position_embeddings=cfg.max_position_embeddings,
            initializer_range=cfg.initializer_range,
        )


class Backbone(nn.Module):
    """Embeddings (B, L, hidden) in, final-norm hidden states (B, L, hidden) out."""

    def __init__(self, config: BackboneConfig) -> None:
        super().__init__()
        self.config = config
        self.model = Qwen2Model(config.to_qwen_config())
        if config.gradient_checkpointing:  # the method's newer name, where transformers has it
            enable = getattr(self.model, "activation_checkpointing_enable", None)
            (enable or self.model.gradient_checkpointing_enable)()

    @classmethod
    def on_meta(cls, config: BackboneConfig) -> Backbone:
        """Build without allocating weights (to count parameters or plan memory)."""
        with torch.device("meta"):
            return cls(config)

    def num_parameters(self, include_embedding: bool = False) -> int:
        return sum(
            p.numel()
            for name, p in self.model.named_parameters()
            if include_embedding or not name.startswith("embed_tokens.")
        )

    def forward(self, embeds: torch.Tensor, position_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Full-sequence pass through the library model. ``position_ids`` (L,) or (B, L); ``mask`` additive
        (1 or B, 1, L, L)."""
        position_ids = self._check(embeds, position_ids, mask, past=0)
        embeds = self._as_input(embeds)
        out = self.model(
            inputs_embeds=embeds,
            position_ids=position_ids,
            attention_mask=mask.to(embeds.dtype),
            use_cache=False,
        )
        return out.last_hidden_state

    @property
    def dtype(self) -> torch.dtype:
        """The weights' dtype (``ARModel.set_inference_dtype`` may make it bf16)."""
        return self.model.norm.weight.dtype

    def _as_input(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` in the weights' dtype where they run in another one without autocast (bf16 inference)."""
        if x.dtype == self.dtype or torch.is_autocast_enabled(x.device.type):
            return x
        return x.to(self.dtype)

    def new_cache(self) -> KVCache:
        return KVCache(self.config.num_layers)

    def step(
        self, new_embeds: torch.Tensor, new_position_ids: torch.Tensor, cache: KVCache, mask: torch.Tensor
    ) -> torch.Tensor:
        """Append new tokens (one group, one chunk or a whole prefix) to ``cache``; return their hidden
        states. ``mask`` is (1 or B, 1, L_new, cache.length + L_new); equals :meth:`forward` on the
        concatenated sequence."""
        return self.step_many([new_embeds], [new_position_ids], [cache], [mask])[0]

    def step_many(
        self,
        new_embeds: Sequence[torch.Tensor],
        new_position_ids: Sequence[torch.Tensor],
        caches: Sequence[KVCache],
        masks: Sequence[torch.Tensor],
    ) -> list[torch.Tensor]:
        """:meth:`step` for several independent runs at once (e.g. the sessions of a server), in one pass:
        run i brings ``new_embeds[i]`` (B_i, n, D) with its positions, ``caches[i]`` (its own length L_i)
        and ``masks[i]`` (1 or B_i, 1, n, L_i + n); every run adds the same number n of tokens. Each layer
        pads the runs' cached keys to the longest (the padding masked out), so every row attends to what
        its own :meth:`step` would. Returns each run's hidden states (B_i, n, D)."""
        runs = len(new_embeds)
        if not runs or not len(new_position_ids) == len(caches) == len(masks) == runs:
            raise ValueError("step_many needs, per run, its new embeds, positions, cache and mask")
        if len({e.shape[1] for e in new_embeds}) != 1:
            raise ValueError(f"every run must add as many tokens, got {[e.shape[1] for e in new_embeds]}")
        lengths = [c.length for c in caches]
        longest, rows = max(lengths), [e.shape[0] for e in new_embeds]
        positions = [
            self._check(e, p, m, past=length)
            for e, p, m, length in zip(new_embeds, new_position_ids, masks, lengths, strict=True)
        ]
        x = self._as_input(torch.cat(list(new_embeds)))
        b, n, _ = x.shape
        if any(getattr(c, "static", False) for c in caches):
            if runs > 1:
                raise ValueError("caches in fixed buffers (CUDA graphs) step one run at a time")
            return [caches[0].step(self, x, positions[0], masks[0])]  # type: ignore[attr-defined]
        starts = [sum(rows[:i]) for i in range(len(rows))]
        bounds = [(lo, lo + r) for lo, r in zip(starts, rows, strict=True)]
        if runs == 1:  # the single-session hot path: no padding
            full = masks[0].to(x.dtype)
        else:
            full = x.new_full((b, 1, n, longest + n), float("-inf"))
            for (lo, hi), length, mask in zip(bounds, lengths, masks, strict=True):
                full[lo:hi, :, :, :length] = mask[..., :length].to(x.dtype)
                full[lo:hi, :, :, longest:] = mask[..., length:].to(x.dtype)

        def attend(i: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
            stored = [
                cache.append(i, k[lo:hi], v[lo:hi]) for (lo, hi), cache in zip(bounds, caches, strict=True)
            ]
            keys = _pad_runs([kv[0] for kv in stored], bounds, lengths, longest)
            values = _pad_runs([kv[1] for kv in stored], bounds, lengths, longest)
            return F.scaled_dot_product_attention(
                q, keys, values, attn_mask=full, scale=scale, enable_gqa=True
            )

        return list(self.layers_with_cache(x, torch.cat(positions), attend).split(rows))

    def layers_with_cache(
        self,
        x: torch.Tensor,
        positions: torch.Tensor,
        attend: Callable[[int, torch.Tensor, torch.Tensor, torch.Tensor, float], torch.Tensor],
    ) -> torch.Tensor:
        """The decoder layers over new tokens ``x`` (B, n, D) at ``positions`` (B, n), then the final norm;
        ``attend(layer, q, k, v, scale)`` stores the rotated keys and values where the cache keeps them and
        returns the attention output (B, heads, n, head_dim) over the cache."""
        b, n, _ = x.shape
        m = self.model
        cos, sin = m.rotary_emb(x, positions)
        cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
        d = self.config.head_dim
        for i, module in enumerate(m.layers):
            layer = cast(Qwen2DecoderLayer, module)
            attn = cast(Qwen2Attention, layer.self_attn)
            h = layer.input_layernorm(x)
            q = _rotate(attn.q_proj(h).view(b, n, -1, d).transpose(1, 2), cos, sin)
            k = _rotate(attn.k_proj(h).view(b, n, -1, d).transpose(1, 2), cos, sin)
            v = attn.v_proj(h).view(b, n, -1, d).transpose(1, 2)
            o = attend(i, q, k, v, attn.scaling)
            x = x + attn.o_proj(o.transpose(1, 2).reshape(b, n, -1))
            x = x + layer.mlp(layer.post_attention_layernorm(x))
        return m.norm(x)

    @torch.no_grad()
    def evict(self, cache: KVCache, start: int, stop: int) -> None:
        """Drop cached tokens [start, stop) and move every later one back by ``stop - start`` positions, by
        re-rotating its keys (RoPE: R(p - d) k = R(-d) R(p) k; values carry no position). Exact at the first
        layer; deeper layers keep what the kept tokens took from the dropped ones when they were encoded."""
        cache.remove(start, stop)
        ref = cache.keys[0]
        if ref is None or stop == start or cache.length == start:
            return
        shift = torch.full((1, 1), -(stop - start), device=ref.device)
        cos, sin = self.model.rotary_emb(ref, shift)
        cos, sin = cos.unsqueeze(1).to(ref.dtype), sin.unsqueeze(1).to(ref.dtype)
        cache.rotate_from(start, lambda k: _rotate(k, cos, sin))

    def _check(
        self, embeds: torch.Tensor, position_ids: torch.Tensor, mask: torch.Tensor, past: int
    ) -> torch.Tensor:
        if embeds.dim() != 3 or embeds.shape[-1] != self.config.hidden_size:
            raise ValueError(f"embeds must be (B, L, {self.config.hidden_size}), got {tuple(embeds.shape)}")
        b, n = embeds.shape[:2]
        if position_ids.dim() == 1:
            position_ids = position_ids.unsqueeze(0)
        if position_ids.shape[-1] != n or position_ids.shape[0] not in (1, b) or position_ids.dim() != 2:
            raise ValueError(f"position_ids must be ({n},) or ({b}, {n}), got {tuple(position_ids.shape)}")
        if (
            mask.dim() != 4
            or mask.shape[0] not in (1, b)
            or mask.shape[1] != 1
            or mask.shape[2:] != (n, past + n)
        ):
            raise ValueError(
                f"mask must be (1 or {b}, 1, {n}, {past + n}) for {n} new tokens after {past} cached, "
                f"got {tuple(mask.shape)}"
            )
        if mask.dtype == torch.bool:
            raise ValueError("mask must be additive float (0 / -inf), got a bool mask")
        return position_ids.expand(b, n)

    @classmethod
    def from_pretrained_qwen(cls, folder: str | Path, dtype: torch.dtype = torch.float32) -> Backbone:
        """Load a local Qwen2 / Qwen2.5 folder (``config.json`` + ``*.safetensors``), without its vocabulary
        and LM head. Weights are cast to ``dtype`` (fp32 by default: bf16 is very slow on CPUs)."""
        folder = Path(folder)
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(f"no config.json in Qwen folder {str(folder)!r}")
        files = _safetensors_files(folder)
        qcfg = Qwen2Config.from_pretrained(folder)
        if qcfg.model_type != "qwen2":
            raise ValueError(f"{folder}/config.json has model_type {qcfg.model_type!r}, expected 'qwen2'")
        backbone = cls.on_meta(BackboneConfig.from_qwen_config(qcfg))
        state: dict[str, torch.Tensor] = {}
        for file in files:
            with safe_open(str(file), framework="pt") as f:
                for key in f.keys():  # noqa: SIM118 (safe_open has no __iter__)
                    name = key.removeprefix("model.")
                    if not name.startswith(_SKIPPED_WEIGHTS):
                        state[name] = f.get_tensor(key).to(dtype)
        missing, unexpected = backbone.model.load_state_dict(state, strict=False, assign=True)
        missing = [k for k in missing if not k.startswith(_SKIPPED_WEIGHTS)]
        if missing or unexpected:
            raise ValueError(
                f"Qwen weights in {folder} do not match: missing {missing}, unexpected {unexpected}"
            )
        m = backbone.model
        m.embed_tokens = nn.Embedding(1, backbone.config.hidden_size, dtype=dtype)
        m.rotary_emb = Qwen2RotaryEmbedding(config=m.config)
        return backbone


def _pad_runs(
    parts: list[torch.Tensor], bounds: list[tuple[int, int]], lengths: list[int], longest: int
) -> torch.Tensor:
    """The runs' keys (or values) (B_i, heads, L_i + n, d) stacked into one (sum B_i, heads, longest + n, d):
    each run's cached part left-aligned, its n new tokens at the end, zeros between (masked out)."""
    if all(length == longest for length in lengths):  # nothing to pad (one run, or equal caches)
        return parts[0] if len(parts) == 1 else torch.cat(parts)
    first = parts[0]
    out = first.new_zeros(
        bounds[-1][1], first.shape[1], longest + first.shape[2] - lengths[0], first.shape[3]
    )
    for (lo, hi), length, part in zip(bounds, lengths, parts, strict=True):
        out[lo:hi, :, :length], out[lo:hi, :, longest:] = part[:, :, :length], part[:, :, length:]
    return out


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return x * cos + torch.cat((-x[..., half:], x[..., :half]), dim=-1) * sin


def _safetensors_files(folder: Path) -> list[Path]:
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        names = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        files = [folder / name for name in names]
    else:
        files = sorted(folder.glob("*.safetensors"))
    if not files or not all(f.is_file() for f in files):
        raise FileNotFoundError(
            f"no safetensors weights (model.safetensors or its shards) in {str(folder)!r}"
        )
    return files
