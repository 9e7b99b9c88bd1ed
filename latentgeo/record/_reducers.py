"""Reducers: turn one layer's output ``(batch, *feature_shape)`` into ``(batch, n_units)``.

They run on the model's device, inside the recorder's protected call (``torch.no_grad``), before
anything is copied to the host, so a reducer that shrinks the latents also shrinks the copy.
"""

from __future__ import annotations

import abc
import dataclasses
import inspect
import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import torch

from latentgeo._registry import MissingExtensionError, Registry
from latentgeo._validate import check_int

if TYPE_CHECKING:
    from latentgeo.store import Run

__all__ = [
    "REDUCERS",
    "BlockMeanPool",
    "Flatten",
    "FunctionReducer",
    "RandomProjection",
    "Reducer",
    "SpatialMeanPool",
    "as_reducer",
    "from_run",
    "from_spec",
    "register",
]


class Reducer(abc.ABC):
    """Base of the reducers: ``reducer(z)`` maps ``(batch, *feature)`` to ``(batch, units)``."""

    @abc.abstractmethod
    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        """Reduce ``z`` of shape (batch, *feature_shape) to shape (batch, n_units)."""

    @abc.abstractmethod
    def to_spec(self) -> dict[str, Any]:
        """JSON-serialisable description, stored in the layer's attributes."""


#: Reducer classes by their spec ``"name"``.
REDUCERS: Registry[type[Reducer]] = Registry(
    "reducer", "latentgeo.reducers", Reducer, base_name="latentgeo.reducers.Reducer"
)

#: Class decorator registering a :class:`Reducer` subclass under the ``"name"`` its
#: ``to_spec`` writes (default: the class name): ``@register("my_pool")``.  Installed
#: packages may declare reducers in the ``latentgeo.reducers`` entry-point group instead.
#: The built-in reducers register the same way as a user's, where they are defined.
register = REDUCERS.register


def _check_batched(z: Any, who: str) -> torch.Tensor:
    if not isinstance(z, torch.Tensor):
        raise TypeError(f"{who} expects a torch.Tensor, got {type(z).__name__}")
    if z.ndim < 1:
        raise ValueError(f"{who} expects a leading batch axis, got shape {tuple(z.shape)}")
    return z


@register("flatten")
@dataclasses.dataclass(frozen=True)
class Flatten(Reducer):
    """Keep every unit: ``(batch, *feature) -> (batch, prod(feature))`` (row-major, so the
    stored ``feature_shape`` un-flattens it)."""

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        z = _check_batched(z, "Flatten")
        return z.reshape(z.shape[0], -1)

    def to_spec(self) -> dict[str, Any]:
        return {"name": "flatten"}


@register("spatial_mean_pool")
@register("mean")
@dataclasses.dataclass(frozen=True)
class SpatialMeanPool(Reducer):
    """Average over every axis except batch and channels: ``(B, C, H, W) -> (B, C)``.

    Rotations and flips permute spatial positions, so pooled channels are the invariant part
    of a conv feature map; equivariance lives in the channels of the full map.

    Parameters
    ----------
    channel_dim : int
        Axis of the channels in the layer output, counted with the batch axis (1 for
        ``(B, C, H, W)`` conv maps, -1 for ``(B, T, D)`` transformer sequences).
    """

    channel_dim: int = 1

    def __post_init__(self) -> None:
        if check_int(self.channel_dim, "channel_dim") == 0:
            raise ValueError("channel_dim must not be 0, the batch axis")

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        z = _check_batched(z, "SpatialMeanPool")
        if z.ndim == 1:
            return z.reshape(-1, 1)
        c = self.channel_dim % z.ndim
        if c == 0:
            raise ValueError(
                f"channel_dim={self.channel_dim} is the batch axis of shape {tuple(z.shape)}"
            )
        if z.ndim == 2:
            return z
        dims = [d for d in range(1, z.ndim) if d != c]
        return z.mean(dim=dims)

    def to_spec(self) -> dict[str, Any]:
        return {"name": "spatial_mean_pool", "channel_dim": int(self.channel_dim)}


@register("random_projection")
@dataclasses.dataclass(frozen=True)
class RandomProjection(Reducer):
    """A fixed Gaussian random projection of the flattened output to ``k`` units.

    ``z.flatten(1) @ P`` with ``P`` of shape ``(d, k)`` and entries ``N(0, 1/k)``, so squared
    norms are preserved in expectation (Johnson-Lindenstrauss).  ``P`` depends only on
    ``(seed, d)``: it is drawn once per input size from a private ``torch.Generator`` seeded
    with ``seed`` on the CPU (CPU and CUDA generators give different numbers, and a run must
    be reproducible from the ``seed`` and ``k`` stored in the layer's attributes whatever the
    device), then kept on the model's device in the layer's dtype.  The global RNG is never
    touched.

    Parameters
    ----------
    k : int
        Number of output units, >= 1.
    seed : int
        Seed of the projection.
    """

    k: int
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("k", "seed"):
            check_int(getattr(self, name), name, minimum=1 if name == "k" else None)

    def matrix(
        self, d: int, *, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
    ) -> torch.Tensor:
        """The projection matrix for inputs of ``d`` units.

        Returns
        -------
        tensor of shape (d, k)
        """
        cache = self.__dict__.setdefault("_cache", {})  # per instance, not a dataclass field
        key = (int(d), str(device), dtype)
        if key not in cache:
            g = torch.Generator(device="cpu").manual_seed(int(self.seed))
            p = torch.randn(int(d), self.k, generator=g, dtype=torch.float64)
            p /= math.sqrt(self.k)
            cache[key] = p.to(device=device, dtype=dtype)
        return cache[key]

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        z = _check_batched(z, "RandomProjection")
        flat = z.reshape(z.shape[0], -1)
        if not flat.is_floating_point():
            flat = flat.to(torch.float32)
        return flat @ self.matrix(flat.shape[1], device=flat.device, dtype=flat.dtype)

    def to_spec(self) -> dict[str, Any]:
        return {
            "name": "random_projection",
            "k": int(self.k),
            "seed": int(self.seed),
            "distribution": "normal(0, 1/k), torch.randn float64 on CPU, torch.Generator(seed)",
        }


