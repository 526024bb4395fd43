"""Own history: training on the model's own frames, so that it learns to undo its errors.

Teacher forcing shows the model only true history, yet in a session every history frame is one it drew
itself. With the "delta" target (next = current + change) the small error of each drawn frame is never
undone: nothing in training ever asked the model to undo one, so the errors add up and the face drifts. Here
some history frames are replaced by the model's own while the targets stay the true frames, so the change it
must predict from one of its own frames is the true change plus (a share, ``history_pull`` of
:meth:`ARModel.loss`, of) the correction of that frame's error.

Two ways (``mode``): "step" replaces single frames by one-step predictions from the true frames before them
(one no-grad teacher-forced pass whose head samples every frame at once: parallel scheduled sampling);
"rollout" replaces whole windows by the model's free-running generation from their first frame, through the
KV cache as a session makes it, with the errors of up to a window's length (31 steps of 8 windows cost
about as much as "step" on CPUs). Rollouts with a pull of 0.1–0.25 are what slowed the drift (README).
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
    history, sigmas = model.corrupt_history(latents, generator, sigma=cfg.inference_sigma)
    hidden, layout = model.hidden_states(history, sigmas, cond_tokens)
    source, targets = layout.prediction_index()
    cond = hidden[:, source.to(hidden.device)].reshape(-1, t, hidden.shape[-1])
    sample = model.head.sample(cond, generator=generator).reshape(b, len(targets), t, -1).to(latents.dtype)
    idx = targets.to(latents.device)
    if cfg.target == "delta":
        sample = latents[:, idx - 1] + cfg.delta_scale * sample
    out = latents.clone()
    out[:, idx] = sample
    return out


@torch.no_grad()
def roll_out(
    model: ARModel, latents: torch.Tensor, cond_tokens: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """(B, F, T, C): ``latents``' f_0 followed by the frames the model generates from it, free-running as a
    session does (KV cache, inference history noise, chunk by chunk), driven by ``cond_tokens`` (as in
    :meth:`ARModel.loss`). Its head and history noise come from ``generator``."""
    n = model.config.chunk_size
    b, f = latents.shape[:2]
    rows = cond_tokens[:, 1:] if cond_tokens.shape[1] == f else cond_tokens
    if (f - 1) % n:  # a last partial chunk: its condition group is complete, zeros past the window
        rows = torch.cat([rows, rows.new_zeros(b, n - (f - 1) % n, *rows.shape[2:])], dim=1)
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator, device=latents.device))
    state = model.start(latents[:, 0], seed=seed)
    out = [latents[:, 0]]
    for j in range(f - 1):
        chunk = rows[:, j : j + n] if j % n == 0 else None
        out.append(model.step(state, chunk, generator=generator).to(latents.dtype))
    return torch.stack(out, dim=1)


MODES = ("step", "rollout")


def own_history(
    model: ARModel,
    latents: torch.Tensor,
    cond_tokens: torch.Tensor,
    share: float,
    generator: torch.Generator | None = None,
    keep_first: torch.Tensor | None = None,
    mode: str = "step",
) -> torch.Tensor:
    """``latents`` (B, F, T, C) with some history frames replaced by the model's own.

    ``mode="step"``: each frame but f_0, with probability ``share``, by the model's one-step prediction of
    it from the true frames before it. ``mode="rollout"``: each window, with probability ``share``, by the
    frames the model generates free-running from its f_0 (the errors of up to F-1 steps, as in a session).
    ``keep_first`` (B,) bool marks windows whose reference is not the frame before f_1 (so a prediction of
    f_1 means nothing): their f_1 stays true, and they are never rolled out."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"share must be in [0, 1], got {share}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if share == 0.0:
        return latents
    b, f = latents.shape[:2]
    keep = torch.zeros(b, dtype=torch.bool) if keep_first is None else keep_first.cpu()
    cond_tokens = cond_tokens.detach()
    if mode == "rollout":
        draw = torch.rand(b, generator=generator, device=latents.device).cpu()
        chosen = torch.nonzero((draw < share) & ~keep).flatten()
        out = latents.clone()
        if len(chosen):
            rows = chosen.to(latents.device)
            out[rows] = roll_out(model, latents[rows], cond_tokens[rows], generator)
        return out
    predicted = predict_next_frames(model, latents, cond_tokens, generator)
    swap = torch.rand(b, f, generator=generator, device=latents.device).cpu() < share
    swap[:, 0] = False
    swap[:, 1] &= ~keep
    return torch.where(swap.to(latents.device)[:, :, None, None], predicted, latents)
