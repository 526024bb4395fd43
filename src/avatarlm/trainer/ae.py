"""Autoencoder training loop: stages spatial / temporal / joint, checkpoints and resume, latent stats."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..autoencoder.loss import AutoencoderLoss
from ..autoencoder.model import DCAutoencoder
from ..autoencoder.mouth_swap import MouthSwapLoss
from ..autoencoder.reference import changed_l1
from ..io import atomic_write_json, read_json
from .ae_config import AETrainConfig
from .checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from .loss_log import LossLog
from .schedule import warmup_cosine_lr

ClipSampler = Callable[[np.random.Generator], np.ndarray | torch.Tensor]


def clips_to_tensor(
    batch: np.ndarray | torch.Tensor, height: int, width: int, device: str | torch.device = "cpu"
) -> torch.Tensor:
    """uint8 (B, T, H, W, 3) -> float (B, T, 3, H, W) in [-1, 1] on ``device``, with a clear error on bad
    input. ``batch`` is a numpy array or a torch tensor (possibly already on ``device``); the uint8 data
    moves to ``device`` before the conversion to float."""
    if isinstance(batch, np.ndarray) and batch.dtype == np.uint8:
        data = torch.from_numpy(np.ascontiguousarray(batch))
    elif isinstance(batch, torch.Tensor) and batch.dtype == torch.uint8:
        data = batch
    else:
        got = f"{type(batch).__name__} {getattr(batch, 'dtype', '')}"
        raise ValueError(f"clips(rng) must return a uint8 numpy array, got {got}")
    if data.ndim != 5 or data.shape[-1] != 3 or tuple(data.shape[2:4]) != (height, width):
        raise ValueError(
            f"clips(rng) must return shape (B, T, {height}, {width}, 3), got {tuple(data.shape)}"
        )
    data = data.to(device, non_blocking=True)
    return data.permute(0, 1, 4, 2, 3).float() / 127.5 - 1.0


def learning_rate(cfg: AETrainConfig, step: int, steps: int, final_lr_fraction: float | None) -> float:
    """Linear warm-up to ``cfg.lr``; then constant, or a cosine down to ``final_lr_fraction * cfg.lr`` at
    ``steps`` when ``final_lr_fraction`` is given."""
    return warmup_cosine_lr(step, steps, cfg.lr, cfg.warmup_steps, final_lr_fraction)


def build_model(cfg: AETrainConfig) -> DCAutoencoder:
    """The model a run trains: from ``init_from`` when given (adding temporal layers for stages 2-3, to the
    decoder only when ``autoencoder.temporal_encoder`` is False), else freshly initialised from
    ``cfg.autoencoder``."""
    if cfg.stage == "decoder" and not cfg.init_from:
        raise ValueError("the decoder stage fine-tunes a trained autoencoder: give init_from")
    temporal = None if cfg.stage == "decoder" else cfg.stage != "spatial"  # decoder: as the init model
    if cfg.init_from:
        levels = cfg.autoencoder.reference_levels or None  # a run may add reference fusions to a model
        model = DCAutoencoder.from_pretrained(
            cfg.init_from,
            temporal=temporal,
            reference_levels=levels,
            temporal_encoder=cfg.autoencoder.temporal_encoder,
        )
        if cfg.autoencoder.mouth_channels:  # a run may give an earlier model mouth channels
            model.config = model.config.replace(mouth_channels=cfg.autoencoder.mouth_channels)
        return model
    return DCAutoencoder(cfg.autoencoder.replace(temporal=bool(temporal)))


def trained_setting(cfg: AETrainConfig, name: str) -> int:
    """An integer autoencoder setting (``mouth_channels``, ``reference_levels``) of the model a run trains
    (what ``build_model`` gives it): the one asked for in ``cfg.autoencoder``, else the ``init_from``
    model's. With reference levels, the run's clips carry a reference frame of the same clip first."""
    asked = int(getattr(cfg.autoencoder, name))
    if asked or not cfg.init_from:
        return asked
    return int(read_json(Path(cfg.init_from) / "config.json").get(name, 0))


def uses_mouth_swap(cfg: AETrainConfig) -> bool:
    """Whether a run trains on (face, target, donor) triples with the mouth-swap objective: a spatial stage
    of a model with mouth channels (later stages of such a model train on clips, keeping its channels).
    Asking for mouth channels in another stage is refused."""
    if cfg.autoencoder.mouth_channels and cfg.stage != "spatial":
        raise ValueError("the mouth swap trains on single frames: use it in the spatial stage")
    return cfg.stage == "spatial" and cfg.mouth_swap_weight > 0 and trained_setting(cfg, "mouth_channels") > 0


def encoder_trains(cfg: AETrainConfig, model: DCAutoencoder) -> bool:
    """Whether a run changes what the encoder computes (so the latent normalisation is estimated anew): not
    a decoder stage, nor a temporal stage whose temporal layers are all in the decoder."""
    if cfg.stage == "temporal":
        return model.config.temporal_encoder
    return cfg.stage != "decoder"


def trainable_parameters(model: DCAutoencoder, stage: str) -> list[torch.nn.Parameter]:
    """Stage 2 ("temporal") trains only the temporal layers, "decoder" only the decoder; the others train
    everything."""
    if stage == "temporal":
        params = model.temporal_parameters()
    elif stage == "decoder":
        params = list(model.decoder.parameters())
    else:
        params = list(model.parameters())
    keep = {id(p) for p in params}
    for p in model.parameters():
        p.requires_grad_(id(p) in keep)
    if not params:
        raise ValueError(f"stage {stage!r} has no parameters to train (temporal layers disabled?)")
    return params


@torch.no_grad()
def estimate_latent_stats(
    model: DCAutoencoder,
    clips: ClipSampler,
    rng: np.random.Generator,
    batches: int,
    device: str | torch.device = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std (fp32, on the CPU) of raw latents over ``batches`` sampled clips."""
    c = model.config
    zs = []
    for _ in range(batches):
        x = clips_to_tensor(clips(rng), c.image_height, c.image_width, device)
        zs.append(model.encode_raw(x).float().transpose(0, 2).reshape(c.latent_channels, -1))
    z = torch.cat(zs, dim=1)
    return z.mean(dim=1).cpu(), z.std(dim=1).clamp_min(1e-6).cpu()


