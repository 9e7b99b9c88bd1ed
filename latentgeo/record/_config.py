"""The recorder's configuration: every argument of :class:`LatentRecorder` checked once, frozen.

:meth:`RecorderConfig.build` validates in the order the arguments are documented (a layer
name typo fails first, before any hook or file) and returns a value object; the capture, the
background writer and the coordinator only read it.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from latentgeo._outputs import describe_selector, parse_selector
from latentgeo._validate import check_choice, check_int
from latentgeo.record._dtypes import host_array
from latentgeo.record._environment import model_device
from latentgeo.record._layers import resolve_layers
from latentgeo.record._reducers import Reducer, as_reducer
from latentgeo.schedules import Schedule, as_schedule
from latentgeo.store._writer import storable_probe_array

if TYPE_CHECKING:
    from latentgeo.actions import Action

__all__ = ["DTYPES", "RecorderConfig"]

#: Storage dtypes of the latents, by name.
DTYPES = {
    "float16": torch.float16,
    "float32": torch.float32,
    "float64": torch.float64,
}
_MODES = ("w-", "w", "a")


def _per_layer(value: Any, what: str, layers: list[str], make: Any, default: Any) -> dict:
    """``{layer: make(value)}``: one value for every layer, or a mapping by layer name."""
    if isinstance(value, Mapping):
        unknown = [k for k in value if k not in layers]
        if unknown:
            raise ValueError(
                f"{what} has entries for layers that are not recorded: {unknown!r}; "
                f"recorded layers: {layers}"
            )
        return {name: make(value.get(name, default)) for name in layers}
    made = make(value)
    return dict.fromkeys(layers, made)


@dataclass(frozen=True)
class RecorderConfig:
    """What one :class:`LatentRecorder` records, checked (see its parameters).

    Attributes
    ----------
    layers : list of str
        Resolved layer names, in recording order.
    reducers, selectors : dict
        Per layer.
    dtype : str
        Storage dtype name (a key of :data:`DTYPES`).
    batch_size : int
    schedule : Schedule
    mode : str
    device : torch.device
        Where the forwards run.
    x : torch.Tensor of shape (n_samples, ...)
        The probe inputs (detached).
    labels : ndarray or None
        Storable labels (numbers or strings), or None.
    labels_dtype : str or None
        The labels' dtype as given.
    elements : list of str
        Names of the action's elements, in orbit order.
    """

    layers: list[str]
    reducers: dict[str, Reducer]
    selectors: dict[str, Any]
    dtype: str
    batch_size: int
    schedule: Schedule
    mode: str
    device: torch.device
    x: torch.Tensor
    labels: np.ndarray | None
    labels_dtype: str | None
    elements: list[str]

    @classmethod
    def build(
        cls,
        module: torch.nn.Module,
        layers: str | Sequence[str],
        action: Action,
        probe_inputs: Any,
        labels: Any,
        mode: str,
        reduce: Any,
        dtype: Any,
        batch_size: Any,
        schedule: Any,
        device: torch.device | str | None,
        select: Any,
    ) -> RecorderConfig:
        """Check every argument (raising ``TypeError``/``ValueError`` naming it).

        Raises
        ------
        TypeError
            For an argument of the wrong type (e.g. ``action`` not an Action).
        ValueError
            For an unknown layer, a bad value, or labels that do not match the probe set.
        """
        # Resolve every name before anything else: a typo fails before any hook or file.
        names = resolve_layers(module, layers)
        for attr in ("orbit", "group", "to_spec"):
            if not hasattr(action, attr):
                raise TypeError(
                    f"action must be a latentgeo.actions.Action (with .{attr}), got {action!r}"
                )
        reducers = _per_layer(reduce, "reduce", names, as_reducer, "flatten")
        selectors = _per_layer(select, "select", names, parse_selector, None)
        if isinstance(dtype, torch.dtype):
            dtype = str(dtype).removeprefix("torch.")
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
        batch_size = check_int(batch_size, "batch_size", minimum=1)
        schedule = as_schedule(schedule)
        check_choice(mode, "mode", _MODES)
        dev = torch.device(device) if device is not None else model_device(module)

        x = probe_inputs
        if isinstance(x, np.ndarray):
            x = torch.from_numpy(x)
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"probe_inputs must be a tensor or numpy array, got {type(x).__name__}")
        if x.ndim < 1 or x.shape[0] < 1:
            raise ValueError(
                f"probe_inputs must have shape (n_samples >= 1, ...), got {tuple(x.shape)}"
            )
        labels_dtype = None
        if labels is not None:
            given, labels_dtype = host_array(labels, "labels")
            if given.ndim < 1 or given.shape[0] != x.shape[0]:
                raise ValueError(
                    f"labels must have shape (n_samples={x.shape[0]}, ...), got {given.shape!r}"
                )
            # Numbers and strings are stored; anything else is said so, and not claimed stored.
            labels = storable_probe_array(given)
            if labels is None:
                warnings.warn(
                    f"labels of dtype {given.dtype} are neither numbers nor strings and are not "
                    "stored (the store records has_labels=False)",
                    UserWarning,
                    stacklevel=4,  # the caller of LatentRecorder(...)
                )
        group = action.group
        elements = list(getattr(action, "elements", None) or [str(e) for e in group.elements])
        return cls(
            layers=names,
            reducers=reducers,
            selectors=selectors,
            dtype=dtype,
            batch_size=batch_size,
            schedule=schedule,
            mode=mode,
            device=dev,
            x=x.detach(),
            labels=labels,
            labels_dtype=labels_dtype,
            elements=elements,
        )

    @property
    def order(self) -> int:
        """Number of elements in the recorded orbit."""
        return len(self.elements)

    @property
    def storage_dtype(self) -> torch.dtype:
        """The torch dtype latents are stored in."""
        return DTYPES[self.dtype]

    def layer_spec(self, name: str) -> dict[str, Any]:
        """What is known of ``name``'s spec before the first forward (dtype, reducer, select)."""
        return {
            "dtype": self.dtype,
            "reducer": self.reducers[name].to_spec(),
            "select": describe_selector(self.selectors[name]),
        }
