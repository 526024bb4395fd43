"""Training checkpoints: modules, optimizers, step and RNG state; safetensors + JSON, no pickle.

Layout of a checkpoint directory::

    step_00000500/tensors.safetensors   module weights, optimizer tensors, torch RNG state
    step_00000500/state.json            step, optimizer hyper-parameters, numpy RNG state, extra
    latest.json                         {"name": "step_00000500", "step": 500}

A checkpoint is built in a temporary folder and renamed into place, then ``latest.json`` is replaced
atomically, so a run killed at any moment leaves the previous checkpoint intact.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..io import atomic_write_json, load_tensors, read_json, save_tensors

LATEST = "latest.json"
STATE = "state.json"
TENSORS = "tensors.safetensors"


def _split_optimizer(
    name: str, opt: torch.optim.Optimizer | Mapping[str, Any]
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    sd = opt.state_dict() if isinstance(opt, torch.optim.Optimizer) else opt
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, state in sd["state"].items():
        for key, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{name}.{pid}.{key}"] = value
            else:
                scalars.setdefault(str(pid), {})[key] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _join_optimizer(name: str, tensors: Mapping[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    prefix = f"optim.{name}."
    for key, value in tensors.items():
        if key.startswith(prefix):
            pid, field = key[len(prefix) :].split(".", 1)
            state.setdefault(int(pid), {})[field] = value
    for pid, values in meta["scalars"].items():
        state.setdefault(int(pid), {}).update(values)
    groups = []
    for group in meta["param_groups"]:
        group = dict(group)
        if isinstance(group.get("betas"), list):
            group["betas"] = tuple(group["betas"])
        groups.append(group)
    return {"state": state, "param_groups": groups}


def save_checkpoint(
    directory: str | os.PathLike[str],
    step: int,
    modules: Mapping[str, nn.Module | Mapping[str, torch.Tensor]],
    optimizers: Mapping[str, torch.optim.Optimizer | Mapping[str, Any]],
    rng: np.random.Generator | None = None,
    extra: Mapping[str, Any] | None = None,
    keep: int = 2,
) -> Path:
    """Atomically write checkpoint ``step`` and keep only the newest ``keep`` ones. Modules and optimizers
    may be given as their state dicts (e.g. gathered from shards)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob(".tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    name = f"step_{step:08d}"
    tmp = directory / f".tmp-{name}-{os.getpid()}"
    tmp.mkdir()
    tensors: dict[str, torch.Tensor] = {"rng.torch": torch.get_rng_state()}
    for mod_name, module in modules.items():
        for key, value in (module.state_dict() if isinstance(module, nn.Module) else module).items():
            tensors[f"module.{mod_name}.{key}"] = value
    optim_meta: dict[str, Any] = {}
    for opt_name, opt in optimizers.items():
        opt_tensors, optim_meta[opt_name] = _split_optimizer(opt_name, opt)
        tensors.update(opt_tensors)
    save_tensors(tmp / TENSORS, tensors, {"format": "avatarlm", "kind": "checkpoint"})
    state = {
        "step": step,
        "optimizers": optim_meta,
        "numpy_rng": rng.bit_generator.state if rng is not None else None,
        "extra": dict(extra or {}),
    }
    atomic_write_json(tmp / STATE, state)
    final = directory / name
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    atomic_write_json(directory / LATEST, {"name": name, "step": step})
    steps = sorted(p for p in directory.glob("step_*") if p.is_dir())
    for old in steps[:-keep]:
        if old.name != name:
            shutil.rmtree(old, ignore_errors=True)
    return final


def _optimizer_state(path: Path, name: str, tensors: Mapping[str, torch.Tensor], state: dict[str, Any]):
    if name not in state["optimizers"]:
        raise ValueError(f"checkpoint {path} has no optimizer {name!r}")
    return _join_optimizer(name, tensors, state["optimizers"][name])


def read_optimizer_state(path: str | os.PathLike[str], name: str) -> dict[str, Any]:
    """The state dict of optimizer ``name`` in checkpoint ``path`` (to load after reshaping it)."""
    path = Path(path)
    tensors, _ = load_tensors(path / TENSORS)
    return _optimizer_state(path, name, tensors, read_json(path / STATE))


def latest_checkpoint(directory: str | os.PathLike[str]) -> Path | None:
    """Path of the newest complete checkpoint, or None when there is none."""
    pointer = Path(directory) / LATEST
    if not pointer.is_file():
        return None
    path = Path(directory) / read_json(pointer)["name"]
    if not (path / STATE).is_file() or not (path / TENSORS).is_file():
        raise ValueError(f"{pointer} points to an incomplete checkpoint {path}")
    return path


def load_checkpoint(
    path: str | os.PathLike[str],
    modules: Mapping[str, nn.Module],
    optimizers: Mapping[str, torch.optim.Optimizer],
    rng: np.random.Generator | None = None,
) -> tuple[int, dict[str, Any]]:
    """Restore modules, optimizers and RNG states in place; returns (step, extra)."""
    path = Path(path)
    tensors, _ = load_tensors(path / TENSORS)
    state = read_json(path / STATE)
    for mod_name, module in modules.items():
        prefix = f"module.{mod_name}."
        weights = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
        missing, unexpected = module.load_state_dict(weights, strict=False)
        if missing or unexpected:
            raise ValueError(
                f"checkpoint {path} does not match module {mod_name!r}: missing {missing[:5]}, "
                f"unexpected {unexpected[:5]}"
            )
    for opt_name, opt in optimizers.items():
        opt.load_state_dict(_optimizer_state(path, opt_name, tensors, state))
    torch.set_rng_state(tensors["rng.torch"].to(torch.uint8))
    if rng is not None and state["numpy_rng"] is not None:
        rng.bit_generator.state = state["numpy_rng"]
    return int(state["step"]), state["extra"]
