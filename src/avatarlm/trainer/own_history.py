"""Own-prediction history: training on the model's own frames, so that it learns to correct its errors.

Teacher forcing shows the model only true history, yet in a session every history frame is one it drew
itself. With the "delta" target (next = current + change) the small error of each drawn frame is never
undone: nothing in training ever asked the model to undo one, so the errors add up and the face drifts
and blurs within seconds. Here a share of the history frames of each window are replaced by the model's
own one-step predictions (a no-grad teacher-forced pass at the inference noise level, whose head samples
every frame at once: parallel scheduled sampling), and the targets stay the true frames, so the change it
must predict from one of its own frames is the true change plus the correction of that frame's error.

Cost: one extra backbone pass without gradients and one head sampling per micro batch (about half a
training step more on CPUs).
"""

from __future__ import annotations

import torch

from avatarlm.model import ARModel


@torch.no_grad()
def predict_next_frames(
    model: ARModel, latents: torch.Tensor, cond_tokens: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """(B, F, T, C): frame 0 is ``latents``' f_0; frame k+1 is the model's sample of f_{k+1} from the true
    f_0..f_k (history noised as at inference) and cond(1..k+1). ``cond_tokens`` as in :meth:`ARModel.loss`."""
    cfg = model.config
    b, f, t, _ = latents.shape
    if cond_tokens.shape[1] == f:
        cond_tokens = cond_tokens[:, 1:]
    sigmas = torch.full((b, f), cfg.inference_sigma, device=latents.device, dtype=latents.dtype)
    sigmas[:, 0] = 0.0
    eps = torch.randn(latents.shape, generator=generator, device=latents.device, dtype=latents.dtype)
    s = sigmas[:, :, None, None]
    hidden, layout = model.hidden_states((1.0 - s) * latents + s * eps, sigmas, cond_tokens)
    source, targets = layout.prediction_index()
    cond = hidden[:, source.to(hidden.device)].reshape(-1, t, hidden.shape[-1])
    sample = model.head.sample(cond, generator=generator).reshape(b, len(targets), t, -1).to(latents.dtype)
    idx = targets.to(latents.device)
    if cfg.target == "delta":
        sample = latents[:, idx - 1] + cfg.delta_scale * sample
    out = latents.clone()
    out[:, idx] = sample
    return out


def own_history(
    model: ARModel,
    latents: torch.Tensor,
    cond_tokens: torch.Tensor,
    share: float,
    generator: torch.Generator | None = None,
    keep_first: torch.Tensor | None = None,
) -> torch.Tensor:
    """``latents`` (B, F, T, C) with each history frame but f_0 replaced, with probability ``share``, by
    the model's own one-step prediction of it. ``keep_first`` (B,) bool: windows whose f_1 stays true (its
    reference is not the frame before it, so a prediction of f_1 means nothing)."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"share must be in [0, 1], got {share}")
    if share == 0.0:
        return latents
    b, f = latents.shape[:2]
    predicted = predict_next_frames(model, latents, cond_tokens.detach(), generator)
    swap = torch.rand(b, f, generator=generator, device=latents.device) < share
    swap[:, 0] = False
    if keep_first is not None:
        swap[:, 1] &= ~keep_first.to(swap.device)
    return torch.where(swap[:, :, None, None], predicted, latents)
