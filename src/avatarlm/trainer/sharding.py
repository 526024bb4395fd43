"""Fully sharded data parallel (PyTorch's FSDP2, ``fully_shard``) for the AR trainer: ``sharding="fsdp"``.

The backbone's decoder layers and the flow head's blocks, where nearly all of a large preset's parameters
are (``paper``: 3.18 B of 3.20 B), are sharded over the processes: each holds 1/N of their weights, gradients and optimizer state, gathers a
layer's weights just before using it and reduce-scatters its gradients after. The rest of the model
(condition encoders, the head's input and output layers, embeddings: under 1%) stays whole on every process and its
gradients are summed with one all-reduce, as in the replicated mode. The EMA copy is sharded the same way.

Checkpoints stay whole (the format of a one-process run, so a run can resume with another process count or
mode): weights are loaded before sharding, the optimizer state is cut to each process's shards after, and
saving gathers everything first (every process takes part; the main one writes). Works on gloo (CPU) and
NCCL (GPU).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import FSDPModule, fully_shard
from torch.distributed.tensor import DTensor, distribute_tensor

from avatarlm.trainer.distributed import DistributedContext


def sharded_layers(model: nn.Module) -> list[nn.Module]:
    """The modules sharded: the backbone's decoder layers, the flow head's blocks and its modulation's
    linear layers (``paper``: 2.78 B, 0.20 B and 0.21 B of the 3.20 B parameters)."""
    layers = list(model.backbone.model.layers)  # type: ignore[union-attr, arg-type]
    head = model.head
    layers += list(getattr(head, "blocks", []))
    modulation = getattr(head, "modulation", None)  # used through methods: shard the linears it calls
    if isinstance(modulation, nn.Module):
        layers += [m for m in modulation.children() if isinstance(m, nn.Linear)]
    return layers


def shard_model(model: nn.Module, ctx: DistributedContext) -> None:
    """Shard ``model``'s backbone decoder layers over the processes of ``ctx`` (in place)."""
    mesh = init_device_mesh(ctx.device.type, (ctx.world_size,))
    for layer in sharded_layers(model):
        fully_shard(layer, mesh=mesh)
        assert isinstance(layer, FSDPModule)
        layer.set_gradient_divide_factor(1.0)  # sum: each process's loss is already its share of the mean
        layer.set_force_sum_reduction_for_comms(True)  # plain SUM collectives (gloo has no PREMUL_SUM)


def reshard(model: nn.Module) -> None:
    """Free the gathered weights of ``model``'s sharded layers (each layer is its own FSDP root, and a
    root keeps its weights gathered after a forward pass, expecting a backward pass)."""
    for layer in sharded_layers(model):
        assert isinstance(layer, FSDPModule)
        layer.reshard()


def is_sharded(t: torch.Tensor) -> bool:
    return isinstance(t, DTensor)


def replicated(params: Iterable[nn.Parameter]) -> list[nn.Parameter]:
    """The parameters every process holds whole (their gradients still need summing)."""
    return [p for p in params if not is_sharded(p)]


def _full(t: Any) -> Any:
    return t.full_tensor() if isinstance(t, DTensor) else t


def full_state_dict(module: nn.Module) -> dict[str, torch.Tensor]:
    """``module``'s state dict with every shard gathered (a collective: every process must call it)."""
    return {k: _full(v).detach().cpu() for k, v in module.state_dict().items()}


def full_optimizer_state(opt: torch.optim.Optimizer) -> dict[str, Any]:
    """``opt.state_dict()`` with sharded state gathered whole (a collective)."""
    sd = opt.state_dict()
    state = {pid: {k: _full(v) for k, v in s.items()} for pid, s in sd["state"].items()}
    return {"state": state, "param_groups": sd["param_groups"]}


def shard_optimizer_state(sd: Mapping[str, Any], opt: torch.optim.Optimizer) -> dict[str, Any]:
    """A whole optimizer state (as saved) cut to this process's shards of ``opt``'s parameters."""
    params = [p for group in opt.param_groups for p in group["params"]]
    state = {}
    for pid, s in sd["state"].items():
        p = params[int(pid)]
        state[pid] = {
            k: distribute_tensor(v.to(p.device), p.device_mesh, p.placements)
            if isinstance(p, DTensor) and isinstance(v, torch.Tensor) and v.shape == p.shape
            else v
            for k, v in s.items()
        }
    return {"state": state, "param_groups": sd["param_groups"]}


def clip_gradients(params: list[nn.Parameter], max_norm: float) -> float:
    """Scale the gradients so that their global L2 norm is at most ``max_norm`` (no limit if inf); returns
    the norm before clipping. Sharded gradients' squares are summed over the processes."""
    sharded = torch.zeros((), dtype=torch.float64)
    whole = torch.zeros((), dtype=torch.float64)
    for p in params:
        if p.grad is None:
            continue
        if is_sharded(p.grad):
            sharded += p.grad.to_local().double().pow(2).sum().cpu()  # type: ignore[attr-defined]
        else:
            whole += p.grad.double().pow(2).sum().cpu()
    if dist.is_initialized():
        dist.all_reduce(sharded)
    norm = math.sqrt(float(sharded + whole))
    if math.isfinite(max_norm) and norm > max_norm:
        scale = max_norm / (norm + 1e-6)
        for p in params:
            if p.grad is not None:
                p.grad.mul_(scale)
    return norm
