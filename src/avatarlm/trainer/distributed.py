"""Data-parallel training under ``torchrun``: process group set-up and gradient averaging.

``torchrun --nproc_per_node N -m avatarlm.cli train ar ...`` starts N processes with RANK / WORLD_SIZE /
LOCAL_RANK in their environment; each computes the gradient of its share of the global batch and the
gradients are summed with one all-reduce per step (gloo on CPU, NCCL on GPU). A plain ``avatarlm train
ar`` is the one-process case and needs no process group.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistributedContext:
    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str | torch.device = "cpu") -> DistributedContext:
    """Join the process group torchrun describes in the environment, or run alone without one.

    On CUDA each process takes GPU ``LOCAL_RANK``."""
    device = torch.device(device)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistributedContext(0, 1, device)
    rank = int(os.environ["RANK"])
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return DistributedContext(rank, world, device)


def sum_gradients(params: Iterable[torch.nn.Parameter], ctx: DistributedContext) -> None:
    """Replace every gradient by its sum over the processes (missing gradients count as zeros), one
    all-reduce for all of them. Each process's loss must already be its share of the global mean. A
    parameter no process has a gradient for keeps none (as in one process: the optimizer skips it)."""
    if ctx.world_size == 1:
        return
    params = list(params)
    used = torch.tensor([p.grad is not None for p in params], dtype=torch.int32)
    dist.all_reduce(used)
    params = [p for p, u in zip(params, used.tolist(), strict=True) if u]
    if not params:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = flat[offset : offset + n].view_as(p).clone()
        offset += n


def barrier(ctx: DistributedContext) -> None:
    if ctx.world_size > 1:
        dist.barrier()


def shutdown(ctx: DistributedContext) -> None:
    if ctx.world_size > 1 and dist.is_initialized():
        dist.destroy_process_group()
