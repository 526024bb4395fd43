"""Model folders: ``config.json`` + ``model.safetensors``, written atomically, loaded without pickle."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import torch
from safetensors import safe_open
from safetensors.torch import save_file

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT_TAG = "avatarlm"


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()  # read once at import (umask can only be read by setting it)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to a temp file next to ``path``, fsync it, then ``os.replace`` it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), 0o666 & ~_UMASK)  # mkstemp makes 0600; give what open() would give
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Atomically write ``obj`` as indented JSON."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read a JSON file; a missing or unreadable file raises ValueError naming it."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"missing file {path}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from err


def save_tensors(
    path: str | os.PathLike[str],
    tensors: Mapping[str, torch.Tensor],
    metadata: Mapping[str, str] | None = None,
    dtype: torch.dtype | None = None,
) -> None:
    """Atomically write tensors as safetensors; float tensors are cast to ``dtype`` when given."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    prepared: dict[str, torch.Tensor] = {}
    for name, t in tensors.items():
        t = t.detach().cpu()
        if dtype is not None and t.is_floating_point():
            t = t.to(dtype)
        prepared[name] = t.contiguous().clone()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(prepared, tmp, metadata=dict(metadata or {}))
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def load_tensors(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read safetensors (no pickle); fp16/bf16 tensors are upcast to fp32. Returns (tensors, metadata)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"missing file {path}")
    tensors: dict[str, torch.Tensor] = {}
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = dict(f.metadata() or {})
            for name in f.keys():  # noqa: SIM118 - safe_open has keys() but is not a Mapping
                t = f.get_tensor(name)
                if t.dtype in (torch.float16, torch.bfloat16):
                    t = t.float()
                tensors[name] = t
    except Exception as err:  # safetensors raises its own error types for corrupt files
        raise ValueError(f"cannot read {path} as safetensors: {err}") from err
    return tensors, metadata


def save_model_folder(
    folder: str | os.PathLike[str],
    config: Mapping[str, Any],
    state_dict: Mapping[str, torch.Tensor],
    dtype: torch.dtype | None = None,
) -> Path:
    """Write ``folder/config.json`` and ``folder/model.safetensors``. ``config['kind']`` is required; it is
    also stored in the weights' metadata so a folder mixing two models is refused on load."""
    kind = config.get("kind")
    if not isinstance(kind, str):
        raise ValueError(f"config needs a string 'kind', got {kind!r}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_tensors(folder / WEIGHTS_NAME, state_dict, {"format": FORMAT_TAG, "kind": kind}, dtype=dtype)
    atomic_write_json(folder / CONFIG_NAME, dict(config))
    return folder


def load_model_folder(
    folder: str | os.PathLike[str], kind: str
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Read a model folder written by :func:`save_model_folder`; returns (config dict, fp32 state dict)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"model folder {folder} does not exist")
    for name in (CONFIG_NAME, WEIGHTS_NAME):
        if not (folder / name).is_file():
            raise ValueError(f"model folder {folder} is missing {name}")
    config = read_json(folder / CONFIG_NAME)
    if not isinstance(config, dict) or config.get("kind") != kind:
        got = config.get("kind") if isinstance(config, dict) else type(config).__name__
        raise ValueError(f"{folder / CONFIG_NAME} describes a {got!r} model, expected {kind!r}")
    tensors, metadata = load_tensors(folder / WEIGHTS_NAME)
    if metadata.get("format") != FORMAT_TAG or metadata.get("kind") != kind:
        raise ValueError(
            f"{folder / WEIGHTS_NAME} holds weights of kind {metadata.get('kind')!r} "
            f"(format {metadata.get('format')!r}), expected {kind!r} ({FORMAT_TAG!r})"
        )
    return config, tensors


def check_state_dict(
    expected: Mapping[str, torch.Tensor], got: Mapping[str, torch.Tensor], source: str | os.PathLike[str]
) -> None:
    """Raise ValueError listing missing, unexpected and wrongly shaped tensors."""
    missing = sorted(set(expected) - set(got))
    unexpected = sorted(set(got) - set(expected))
    shapes = [
        f"{k}: {tuple(got[k].shape)} vs {tuple(expected[k].shape)}"
        for k in sorted(set(expected) & set(got))
        if got[k].shape != expected[k].shape
    ]
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} tensor(s) e.g. {', '.join(missing[:5])}")
    if unexpected:
        problems.append(f"unexpected {len(unexpected)} tensor(s) e.g. {', '.join(unexpected[:5])}")
    if shapes:
        problems.append(f"{len(shapes)} shape mismatch(es) e.g. {'; '.join(shapes[:5])}")
    if problems:
        raise ValueError(f"weights in {source} do not match their config: " + " | ".join(problems))


M = TypeVar("M", bound=torch.nn.Module)


def load_pretrained(folder: str | os.PathLike[str], kind: str, build: Callable[[dict[str, Any]], M]) -> M:
    """A module from a folder of :func:`save_model_folder`: ``build(config dict)``, weights checked and
    loaded (fp32), in eval mode."""
    config, tensors = load_model_folder(folder, kind)
    module = build(config)
    check_state_dict(module.state_dict(), tensors, folder)
    module.load_state_dict(tensors)
    return module.eval()
