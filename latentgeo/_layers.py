"""Finding a model's layers under the names a user writes, through wrappers.

The one place where a layer name (or glob pattern) becomes a submodule: the recorder hooks
what it resolves, and the probes that intervene on layers (attribution, irrep ablation,
discovery) replace outputs at the same modules.  Part of the private core (beside
:mod:`latentgeo._model_call`, the one path into the user's model); the public names are
:func:`latentgeo.record.resolve_layers`, :func:`latentgeo.record.unwrap_model` and
:func:`latentgeo.record.layer_modules`.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Sequence
from typing import Any

import torch

__all__ = ["layer_modules", "resolve_layers", "unwrap_model"]

# Name segments that wrappers add to module names: torch.compile ("_orig_mod"), FSDP1
# ("_fsdp_wrapped_module") and activation checkpointing; DDP/DataParallel add "module", dropped
# where the parent is such a wrapper.  Users often copy names from a wrapped model's state_dict.
_WRAPPER_SEGMENTS = frozenset({"_orig_mod", "_fsdp_wrapped_module", "_checkpoint_wrapped_module"})


def unwrap_model(model: Any) -> torch.nn.Module:
    """The module that really computes: strips DDP/DataParallel (``.module``) and
    ``torch.compile`` (``._orig_mod``) wrappers, however nested.

    Recording forwards through the unwrapped module, so DDP's forward (buffer broadcast, a
    collective) and compiled graphs are never triggered by recording.
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    parallel = (torch.nn.parallel.DistributedDataParallel, torch.nn.DataParallel)
    for _ in range(16):
        if isinstance(model, parallel):
            model = model.module
        elif isinstance(getattr(model, "_orig_mod", None), torch.nn.Module):
            model = model._orig_mod
        else:
            return model
    raise ValueError("model wrappers nested more than 16 deep")


def resolve_layers(module: torch.nn.Module, layers: str | Sequence[str]) -> list[str]:
    """Resolve layer names and glob patterns against ``module.named_modules()``.

    Parameters
    ----------
    module : torch.nn.Module
        The unwrapped model.
    layers : str or sequence of str
        Exact module names (``"block2.conv"``) or ``fnmatch`` patterns (``"block*.conv"``).
        Wrapper segments (``module.``, ``_orig_mod.``, ``_fsdp_wrapped_module.``) are
        ignored (see :func:`layer_modules`).

    Returns
    -------
    list of str
        Module names in the order given (a pattern expands in module order), without
        duplicates.

    Raises
    ------
    ValueError
        For every name or pattern that matches no module, listing close matches.
    """
    if isinstance(layers, str):
        layers = [layers]
    if not isinstance(layers, Sequence) or not layers:
        raise ValueError(f"layers must be a non-empty list of module names, got {layers!r}")
    names = list(layer_modules(module))
    known = set(names)
    out: list[str] = []
    problems = []
    for raw in layers:
        if not isinstance(raw, str):
            raise TypeError(f"layer names must be strings, got {raw!r} ({type(raw).__name__})")
        name = _clean(raw)
        if any(c in name for c in "*?["):
            matched = [n for n in names if fnmatch.fnmatchcase(n, name)]
        else:
            matched = [name] if name in known else []
        if not matched:
            close = difflib.get_close_matches(name, names, n=5, cutoff=0.5)
            hint = f"; close matches: {close}" if close else ""
            problems.append(f"{raw!r} matches no module of {type(module).__name__}{hint}")
        out.extend(m for m in matched if m not in out)
    if problems:
        raise ValueError(
            "unknown layer(s): "
            + "; ".join(problems)
            + f". Available modules: {names[:40]}"
            + (" ..." if len(names) > 40 else "")
        )
    return out


def layer_modules(module: torch.nn.Module) -> dict[str, torch.nn.Module]:
    """``{name: module}`` of ``module.named_modules()`` under the names a user writes.

    Wrapper segments are dropped from the names: ``_orig_mod`` (``torch.compile``),
    ``_fsdp_wrapped_module`` (FSDP1), ``_checkpoint_wrapped_module`` (activation
    checkpointing), and ``module`` where its parent is a DDP/DataParallel wrapper.  Where a
    wrapper and the module it wraps get one name, the name stands for the innermost module
    (the one that computes); its output is the wrapper's output.
    """
    parallel = (torch.nn.parallel.DistributedDataParallel, torch.nn.DataParallel)
    clean: dict[str, str] = {"": ""}
    out: dict[str, torch.nn.Module] = {}
    for raw, mod in module.named_modules():
        if not raw:
            continue
        parent_raw, _, leaf = raw.rpartition(".")
        parent = module.get_submodule(parent_raw) if parent_raw else module
        drop = leaf in _WRAPPER_SEGMENTS or (leaf == "module" and isinstance(parent, parallel))
        base = clean.get(parent_raw, _clean(parent_raw))
        name = base if drop else (f"{base}.{leaf}" if base else leaf)
        clean[raw] = name
        if name:
            out[name] = mod  # named_modules() lists a wrapper before what it wraps
    return out


def _clean(name: str) -> str:
    """A user-written name without wrapper segments (leading ``module.`` included)."""
    parts = [p for p in name.split(".") if p not in _WRAPPER_SEGMENTS]
    while name.startswith("module.") and parts and parts[0] == "module":
        parts = parts[1:]
        name = name[len("module.") :]
    return ".".join(parts)
