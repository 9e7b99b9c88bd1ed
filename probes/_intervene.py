"""Forwards that read and replace layer outputs, through the protected model-call path.

The interventions of :func:`probes.equivariance_attribution` and :func:`probes.irrep_ablation`
(orbit-average a layer, add a tangent vector to it, project it onto irreps) all come down to
one forward of the user's model in which some layers' outputs are read and others replaced.
That forward runs inside :func:`latentgeo._model_call.protected_call` (eval through the
model's own API, modes and random state restored); the caller's grad mode is kept inside it,
so a forward-mode (dual-number) or double-backward derivative can flow through a
replacement.  Outputs are read by the one output rule (:mod:`latentgeo._outputs`), and a
replacement is written back at the path the rule took, so a layer returning ``(h, state)``
or a dict is intervened on at its recorded tensor.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import torch

from latentgeo._layers import layer_modules, resolve_layers, unwrap_model
from latentgeo._model_call import protected_call
from latentgeo._outputs import select_output

__all__ = ["LayerForward", "check_inputs", "forward_order", "model_layers"]


def model_layers(model: Any, layers: Any) -> tuple[list[str], dict[str, torch.nn.Module]]:
    """Resolve layer names (or glob patterns) of ``model`` to its submodules.

    Returns the names in the order given and ``{name: module}``.

    Raises
    ------
    TypeError
        If ``model`` is not a ``torch.nn.Module``.
    ValueError
        For an unknown layer name (with close matches) or an empty list.
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(
            f"model must be a torch.nn.Module (layers are its submodules), got "
            f"{type(model).__name__!r}"
        )
    inner = unwrap_model(model)
    names = resolve_layers(inner, layers)
    if not names:
        raise ValueError(f"layers must name at least one submodule, got {layers!r}")
    modules = layer_modules(inner)
    return names, {n: modules[n] for n in names}


def _replace_at(output: Any, path: str, new: torch.Tensor, what: str) -> Any:
    """``output`` with the tensor at ``path`` (the output rule's path) replaced by ``new``."""
    if path == "":
        return new
    step, _, rest = path.partition(".")
    if isinstance(output, tuple) and hasattr(output, "_fields"):
        items = list(output)
        items[int(step)] = _replace_at(items[int(step)], rest, new, what)
        return type(output)(*items)
    if isinstance(output, (tuple, list)):
        items = list(output)
        items[int(step)] = _replace_at(items[int(step)], rest, new, what)
        return type(output)(items)
    if isinstance(output, dict):
        out = dict(output)
        key = next(k for k in output if str(k) == step)
        out[key] = _replace_at(output[key], rest, new, what)
        return type(output)(out) if type(output) is not dict else out
    raise TypeError(
        f"{what} returns a {type(output).__name__}; latentgeo can replace a layer's tensor "
        "inside tuples, lists, named tuples and dicts only -- hook a submodule that returns "
        "one of those (or a tensor)"
    )


class LayerForward:
    """Forwards of ``model`` that read some layers and replace others.

    Parameters
    ----------
    model : torch.nn.Module
    modules : mapping of str to torch.nn.Module
        The layers that may be read or replaced, by name.
    select : output selector, optional
        Which tensor of the *model's* output is measured (:mod:`latentgeo._outputs`).
    """

    def __init__(
        self, model: torch.nn.Module, modules: Mapping[str, torch.nn.Module], select: Any = None
    ) -> None:
        self.model = model
        self.modules = dict(modules)
        self.select = select

    @contextlib.contextmanager
    def _hooks(
        self,
        read: Sequence[str],
        replace: Mapping[str, Callable[[torch.Tensor], torch.Tensor]],
        store: dict[str, torch.Tensor],
    ) -> Iterator[None]:
        handles = []
        try:
            for name in dict.fromkeys([*read, *replace]):
                module = self.modules[name]

                def hook(
                    _mod: Any, _inp: Any, output: Any, name: str = name
                ) -> Any:  # one closure per layer
                    what = f"layer {name!r}"
                    tensor, path = select_output(output, None, what=what)
                    if name in replace:
                        new = replace[name](tensor)
                        if not isinstance(new, torch.Tensor) or new.shape != tensor.shape:
                            raise ValueError(
                                f"the replacement of {what} must be a tensor of shape "
                                f"{tuple(tensor.shape)}, got {getattr(new, 'shape', new)!r}"
                            )
                        store.setdefault(name, new)
                        return _replace_at(output, path, new, what)
                    store.setdefault(name, tensor)
                    return None

                handles.append(module.register_forward_hook(hook))
            yield
        finally:
            for h in handles:
                h.remove()

    def __call__(
        self,
        x: Any,
        *,
        read: Sequence[str] = (),
        replace: Mapping[str, Callable[[torch.Tensor], torch.Tensor]] | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """One forward on the batch ``x``.

        Parameters
        ----------
        x : Tensor
            The model's input batch.
        read : sequence of str
            Layers whose (first-call) output tensor is returned.
        replace : mapping of str to callable ``h -> h'``, optional
            Layers whose output tensor is replaced by ``fn(h)`` (same shape).

        Returns
        -------
        output : Tensor
            The model's output tensor (by ``select``).
        layers : dict of str to Tensor
            The read layers' outputs (a replaced layer: its replacement).
        """
        replace = dict(replace or {})
        unknown = [n for n in (*read, *replace) if n not in self.modules]
        if unknown:
            raise ValueError(f"unknown layers {unknown!r}; known: {list(self.modules)}")
        store: dict[str, torch.Tensor] = {}
        grad = torch.is_grad_enabled()
        # The protected path: eval through the model's own API, RNG kept; the caller's grad
        # mode inside it (derivatives in a family parameter flow through replacements).
        with protected_call(self.model), torch.set_grad_enabled(grad):
            with self._hooks(read, replace, store):
                out = self.model(x)
        y, _ = select_output(out, self.select, what="the model's output")
        missing = [n for n in (*read, *replace) if n not in store]
        if missing:
            raise ValueError(
                f"layers {missing!r} were not called during the model's forward; pass layers "
                "the forward goes through"
            )
        return y, store


def check_inputs(inputs: Any, *, floating: bool = False) -> torch.Tensor:
    """``inputs`` checked as a non-empty batch of a model's inputs (floating where a
    derivative along a family flows through them).

    Raises
    ------
    TypeError
        Not a tensor, or not floating-point where ``floating``.
    ValueError
        An empty batch.
    """
    if not isinstance(inputs, torch.Tensor):
        raise TypeError(f"inputs must be a torch.Tensor, got {type(inputs).__name__!r}")
    if floating and not inputs.is_floating_point():
        raise TypeError(
            f"inputs must be a floating-point tensor to differentiate along a family, got "
            f"dtype {inputs.dtype}"
        )
    if inputs.ndim < 1 or inputs.shape[0] < 1:
        raise ValueError(f"inputs must be a non-empty batch, got shape {tuple(inputs.shape)}")
    return inputs


def forward_order(fwd: LayerForward, x: torch.Tensor, names: list[str]) -> list[str]:
    """``names`` in the order the model runs them on one input (layers it never runs last)."""
    order: list[str] = []
    handles = [
        fwd.modules[n].register_forward_hook(
            lambda *_a, n=n: order.append(n) if n not in order else None
        )
        for n in names
    ]
    try:
        fwd(x[:1])
    finally:
        for h in handles:
            h.remove()
    return [n for n in order if n in names] + [n for n in names if n not in order]
