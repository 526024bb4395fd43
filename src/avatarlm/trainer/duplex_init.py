"""The weights a duplex AR model (two audio streams: self, partner) starts from, taken from a mono one.

A mono and a duplex model of one config share every weight except two that count condition tokens per
frame: the slot embeddings (``[audio][pose][text]...`` becomes ``[self audio][partner audio][pose]...``)
and the null audio tokens (one set per stream). The self rows keep the mono weights and the partner rows
start as copies of them, so the partner's audio enters the backbone as audio the model knows, told apart
by the stream embedding (which both models already hold). A duplex source is taken as it is. Parts that
start at zero (``STARTS_AT_ZERO``, e.g. the pose encoder's change branch, ``pose_delta``) may be missing from
the source: the target keeps their zeros, so it starts as the source model.
"""

from __future__ import annotations

import torch

from avatarlm.model import ARModel

SLOT_EMBEDDING = "conditions.slot_embedding"
NULL_AUDIO = "conditions.null_tokens.audio"
STARTS_AT_ZERO = ("conditions.encoders.pose.delta.",)


def _with_partner_rows(rows: torch.Tensor, audio: slice) -> torch.Tensor:
    """Rows with the ``audio`` ones repeated right after themselves: [..][self][partner = self][..]."""
    return torch.cat([rows[: audio.stop], rows[audio], rows[audio.stop :]])


def duplex_state(source: ARModel, target: ARModel) -> dict[str, torch.Tensor]:
    """A state dict for ``target`` (a duplex model) holding every weight of ``source`` (mono or duplex).

    Raises one ValueError when the two are not the same model apart from the audio streams (other
    layers, widths or modalities)."""
    if target.config.conditions.audio_streams != 2:
        raise ValueError("the target model is not duplex (it has one audio stream)")
    state = {k: v.detach().clone() for k, v in source.state_dict().items()}
    wanted = target.state_dict()
    if source.config.conditions.audio_streams == 1 and "audio" in source.conditions.slots:
        audio = source.conditions.slots["audio"]
        state[SLOT_EMBEDDING] = _with_partner_rows(state[SLOT_EMBEDDING], audio)
        state[NULL_AUDIO] = _with_partner_rows(state[NULL_AUDIO], slice(0, len(state[NULL_AUDIO])))
    for key in wanted.keys() - state.keys():
        if key.startswith(STARTS_AT_ZERO):
            state[key] = wanted[key].detach().clone()
    missing = sorted(wanted.keys() - state.keys())
    unexpected = sorted(state.keys() - wanted.keys())
    reshaped = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in wanted.items()
        if k in state and state[k].shape != v.shape
    ]
    if missing or unexpected or reshaped:
        problems = [
            f"{label}: {', '.join(items[:3])}{' ...' if len(items) > 3 else ''}"
            for label, items in (("missing", missing), ("unexpected", unexpected), ("shapes", reshaped))
            if items
        ]
        raise ValueError(
            "the initial AR model's weights do not fit the duplex model (is it the same architecture?): "
            + "; ".join(problems)
        )
    return state
