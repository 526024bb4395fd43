"""AR model training loop: teacher forcing on cached latents, AdamW with warm-up + cosine, gradient clipping,
EMA weights, data parallelism under torchrun, atomic checkpoints with exact resume, loss CSV + PNG.

Output folder::

    checkpoints/        resumable state (model, EMA, optimizer, RNG), see :mod:`.checkpoint`
    train_config.json   the run's ARTrainConfig
    loss.csv, loss.png  the loss curve (train loss per log step, validation loss every val_every steps)
    model/              the EMA weights as a model folder (config.json + model.safetensors)
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from avatarlm.conditions.audio import AudioEncoder
from avatarlm.io import atomic_write_json
from avatarlm.model import ARModel, keyed_generator
from avatarlm.trainer.ar_config import ARTrainConfig
from avatarlm.trainer.ar_data import ARClip, WindowBatch, WindowSampler
from avatarlm.trainer.checkpoint import (
    latest_checkpoint,
    load_checkpoint,
    read_optimizer_state,
    save_checkpoint,
)
from avatarlm.trainer.distributed import DistributedContext, barrier, sum_gradients
from avatarlm.trainer.loss_log import LossLog
from avatarlm.trainer.own_history import own_history
from avatarlm.trainer.pose_loss import pose_loss_directions
from avatarlm.trainer.sharding import (
    clip_gradients,
    full_optimizer_state,
    full_state_dict,
    replicated,
    reshard,
    shard_model,
    shard_optimizer_state,
)

_VAL_KEY = 2**31 - 1  # generator key of the validation pass (never a training step)


def window_sampler(
    cfg: ARTrainConfig, clips: Sequence[ARClip], clip_weights: Sequence[float] | None = None
) -> WindowSampler:
    """The sampler a run of ``cfg`` uses over ``clips`` (audio history defaults to the receptive field);
    ``clip_weights``: see :class:`WindowSampler`."""
    cond = cfg.model.conditions
    history = cfg.audio_history_frames
    if history is None:
        history = AudioEncoder(cond).receptive_field_frames if "audio" in cond.modalities else 0
    return WindowSampler(
        clips,
        cfg.window_frames,
        audio_streams=cond.audio_streams,
        samples_per_frame=cond.samples_per_frame,
        audio_history_frames=history,
        contiguous_reference=cfg.contiguous_reference,
        modalities=cond.modalities,
        audio_lookahead_frames=cond.lookahead_frames,
        face_fields=cfg.model.face_probe_fields if cfg.model.face_probe_weight > 0 else (),
        clip_weights=clip_weights,
    )


def window_loss(
    model: ARModel,
    batch: WindowBatch,
    generator: torch.Generator,
    own_history_share: float = 0.0,
    own_history_mode: str = "step",
    own_history_pull: float = 1.0,
    loss_directions: torch.Tensor | None = None,
) -> torch.Tensor:
    """Teacher-forcing loss of one batch of windows (conditions encoded with dropout in train mode).
    With the "delta" target, f_1 counts only where the reference is the frame just before it.
    ``own_history_*``: how much of the history the model reads from its own frames, and how (see
    ``own_history.py`` and ``ARTrainConfig``); ``loss_directions``: see ``pose_loss.py``."""
    cond = model.encode_conditions(batch.conditions, generator=generator)
    contiguous = torch.tensor(
        [w.reference == w.start - 1 for w in batch.windows], device=batch.latents.device
    )
    weight = None
    if model.config.target == "delta":  # f_1's change from a reference taken elsewhere means nothing
        b, f = batch.latents.shape[:2]
        weight = torch.ones(b, f - 1, device=batch.latents.device)
        weight[:, 0] = contiguous.float()
    history = own_history(
        model, batch.latents, cond, own_history_share, generator, ~contiguous, own_history_mode
    )
    return model.loss(
        batch.latents,
        cond,
        generator=generator,
        frame_weight=weight,
        face_targets=batch.face,
        history=history,
        history_pull=own_history_pull,
        loss_directions=loss_directions,
    )


def _autocast(device: torch.device):
    """bf16 autocast on GPUs only: on CPUs without native bf16 it is ~100x slower than fp32."""
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()


@torch.no_grad()
def validation_loss(model: ARModel, sampler: WindowSampler, windows: int, micro: int, device) -> float:
    """Mean loss over a fixed set of windows with fixed noise (no condition dropout: eval mode)."""
    was_training = model.training
    model.eval()
    picks = sampler.draw(np.random.default_rng(12345), windows)
    total = 0.0
    for i in range(0, windows, micro):
        part = picks[i : i + micro]
        gen = keyed_generator(_VAL_KEY, i, device=device)
        with _autocast(torch.device(device)):
            total += float(window_loss(model, sampler.collate(part, device), gen)) * len(part)
    model.train(was_training)
    return total / max(windows, 1)


@torch.no_grad()
def update_ema(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    for e, p in zip(ema.parameters(), model.parameters(), strict=True):
        e.lerp_(p.detach(), 1.0 - decay)


def train_ar(
    cfg: ARTrainConfig,
    sampler: WindowSampler,
    out_dir: str | os.PathLike[str],
    steps: int,
    val_sampler: WindowSampler | None = None,
    ctx: DistributedContext | None = None,
    progress: bool = True,
    stop_after: int | None = None,
    init_state: Mapping[str, torch.Tensor] | None = None,
) -> ARModel:
    """Train until ``steps`` optimizer steps, resuming from ``out_dir/checkpoints`` when one is there.

    Every process draws the same global batch of windows and computes the micro batches assigned to its
    rank; gradients are averaged over processes. ``stop_after`` ends this call early after that many
    steps (the schedule still runs to ``steps``), as a kill would — for tests of resume. ``init_state``
    (a state dict of ``cfg.model``, loaded strictly) is what a fresh run starts from instead of a random
    model, e.g. to fine-tune; a checkpoint in ``out_dir`` still wins over it. Returns the model
    with EMA weights (also written to ``out_dir/model`` by the main process when ``steps`` is reached).
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    ctx = ctx or DistributedContext(0, 1, torch.device("cpu"))
    micro_batches = cfg.batch_size // cfg.micro_batch
    if micro_batches % ctx.world_size:
        raise ValueError(
            f"batch_size / micro_batch = {micro_batches} micro batches cannot be split over "
            f"{ctx.world_size} processes"
        )
    per_rank = micro_batches // ctx.world_size
    out = Path(out_dir)
    ckpt_dir = out / "checkpoints"
    device = ctx.device

    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model = ARModel(cfg.model).to(device)
    if init_state is not None:
        model.load_state_dict(init_state)
    ema = copy.deepcopy(model).requires_grad_(False)
    modules = {"model": model, "ema": ema}
    step = 0
    found = latest_checkpoint(ckpt_dir)
    if found is not None:  # weights first: checkpoints are whole, and sharding comes after
        step, _ = load_checkpoint(found, modules, {}, rng)
    sharded = cfg.sharding == "fsdp" and ctx.world_size > 1
    if sharded:
        shard_model(model, ctx)
        shard_model(ema, ctx)
    params = [p for p in model.parameters() if p.requires_grad]
    decay, no_decay = [p for p in params if p.ndim >= 2], [p for p in params if p.ndim < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr,
        betas=cfg.betas,
    )
    if found is not None:
        saved = read_optimizer_state(found, "model")
        opt.load_state_dict(shard_optimizer_state(saved, opt) if sharded else saved)
    log = LossLog(out / "loss.csv", resume_step=step) if ctx.is_main else None
    if ctx.is_main:
        atomic_write_json(out / "train_config.json", cfg.to_dict())

    directions = None  # the head's turn weighed more; from the data only: resumes and processes agree
    if max(cfg.pose_loss_weights) > 0:
        directions = pose_loss_directions(sampler.clips, cfg.pose_loss_weights).to(device)
    model.train()
    end = steps if stop_after is None else min(steps, step + stop_after)
    bar = tqdm(total=steps, initial=min(step, steps), disable=not (progress and ctx.is_main), desc="ar")
    started = time.perf_counter()
    while step < end:
        lr = cfg.lr_at(step, steps)
        for group in opt.param_groups:
            group["lr"] = lr
        windows = sampler.draw(rng, cfg.batch_size)  # the same on every process
        opt.zero_grad(set_to_none=True)
        total = 0.0
        for a in range(per_rank):
            m = ctx.rank * per_rank + a
            part = windows[m * cfg.micro_batch : (m + 1) * cfg.micro_batch]
            gen = keyed_generator(cfg.seed, step, m, device=device)
            with _autocast(device):
                batch = sampler.collate(part, device)
                own = (cfg.own_history, cfg.own_history_mode, cfg.own_history_pull)
                loss = window_loss(model, batch, gen, *own, loss_directions=directions) / micro_batches
            loss.backward()
            total += float(loss.detach())
        max_norm = cfg.grad_clip if cfg.grad_clip > 0 else float("inf")
        if sharded:  # the layers' gradients were reduce-scattered in the backward pass
            sum_gradients(replicated(params), ctx)
            grad_norm = clip_gradients(params, max_norm)
        else:
            sum_gradients(params, ctx)  # each rank holds its share of the global mean
            grad_norm = float(torch.nn.utils.clip_grad_norm_(params, max_norm))
        opt.step()
        if sharded:  # EMA and model must both hold their shards (not gathered weights) to average them
            reshard(model)
            reshard(ema)
        update_ema(ema, model, cfg.ema_decay if step >= cfg.warmup_steps else 0.0)
        step += 1
        bar.update(1)
        if step % cfg.log_every == 0 or step == steps:
            val = None
            want_val = (
                val_sampler is not None and cfg.val_windows and (step % cfg.val_every == 0 or step == steps)
            )
            if want_val and (ctx.is_main or sharded):  # a sharded EMA needs every process in its forward
                assert val_sampler is not None
                val = validation_loss(ema, val_sampler, cfg.val_windows, cfg.micro_batch, device)
            if log is not None:
                log.add(step, loss=total * ctx.world_size, val_loss=val, lr=lr, grad_norm=grad_norm,
                        seconds=time.perf_counter() - started)  # fmt: skip
            bar.set_postfix(loss=f"{total * ctx.world_size:.4f}", lr=f"{lr:.2e}")
        if step % cfg.checkpoint_every == 0 or step == steps:
            states = (
                ({k: full_state_dict(m) for k, m in modules.items()}, {"model": full_optimizer_state(opt)})
                if sharded
                else (modules, {"model": opt})
            )
            if ctx.is_main:
                assert log is not None
                log.save()
                save_checkpoint(ckpt_dir, step, states[0], states[1], rng, keep=cfg.keep_checkpoints)
                log.plot(out / "loss.png", title=f"AR training ({cfg.model.backbone.hidden_size}-wide)")
            barrier(ctx)
    bar.close()
    if log is not None:
        log.save()
    if sharded:  # the returned model is whole, as after a one-process run
        whole = ARModel(cfg.model)
        whole.load_state_dict(full_state_dict(ema))
        ema = whole.to(device).requires_grad_(False)
    if step >= steps and ctx.is_main:
        ema.to("cpu").save_pretrained(out / "model")
    return ema.eval()
