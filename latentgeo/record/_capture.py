"""Capture: the probe orbit through the model, hooked layers reduced and cast on the device.

One :class:`Capture` per recorder holds the hooks' targets, the orbit of the probe set (kept
on the device between recordings when it fits), and a small pool of host buffers that the
background writer hands back once a checkpoint is in the store.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch

from latentgeo._model_call import protected_call
from latentgeo._outputs import select_output
from latentgeo.record._config import RecorderConfig
from latentgeo.record._dtypes import OverflowCheck
from latentgeo.record._layers import layer_modules

if TYPE_CHECKING:
    from latentgeo.actions import Action

__all__ = ["ORBIT_CACHE_BYTES", "Capture"]

#: The orbit of the probe set is kept on the device between recordings when it fits in this.
ORBIT_CACHE_BYTES = 512 * 2**20
#: Host buffers kept per layer for reuse.
_POOL_SIZE = 2


class Capture:
    """The forward passes of one recorder (see :meth:`forward`).

    Parameters
    ----------
    module : torch.nn.Module
        The unwrapped model.
    config : RecorderConfig
    action : Action
        Makes the orbit of the probe set.
    """

    def __init__(self, module: torch.nn.Module, config: RecorderConfig, action: Action) -> None:
        self.module = module
        self.config = config
        self.action = action
        modules = layer_modules(module)
        self.hooked = {name: modules[name] for name in config.layers}
        self.feature_shapes: dict[str, tuple[int, ...]] = {}
        self.output_paths: dict[str, str] = {}
        self._orbit_batches: list[torch.Tensor] | None = None
        # Host buffers the writer has finished with, reused by later recordings: fresh
        # allocations of this size cost more in page faults than the copy into them.
        self.free_host: dict[str, list[torch.Tensor]] = {}
        self._lock = threading.Lock()

    def layer_specs(self, latents: Mapping[str, torch.Tensor]) -> dict[str, dict[str, Any]]:
        """Every layer's full spec, known after the first forward."""
        return {
            name: {
                "feature_shape": list(self.feature_shapes[name]),
                "n_units": int(latents[name].shape[-1]),
                **self.config.layer_spec(name),
                "output_path": self.output_paths[name],
            }
            for name in self.config.layers
        }

    def orbits(self) -> list[torch.Tensor]:
        """Batches of the transformed probe set, each of shape (order * b, ...)."""
        if self._orbit_batches is not None:
            return self._orbit_batches
        order = self.config.order
        per = max(1, self.config.batch_size // order)
        x = self.config.x
        n = x.shape[0]
        batches = []
        for s0 in range(0, n, per):
            xb = x[s0 : s0 + per].to(self.config.device)
            if xb.is_floating_point() and xb.element_size() == 1:
                # float8: torch implements few ops on it (no flip on CPU).  Float32 holds every
                # float8 value, so the orbit is computed there and cast back: exact for actions
                # that move values (rotations by 90°, flips, shifts, permutations).
                orbit = self.action.orbit(xb.float())
                orbit = orbit.to(xb.dtype) if isinstance(orbit, torch.Tensor) else orbit
            else:
                orbit = self.action.orbit(xb)
            if not isinstance(orbit, torch.Tensor) or orbit.shape[:2] != (order, xb.shape[0]):
                raise ValueError(
                    f"action.orbit must return a tensor of shape (order={order}, "
                    f"{xb.shape[0]}, ...), got {getattr(orbit, 'shape', type(orbit))}"
                )
            batches.append(orbit.reshape(-1, *orbit.shape[2:]))
        if sum(b.numel() * b.element_size() for b in batches) <= ORBIT_CACHE_BYTES:
            self._orbit_batches = batches
        return batches

    def forward(
        self, keep: bool = True
    ) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict[str, Any], Any]:
        """Run the probe orbit through the model.

        Returns host latents ``{layer: (order, n, units)}``, non-finite counts of the stored
        values (filled in by the writer thread when empty), storage-cast overflow
        ``{layer: (count, largest magnitude)}`` and the CUDA event of the copy (or None).
        """
        module = self.module
        config = self.config
        dev = config.device
        n = config.x.shape[0]
        order = config.order
        target = config.storage_dtype
        buffers: dict[str, torch.Tensor] = {}
        checks: dict[str, OverflowCheck] = {}
        seen: dict[str, int] = {}
        state: dict[str, Any] = {}

        def sink(name: str, output: Any) -> None:
            if seen.get(name, 0):
                raise ValueError(
                    f"layer {name!r} ran more than once in one forward pass (a module reused "
                    "inside the model); record a module that runs once"
                )
            seen[name] = 1
            out, path = select_output(output, config.selectors[name], what=f"layer {name!r}")
            if self.output_paths.setdefault(name, path) != path:
                raise ValueError(
                    f"the output of layer {name!r} changed structure: the tensor recorded was "
                    f"at path {self.output_paths[name]!r}, now at {path!r}; pass select="
                )
            b = state["b"]
            if out.ndim < 1 or out.shape[0] != order * b:
                raise ValueError(
                    f"layer {name!r} output has shape {tuple(out.shape)}, expected batch size "
                    f"{order * b} (order {order} x {b} samples) first: record modules whose "
                    "first axis is the batch, or pick another output with select="
                )
            feat = tuple(out.shape[1:])
            if self.feature_shapes.setdefault(name, feat) != feat:
                raise ValueError(
                    f"layer {name!r} changed its output shape from {self.feature_shapes[name]} "
                    f"to {feat}"
                )
            if out.is_floating_point() and out.element_size() == 1:
                out = out.float()  # float8: exact in float32, where reductions are implemented
            reducer = config.reducers[name]
            red = reducer(out)
            if not isinstance(red, torch.Tensor) or red.ndim != 2 or red.shape[0] != out.shape[0]:
                raise ValueError(
                    f"reducer {reducer!r} of layer {name!r} must return a tensor of "
                    f"shape (batch={out.shape[0]}, n_units), got {getattr(red, 'shape', red)!r}"
                )
            if name not in buffers:
                shape = (order, n, red.shape[1])
                if dev.type == "cpu":
                    buffers[name] = self.host_buffer(name, shape, target, pinned=False)
                else:
                    buffers[name] = torch.empty(shape, dtype=target, device=dev)
            check = checks.setdefault(name, OverflowCheck(target))
            if check.needed(red.dtype):
                check.update(red)  # before the cast, on the device
            s0 = state["s0"]
            buffers[name][:, s0 : s0 + b] = red.reshape(order, b, -1).to(target)

        hooks = {
            mod: (lambda output, name=name: sink(name, output)) for name, mod in self.hooked.items()
        }
        with protected_call(module, hooks=hooks, devices=[dev]):
            s0 = 0
            for batch in self.orbits():
                b = batch.shape[0] // order
                state["s0"], state["b"] = s0, b
                seen.clear()
                module(batch)
                missing = [name for name in config.layers if name not in seen]
                if missing:
                    raise ValueError(
                        f"layers {missing!r} did not run in the forward pass of "
                        f"{type(module).__name__}"
                    )
                s0 += b
        if not keep:
            return {}, {}, {}, None
        counts: dict[str, Any] = {}
        overflow: dict[str, Any] = {}
        cuda = dev.type == "cuda"
        for name, check in checks.items():
            if check.count is not None and check.peak is not None:
                overflow[name] = (
                    check.count.to("cpu", non_blocking=cuda),
                    check.peak.to("cpu", non_blocking=cuda),
                )
        event = None
        if cuda:
            host = {}
            for name, buf in buffers.items():
                counts[name] = (~torch.isfinite(buf)).sum().to("cpu", non_blocking=True)
                host[name] = self.host_buffer(name, tuple(buf.shape), buf.dtype, pinned=True)
                host[name].copy_(buf, non_blocking=True)
            event = torch.cuda.Event()
            event.record(torch.cuda.current_stream(dev))
            return host, counts, overflow, event
        return (
            {k: v if v.device.type == "cpu" else v.cpu() for k, v in buffers.items()},
            counts,
            overflow,
            None,
        )

    def host_buffer(
        self, name: str, shape: tuple[int, ...], dtype: torch.dtype, *, pinned: bool
    ) -> torch.Tensor:
        """A host buffer for ``name``: a pooled one of that shape and dtype, else a new one."""
        with self._lock:
            free = self.free_host.get(name, [])
            while free:
                buf = free.pop()
                if tuple(buf.shape) == shape and buf.dtype == dtype:
                    return buf
        return torch.empty(shape, dtype=dtype, pin_memory=pinned)

    def release(self, latents: Mapping[str, torch.Tensor]) -> None:
        """Hand back host buffers the store holds the data of (called by the writer thread)."""
        with self._lock:
            for name, buf in latents.items():
                free = self.free_host.setdefault(name, [])
                if len(free) < _POOL_SIZE:
                    free.append(buf)
