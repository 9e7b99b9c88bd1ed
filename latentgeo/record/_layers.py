"""Finding the layers to record and hooking them, all-or-nothing."""

from __future__ import annotations

import contextlib
import difflib
import fnmatch
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch

__all__ = ["capture_outputs", "first_tensor", "resolve_layers", "unwrap_model"]

# Prefixes that wrappers add to parameter/module names: DDP/DataParallel ("module.") and
# torch.compile ("_orig_mod.").  Users often copy names from a wrapped model's state_dict.
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")


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


def _strip(name: str) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in _WRAPPER_PREFIXES:
            if name.startswith(prefix):
                name, changed = name[len(prefix) :], True
    return name


def resolve_layers(module: torch.nn.Module, layers: str | Sequence[str]) -> list[str]:
    """Resolve layer names and glob patterns against ``module.named_modules()``.

    Parameters
    ----------
    module : torch.nn.Module
        The unwrapped model.
    layers : str or sequence of str
        Exact module names (``"block2.conv"``) or ``fnmatch`` patterns (``"block*.conv"``).
        Wrapper prefixes ``module.`` / ``_orig_mod.`` are ignored.

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
    names = [n for n, _ in module.named_modules() if n]
    known = set(names)
    out: list[str] = []
    problems = []
    for raw in layers:
        if not isinstance(raw, str):
            raise TypeError(f"layer names must be strings, got {raw!r} ({type(raw).__name__})")
        name = _strip(raw)
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


def first_tensor(output: Any, layer: str) -> torch.Tensor:
    """The tensor a module's output stands for: itself, the first tensor of a tuple/list, or
    the first tensor value of a mapping (e.g. a Hugging Face ``ModelOutput``)."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)):
        items: Any = output
    elif isinstance(output, dict) or hasattr(output, "values"):
        items = list(output.values())
    else:
        items = ()
    for item in items:
        if isinstance(item, torch.Tensor):
            return item
    raise TypeError(
        f"layer {layer!r} returned {type(output).__name__}, which holds no tensor to record"
    )


@contextlib.contextmanager
def capture_outputs(
    module: torch.nn.Module, layers: Sequence[str], sink: Callable[[str, torch.Tensor], None]
) -> Iterator[None]:
    """Hook ``layers`` of ``module`` for the duration of the block.

    Every hooked module's output is passed to ``sink(name, tensor)``.  Hooks are registered
    all-or-nothing and removed in ``finally``, also when the forward raises.
    """
    modules = dict(module.named_modules())
    handles = []
    try:
        for name in layers:

            def hook(_mod: Any, _inp: Any, output: Any, name: str = name) -> None:
                sink(name, first_tensor(output, name))

            handles.append(modules[name].register_forward_hook(hook))
        yield
    finally:
        for h in handles:
            h.remove()
