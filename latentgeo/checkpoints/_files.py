"""Reading saved checkpoints safely: torch files, safetensors, Hugging Face folders.

Files are opened with ``torch.load(..., weights_only=True, mmap=True)``: a pickle that would
run code is refused, never executed, and memory-mapping means that reading a checkpoint's
metadata (its step) or its weights never reads the optimizer state from disk.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "CHECKPOINT_SUFFIXES",
    "HF_TRAINER_STATE",
    "HF_WEIGHT_FILES",
    "extract_state_dict",
    "is_hf_checkpoint_dir",
    "load_checkpoint",
]

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt", ".safetensors")

# Files of a Hugging Face ``Trainer`` checkpoint folder that hold the model's weights, in the
# order transformers itself prefers them; sharded checkpoints are listed by an index file.
HF_WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
HF_TRAINER_STATE = "trainer_state.json"


def is_hf_checkpoint_dir(path: Path) -> bool:
    """Whether ``path`` is a Hugging Face ``Trainer`` checkpoint folder (weights inside)."""
    return path.is_dir() and any((path / name).is_file() for name in HF_WEIGHT_FILES)


def _load_file(path: str, map_location: Any) -> Any:
    if path.lower().endswith(".safetensors"):
        try:
            from safetensors.torch import load_file
        except ImportError as exc:  # pragma: no cover - safetensors comes with transformers
            raise ImportError(
                f"reading {path!r} needs the safetensors package: pip install safetensors"
            ) from exc
        # safetensors takes a device name; torch.load's dict/callable map_location does not
        # apply, so those load on the CPU.
        device = str(map_location) if isinstance(map_location, (str, torch.device)) else "cpu"
        return load_file(path, device=device)
    try:
        # Memory-map: a training checkpoint's optimizer state is never read from disk.
        return torch.load(path, map_location=map_location, weights_only=True, mmap=True)
    except RuntimeError as exc:
        if "mmap" not in str(exc):
            raise
        # Files in torch's legacy (non-zip) format cannot be memory-mapped.
        return torch.load(path, map_location=map_location, weights_only=True)


def _load_hf_dir(path: Path, map_location: Any) -> dict[str, torch.Tensor]:
    for name in HF_WEIGHT_FILES:
        weights = path / name
        if not weights.is_file():
            continue
        if not name.endswith(".index.json"):
            return dict(_load_file(os.fspath(weights), map_location))
        # Sharded: {"weight_map": {parameter name: shard file}}.
        index = json.loads(weights.read_text())
        shards = sorted(set(index.get("weight_map", {}).values()))
        state: dict[str, torch.Tensor] = {}
        for shard in shards:
            state.update(_load_file(os.fspath(path / shard), map_location))
        return state
    raise ValueError(
        f"checkpoint folder {os.fspath(path)!r} holds none of {list(HF_WEIGHT_FILES)!r}"
    )


def load_checkpoint(source: Any, map_location: Any = "cpu") -> tuple[Any, str]:
    """Load one checkpoint safely; returns ``(object, description for messages)``.

    Parameters
    ----------
    source : str, os.PathLike or Mapping
        A ``.pt`` / ``.pth`` / ``.ckpt`` file (``torch.load(weights_only=True)``), a
        ``.safetensors`` file, a Hugging Face checkpoint folder (``model.safetensors``,
        ``pytorch_model.bin`` or their sharded index), or an in-memory state dict.
    map_location : str or torch.device
        Where tensors are loaded.

    Raises
    ------
    ValueError
        A file ``torch.load(weights_only=True)`` refuses (a pickle that needs code to run).
    TypeError
        ``source`` is neither a path nor a mapping.
    """
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        try:
            if Path(path).is_dir():
                obj: Any = _load_hf_dir(Path(path), map_location)
            else:
                obj = _load_file(path, map_location)
        except FileNotFoundError:
            raise
        except Exception as exc:
            # weights_only refuses pickles that would run code; say so instead of a raw
            # UnpicklingError, and never retry with weights_only=False.
            raise ValueError(
                f"could not load checkpoint {path!r} with torch.load(weights_only=True): {exc}. "
                f"Only tensors and plain containers are loaded (arbitrary pickles are refused "
                f"for safety): save the weights with torch.save(model.state_dict(), path), or "
                f"allow trusted extra types with torch.serialization.add_safe_globals([...])"
            ) from exc
        return obj, repr(path)
    if isinstance(source, Mapping):
        return source, "(in-memory state dict)"
    raise TypeError(
        f"each checkpoint must be a path (str or os.PathLike) or a state dict mapping, "
        f"got {type(source).__name__}: {source!r}"
    )


def extract_state_dict(obj: Any, source: str) -> Mapping[str, torch.Tensor]:
    """The model weights inside a loaded checkpoint object.

    Raises
    ------
    TypeError
        ``obj`` is not a mapping.
    ValueError
        ``obj`` is a mapping without parameter tensors.
    """
    if not isinstance(obj, Mapping):
        raise TypeError(
            f"checkpoint {source} holds a {type(obj).__name__}, expected a state dict "
            f"(mapping of parameter names to tensors) or a checkpoint dict with 'state_dict'"
        )
    # Lightning: {"state_dict": ..., "epoch": ..., "global_step": ...}; other trainers often
    # use "model" / "model_state_dict".
    for key in ("state_dict", "model_state_dict", "model"):
        inner = obj.get(key)
        if (
            isinstance(inner, Mapping)
            and inner
            and all(isinstance(v, torch.Tensor) for v in inner.values())
        ):
            return inner
    if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return obj
    raise ValueError(
        f"checkpoint {source} is a mapping but holds no state dict: its keys are "
        f"{sorted(map(str, obj))[:10]!r}; expected parameter names mapped to tensors, or one "
        f"of 'state_dict', 'model_state_dict', 'model'"
    )
