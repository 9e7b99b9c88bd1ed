"""Which tensor a model's (or a module's) output stands for: one rule, and selectors.

Modules return many structures: a tensor, ``(output, state)`` tuples, nested tuples, dicts,
dataclasses, named tuples, Hugging Face ``ModelOutput`` objects, and objects that wrap a tensor
(escnn's ``GeometricTensor`` holds it as ``.tensor``).  Every place latentgeo reads a model's
output (the recorder's hooks, :func:`probes.lie_derivative`,
:func:`latentgeo.testing.assert_equivariant`) goes through :func:`select_output`.

The rule
--------
Without a selector, the recorded tensor is the **first tensor in reading order, depth-first**:

1. a ``torch.Tensor`` is itself;
2. a mapping (``dict``, ``OrderedDict``, Hugging Face ``ModelOutput``) is read in its own order
   of values (a ``ModelOutput`` holds only the fields that are set);
3. a ``tuple`` or ``list`` (named tuples included) in index order;
4. a dataclass instance in the order of its fields;
5. any other object with a ``tensor`` attribute holding a tensor (a tensor wrapper such as
   escnn's ``GeometricTensor``) stands for that tensor;

descending into the first item that holds a tensor at all.  ``((h, g), aux)`` stands for ``h``;
``{"logits": y, "hidden": h}`` for ``y``.  The path the rule took is reported (``"0.0"``), and
the recorder stores it in the layer's attributes.

Selectors
---------
When the rule picks the wrong tensor, a selector says which one:

* a path string of ``.``-separated steps, ``"hidden_states.-1"`` or ``"0.1"``: an integer step
  indexes a tuple/list (negative from the end), any step is a key of a mapping or an attribute
  of a dataclass or object; where the path ends on a structure, the rule above continues from
  there;
* a sequence of steps (``("hidden_states", -1)``) for keys containing ``"."``;
* a callable ``output -> tensor``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

__all__ = ["OutputSelector", "describe_selector", "parse_selector", "select_output"]

#: A selector: None (the rule), a path string, a sequence of path steps, or a callable.
OutputSelector = None | str | Sequence[str | int] | Callable[[Any], Any]

_MAX_DEPTH = 32


def _wrapped_tensor(obj: Any) -> torch.Tensor | None:
    inner = getattr(obj, "tensor", None)
    return inner if isinstance(inner, torch.Tensor) else None


def _children(obj: Any) -> list[tuple[str, Any]] | None:
    """``(step, child)`` pairs of a structure in reading order, or None for a leaf."""
    if isinstance(obj, Mapping):
        return [(str(k), v) for k, v in obj.items()]
    if isinstance(obj, (tuple, list)):
        return [(str(i), v) for i, v in enumerate(obj)]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return [(f.name, getattr(obj, f.name, None)) for f in dataclasses.fields(obj)]
    return None


def _first(
    obj: Any, path: tuple[str, ...], depth: int
) -> tuple[torch.Tensor, tuple[str, ...]] | None:
    if isinstance(obj, torch.Tensor):
        return obj, path
    if depth > _MAX_DEPTH:
        return None
    children = _children(obj)
    if children is None:
        inner = _wrapped_tensor(obj)
        return None if inner is None else (inner, (*path, "tensor"))
    for step, child in children:
        found = _first(child, (*path, step), depth + 1)
        if found is not None:
            return found
    return None


def parse_selector(selector: Any) -> OutputSelector:
    """Validate a selector and return it in canonical form (a path becomes a tuple of steps).

    Parameters
    ----------
    selector : None, str, sequence of str or int, or callable
        See the module documentation.

    Returns
    -------
    None, tuple of str, or callable

    Raises
    ------
    TypeError
        For anything else.
    ValueError
        For an empty path or an empty step.
    """
    if selector is None or callable(selector):
        return selector
    if isinstance(selector, str):
        steps: tuple[str, ...] = tuple(selector.split("."))
    elif isinstance(selector, Sequence) and all(
        isinstance(s, (str, int)) and not isinstance(s, bool) for s in selector
    ):
        steps = tuple(str(s) for s in selector)
    else:
        raise TypeError(
            "an output selector must be None, a path string such as 'hidden_states.-1' or "
            f"'0.1', a sequence of keys/indices, or a callable output -> tensor; got {selector!r}"
        )
    if not steps or any(s == "" for s in steps):
        raise ValueError(f"output selector path {selector!r} has an empty step")
    return steps


def describe_selector(selector: Any) -> str:
    """A JSON-storable description of a selector: ``"auto"``, the path, or ``"callable:<name>"``."""
    selector = parse_selector(selector)
    if selector is None:
        return "auto"
    if callable(selector):
        name = getattr(selector, "__qualname__", None) or type(selector).__qualname__
        module = getattr(selector, "__module__", None)
        return f"callable:{module}.{name}" if module else f"callable:{name}"
    return ".".join(selector)


def _step(obj: Any, step: str, where: str) -> Any:
    if isinstance(obj, Mapping):
        if step in obj:
            return obj[step]
        for key in obj:  # non-string keys (ints) written as text in the path
            if str(key) == step:
                return obj[key]
        raise ValueError(f"{where}: no key {step!r}; keys are {[str(k) for k in obj]!r}")
    if isinstance(obj, (tuple, list)):
        fields = getattr(obj, "_fields", None)  # named tuple: allow field names too
        if fields is not None and step in fields:
            return getattr(obj, step)
        try:
            i = int(step)
        except ValueError:
            raise ValueError(
                f"{where}: {type(obj).__name__} of length {len(obj)} needs an integer index, "
                f"got {step!r}"
            ) from None
        if not -len(obj) <= i < len(obj):
            raise ValueError(f"{where}: index {i} out of range for length {len(obj)}")
        return obj[i]
    if hasattr(obj, step):
        return getattr(obj, step)
    raise ValueError(f"{where}: {type(obj).__name__} has no attribute or key {step!r}")


def select_output(
    output: Any, selector: OutputSelector = None, *, what: str = "the output"
) -> tuple[torch.Tensor, str]:
    """The tensor ``output`` stands for, and the path to it.

    Parameters
    ----------
    output : object
        What a model or module returned.
    selector : None, str, sequence or callable
        None follows the rule of this module; otherwise see :func:`parse_selector`.
    what : str
        Named in error messages (e.g. ``"layer 'blk'"``).

    Returns
    -------
    tensor : torch.Tensor
    path : str
        The ``.``-separated path taken (``""`` for a bare tensor, ``"callable"`` for a
        callable selector).

    Raises
    ------
    TypeError
        When no tensor is found, or a callable selector returns something else.
    ValueError
        When a path step does not exist in the output.

    Examples
    --------
    >>> import torch
    >>> h, g, aux = torch.zeros(2), torch.ones(2), torch.full((2,), 7.0)
    >>> select_output(((h, g), aux))[1]
    '0.0'
    >>> select_output({"logits": g, "hidden": (h, aux)}, "hidden.-1")[0].tolist()
    [7.0, 7.0]
    """
    selector = parse_selector(selector)
    if callable(selector):
        out = selector(output)
        if isinstance(out, torch.Tensor):
            return out, "callable"
        inner = _wrapped_tensor(out)
        if inner is not None:
            return inner, "callable"
        raise TypeError(
            f"the output selector {describe_selector(selector)} of {what} returned "
            f"{type(out).__name__}, expected a torch.Tensor"
        )
    node: Any = output
    path: tuple[str, ...] = ()
    for step in selector or ():
        name = str(step)
        node = _step(node, name, f"{what} at path {'.'.join((*path, name))!r}")
        path = (*path, name)
    found = _first(node, path, 0)
    if found is None:
        at = f" at path {'.'.join(path)!r}" if path else ""
        raise TypeError(
            f"{what}{at} is a {type(node).__name__}, which holds no tensor (searched depth-first "
            "through tuples, lists, mappings, dataclasses and objects with a .tensor); pass an "
            "output selector"
        )
    tensor, taken = found
    return tensor, ".".join(taken)
