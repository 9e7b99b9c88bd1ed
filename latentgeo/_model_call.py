"""The one protected path through which latentgeo calls a user's model.

Every call latentgeo makes into a user's model -- the recorder's orbit forwards, offline
recording of saved checkpoints, :func:`probes.lie_derivative` and
:func:`latentgeo.testing.assert_equivariant` -- runs inside :func:`protected_call`.  Measuring
a model must not change it, so the context keeps these promises, each from a failure of an
existing tool:

* **Mode.**  The model enters eval through its own ``train(False)`` and leaves through the
  same API (``train(was_training)``), so a model whose ``train()``/``eval()`` is overridden
  (e.g. to swap in averaged weights) runs its override both ways; then every submodule's own
  ``training`` flag is put back, so a model left in mixed modes (a frozen, eval-mode backbone
  under a training head) is left exactly as it was.  A submodule that the override leaves in
  training mode is put in eval anyway: batch-norm statistics must not move.
* **Grad mode.**  Forwards run under ``torch.no_grad()``, never ``torch.inference_mode()``:
  a tensor a module creates and keeps during the call (a lazily built cache, a rotary table)
  must stay an ordinary tensor, or the next training step fails with "Inference tensors
  cannot be saved for backward".  ``inference_mode`` is switched off inside the call even when
  the caller is under it, for the same reason.
* **Random state.**  torch's CPU generator, the CUDA generators of every device the model
  lives on, Python's ``random`` and numpy's global generator are saved and restored, so
  training with and without measurements draws the same random numbers.
* **Hooks.**  Forward hooks asked for are registered all-or-nothing and always removed
  (``finally``), also when the forward raises.
"""

from __future__ import annotations

import contextlib
import logging
import random
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import numpy as np
import torch

__all__ = ["call_model", "model_devices", "protected_call"]

log = logging.getLogger(__name__)


def model_devices(model: Any) -> list[torch.device]:
    """The distinct devices of ``model``'s parameters and buffers (empty for a function)."""
    if not isinstance(model, torch.nn.Module):
        return []
    seen: dict[str, torch.device] = {}
    for t in (*model.parameters(), *model.buffers()):
        seen.setdefault(str(t.device), t.device)
    return list(seen.values())


def _cuda_indices(devices: Iterable[torch.device]) -> list[int]:
    out = []
    for dev in devices:
        if dev.type == "cuda":
            idx = dev.index if dev.index is not None else torch.cuda.current_device()
            if idx not in out:
                out.append(idx)
    return out


@contextlib.contextmanager
def _host_rng_kept() -> Iterator[None]:
    py_state = random.getstate()
    np_state = np.random.get_state()  # noqa: NPY002 (the global generator a model may draw from)
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)  # noqa: NPY002


@contextlib.contextmanager
def _eval_mode(model: torch.nn.Module) -> Iterator[None]:
    saved = [(m, m.training) for m in model.modules()]
    was_training = model.training
    try:
        model.train(False)  # the model's own API: an overridden train()/eval() runs
        for m in model.modules():
            if m.training:
                log.debug("%s stayed in training mode after train(False); set to eval", type(m))
                m.training = False
        yield
    finally:
        try:
            model.train(was_training)  # the same API back
        finally:
            for m, training in saved:
                m.training = training


@contextlib.contextmanager
def _hooks(hooks: Mapping[torch.nn.Module, Callable[[Any], None]]) -> Iterator[None]:
    handles = []
    try:
        for module, fn in hooks.items():

            def hook(_mod: Any, _inp: Any, output: Any, fn: Callable[[Any], None] = fn) -> None:
                fn(output)

            handles.append(module.register_forward_hook(hook))
        yield
    finally:
        for h in handles:
            h.remove()


@contextlib.contextmanager
def protected_call(
    model: Any,
    *,
    hooks: Mapping[torch.nn.Module, Callable[[Any], None]] | None = None,
    devices: Iterable[torch.device | str] = (),
) -> Iterator[None]:
    """Context in which calling ``model`` leaves it, and the random state, as they were.

    Parameters
    ----------
    model : torch.nn.Module or callable
        The model (a plain function gets the grad-mode and random-state protection only).
    hooks : mapping of torch.nn.Module to callable, optional
        ``{submodule: fn}``: ``fn(output)`` is called with the submodule's output on every
        forward inside the block.  Registered all-or-nothing, removed on exit.
    devices : iterable of torch.device or str
        Further devices whose random generators are kept (the model's own are always kept).

    Raises
    ------
    TypeError
        If a hook key is not a ``torch.nn.Module``.

    Notes
    -----
    See the module documentation for the promises kept (mode, grad mode, random state, hooks).

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Dropout(0.5))
    >>> net[0].eval()  # mixed modes: the head trains, the first layer is frozen
    Linear(in_features=3, out_features=3, bias=True)
    >>> with protected_call(net):
    ...     y = net(torch.ones(2, 3))
    >>> net.training, net[0].training, net[1].training
    (True, False, True)
    """
    hooks = dict(hooks or {})
    for module in hooks:
        if not isinstance(module, torch.nn.Module):
            raise TypeError(f"hook targets must be torch.nn.Module, got {module!r}")
    devs = [torch.device(d) for d in devices]
    cuda = _cuda_indices([*model_devices(model), *devs])
    with contextlib.ExitStack() as stack:
        stack.enter_context(torch.random.fork_rng(devices=cuda))
        stack.enter_context(_host_rng_kept())
        stack.enter_context(torch.inference_mode(False))
        stack.enter_context(torch.no_grad())
        if isinstance(model, torch.nn.Module):
            stack.enter_context(_eval_mode(model))
        stack.enter_context(_hooks(hooks))
        yield


def call_model(model: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``model(*args, **kwargs)`` inside :func:`protected_call` (eval, no grad, RNG kept)."""
    with protected_call(model):
        return model(*args, **kwargs)