@register("block_mean_pool")
@dataclasses.dataclass(frozen=True)
class BlockMeanPool(Reducer):
    """Average non-overlapping ``size × size`` blocks of the last two (spatial) axes, then
    flatten: ``(B, ..., H, W) -> (B, prod(...) · H/size · W/size)``.

    On a square map whose side is a multiple of ``size``, rot90 and flips send aligned blocks
    to aligned blocks, so block pooling commutes with the dihedral action on the map: an
    equivariant layer stays exactly equivariant after it, while the probes see ``size²``
    times fewer units (their cost grows with the square of the width).

    Parameters
    ----------
    size : int
        Block side, >= 1; H and W must be multiples of it.
    """

    size: int = 2

    def __post_init__(self) -> None:
        check_int(self.size, "size", minimum=1)

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        z = _check_batched(z, "BlockMeanPool")
        if z.ndim < 3:
            raise ValueError(
                f"BlockMeanPool expects (batch, ..., H, W) maps, got shape {tuple(z.shape)}"
            )
        n, (h, w) = z.shape[0], z.shape[-2:]
        if h % self.size or w % self.size:
            raise ValueError(
                f"BlockMeanPool(size={self.size}) needs H and W divisible by {self.size}, "
                f"got spatial shape {(h, w)}"
            )
        pooled = torch.nn.functional.avg_pool2d(z.reshape(n, -1, h, w), kernel_size=self.size)
        return pooled.reshape(n, -1)

    def to_spec(self) -> dict[str, Any]:
        return {"name": "block_mean_pool", "size": int(self.size)}


@dataclasses.dataclass(frozen=True, eq=False)
class FunctionReducer(Reducer):
    """Any callable ``fn(z) -> (batch, n_units)`` tensor, used as a reducer."""

    fn: Callable[[torch.Tensor], torch.Tensor]

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        return self.fn(z)

    def to_spec(self) -> dict[str, Any]:
        name = getattr(self.fn, "__qualname__", None) or repr(self.fn)
        module = getattr(self.fn, "__module__", None)
        return {"name": "callable", "callable": f"{module}.{name}" if module else name}


def from_spec(spec: Any) -> Reducer:
    """Rebuild a reducer from its :meth:`Reducer.to_spec` dict.

    The class is looked up by ``spec["name"]`` in the reducer registry; it is called with
    the keys its constructor takes (other keys, such as ``RandomProjection``'s
    ``"distribution"``, are descriptive).

    Parameters
    ----------
    spec : mapping or str
        ``{"name": ..., **parameters}`` as stored in a layer's attributes, or a bare name.

    Returns
    -------
    Reducer

    Raises
    ------
    MissingExtensionError
        (a ``ValueError``) If no reducer of that name is registered or installed (a
        ``"callable"`` reducer, a plain function, cannot be rebuilt from its spec).
    TypeError
        If ``spec`` is neither a mapping nor a str.

    Examples
    --------
    >>> from_spec(BlockMeanPool(4).to_spec())
    BlockMeanPool(size=4)
    """
    if isinstance(spec, str):
        spec = {"name": spec}
    if not isinstance(spec, Mapping):
        raise TypeError(f"reducer spec must be a dict or a name, got {spec!r}")
    name = spec.get("name")
    try:
        cls = REDUCERS.get(name) if isinstance(name, str) else None
    except MissingExtensionError as err:
        raise MissingExtensionError(f"unknown reducer {dict(spec)!r}: {err}") from None
    if cls is None:
        raise ValueError(f"reducer spec {dict(spec)!r} has no 'name'")
    params = inspect.signature(cls).parameters
    return cls(**{k: v for k, v in spec.items() if k != "name" and k in params})


def from_run(run: Run, layer: str) -> Reducer:
    """The reducer ``layer`` of ``run`` was recorded with (:func:`from_spec` of its stored spec).

    Parameters
    ----------
    run : latentgeo.store.Run
        An opened run store.
    layer : str
        One of ``run.layers``.

    Returns
    -------
    Reducer

    Raises
    ------
    MissingExtensionError
        (a ``ValueError``) If the stored reducer is of a class not registered in this process
        (a user's reducer whose module is not imported, or a plain function); the message
        names the stored spec and the store.
    KeyError
        If the run has no such layer.
    """
    spec = run.layer_attrs(layer).get("reducer")
    try:
        return from_spec(spec)
    except MissingExtensionError as err:
        raise MissingExtensionError(f"run store {run.path!r}, layer {layer!r}: {err}") from None


def as_reducer(reduce: Any) -> Reducer:
    """Turn a registered name (``"flatten"``, ``"spatial_mean_pool"``/``"mean"``,
    ``"block_mean_pool"``, a user's), a :class:`Reducer` or any callable into a
    :class:`Reducer`."""
    if isinstance(reduce, Reducer):
        return reduce
    if isinstance(reduce, str):
        if reduce not in REDUCERS:
            raise ValueError(
                f"unknown reducer {reduce!r}; expected one of {REDUCERS.names()} (or register "
                "your own with latentgeo.reducers.register)"
            )
        return REDUCERS.get(reduce)()
    if callable(reduce):
        return FunctionReducer(reduce)
    raise TypeError(
        f"reduce must be a reducer name, a Reducer or a callable, got {reduce!r} "
        f"({type(reduce).__name__})"
    )