def train_autoencoder(
    cfg: AETrainConfig,
    clips: ClipSampler,
    out_dir: str | os.PathLike[str],
    steps: int,
    progress: bool = True,
    on_step: Callable[[int, dict[str, float]], None] | None = None,
    device: str | torch.device = "cpu",
    final_lr_fraction: float | None = None,
    mixed_precision: bool = True,
    compile_model: bool = False,
) -> DCAutoencoder:
    """Train until ``steps`` total steps, resuming from ``out_dir/checkpoints`` when present.

    ``clips(rng)`` returns a uint8 batch (B, T, H, W, 3) (numpy, or a torch tensor); for a reference-
    conditioned model (``reference_levels``) frame 0 of each clip is its reference, read by the decoder
    (dropped for a whole batch with probability ``cfg.reference_dropout``) and not reconstructed. The
    model, the loss and every batch live on ``device``; on a CUDA device the model runs under bf16
    autocast unless ``mixed_precision`` is False (the loss is always computed in fp32). ``final_lr_fraction``,
    when given, decays the learning rate along a cosine to that fraction of ``cfg.lr`` at ``steps``; by
    default it stays constant after the warm-up. Writes checkpoints every ``cfg.checkpoint_every``
    steps and at the end (with the loss curve, ``out_dir/loss.csv`` and ``loss.png``), then the model
    folder ``out_dir/model`` with latent normalisation estimated from ``cfg.latent_stats_batches``
    batches; both are CPU-loadable safetensors. Returns the trained model, on ``device``.
    ``compile_model`` compiles the encoder and decoder (``torch.compile``, in place: the weights and their
    names stay) for faster steps after a first compile of a minute; it needs a C++ compiler.
    """
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    if final_lr_fraction is not None and not 0.0 <= final_lr_fraction <= 1.0:
        raise ValueError(f"final_lr_fraction must be in [0, 1], got {final_lr_fraction}")
    device = torch.device(device)
    autocast = mixed_precision and device.type == "cuda"
    out = Path(out_dir)
    ckpt_dir = out / "checkpoints"
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model = build_model(cfg).to(device)
    params = trainable_parameters(model, cfg.stage)
    if compile_model:
        model.encoder.compile()
        model.decoder.compile()
    opt = torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    loss_fn = AutoencoderLoss(
        cfg.l1_weight,
        cfg.ssim_weight,
        cfg.temporal_weight,
        cfg.gan_weight,
        cfg.gan_start_step,
        cfg.disc_width,
    ).to(device)
    swap_loss = None
    if uses_mouth_swap(cfg):
        swap_loss = MouthSwapLoss(
            loss_fn,
            model.config.mouth_channels,
            cfg.mouth_swap_weight,
            cfg.mouth_invariance_weight,
            cfg.mouth_weight,
            cfg.reference_change_weight,
        )
    modules: dict[str, torch.nn.Module] = {"model": model}
    optimizers: dict[str, torch.optim.Optimizer] = {"model": opt}
    disc_opt = None
    if loss_fn.discriminator is not None:
        disc_opt = torch.optim.AdamW(loss_fn.discriminator.parameters(), lr=cfg.disc_lr, betas=(0.5, 0.9))
        modules["discriminator"] = loss_fn.discriminator
        optimizers["discriminator"] = disc_opt

    step = 0
    found = latest_checkpoint(ckpt_dir)
    if found is not None:
        step, _ = load_checkpoint(found, modules, optimizers, rng)
    atomic_write_json(out / "train_config.json", cfg.to_dict())
    log = LossLog(out / "loss.csv", resume_step=step)
    started = time.perf_counter()

    c = model.config
    model.train()
    bar = tqdm(total=steps, initial=min(step, steps), disable=not progress, desc=f"ae/{cfg.stage}")
    while step < steps:
        x = clips_to_tensor(clips(rng), c.image_height, c.image_width, device)
        lr = learning_rate(cfg, step, steps, final_lr_fraction)
        for group in opt.param_groups:
            group["lr"] = lr
        if swap_loss is not None:
            if x.shape[1] == 5 and rng.random() < cfg.reference_dropout:
                x = x[:, :3]  # the triples without their references: the decoder learns to do without
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                loss, recon, parts = swap_loss(model, x, step)
            x = x[:, :1]  # the faces, what the discriminator compares the reconstructions with
        else:
            reference = None
            if c.reference_levels:
                reference, x = x[:, 0], x[:, 1:]
                if rng.random() < cfg.reference_dropout:
                    reference = None
            if cfg.stage == "spatial" or not c.temporal:
                if reference is not None:
                    reference = reference.repeat_interleave(x.shape[1], dim=0)
                x = x.reshape(-1, 1, *x.shape[2:])
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                recon = model.reconstruct(x, reference)
            recon = recon.float()
            loss, parts = loss_fn(recon, x, step)
            if reference is not None and cfg.reference_change_weight > 0:
                changed = changed_l1(recon, x, reference)
                loss = loss + cfg.reference_change_weight * changed
                parts.update(changed_l1=float(changed.detach()), loss=float(loss.detach()))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        opt.step()
        if disc_opt is not None and loss_fn.gan_active(step):
            d_loss = loss_fn.discriminator_loss(recon, x)
            disc_opt.zero_grad(set_to_none=True)
            d_loss.backward()
            disc_opt.step()
            parts["gan_d"] = float(d_loss.detach())
        step += 1
        bar.update(1)
        keys = ("loss", "l1", "swap_l1", "invariance", "mouth_l1", "changed_l1")
        bar.set_postfix({k: f"{parts[k]:.4f}" for k in keys if k in parts})
        if on_step is not None:
            on_step(step, parts)
        if step % cfg.log_every == 0 or step == steps:
            log.add(step, loss=parts["loss"], lr=lr, seconds=time.perf_counter() - started)
        if step % cfg.checkpoint_every == 0 or step == steps:
            log.save()
            log.plot(out / "loss.png", f"autoencoder, {cfg.stage} stage", "reconstruction loss")
            save_checkpoint(
                ckpt_dir, step, modules, optimizers, rng, {"stage": cfg.stage}, cfg.keep_checkpoints
            )
    bar.close()

    model.eval()
    if encoder_trains(cfg, model):  # else the init model's latents stay, normalisation included
        stats_rng = np.random.default_rng(cfg.seed + 1)
        shift, scale = estimate_latent_stats(model, clips, stats_rng, cfg.latent_stats_batches, device)
        model.set_latent_stats(shift, scale)
    model.save_pretrained(out / "model")
    return model
