"""A trajectory: manifold-valued summaries of one layer indexed by training step."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from latentgeo._validate import as_tensor
from latentgeo.geometry import METRICS, check_points, distance, pairwise_distances, resolve_metric
from trajectories._embed import classical_mds

if TYPE_CHECKING:
    import torch
    import xarray as xr
from trajectories._onset import change_points as _change_points
from trajectories._onset import onset as _onset

_EMBED_METHODS = ("mds", "tangent_pca")
_REFERENCES = ("first", "final")


class Trajectory:
    """Points on a manifold (one per checkpoint) and the geometry of the path they trace.

    Parameters
    ----------
    points : array of shape ``(T, *point_shape)``
        One summary per checkpoint, e.g. (T, d, k) orthonormal bases for ``"grassmann"``,
        (T, k, k) covariances for the SPD metrics, (T, k, k) orthogonal maps for
        ``"orthogonal"``, (T, n) vectors for ``"sphere"``, (T, n_samples, n_units)
        representations for ``"procrustes"``/``"cka"``.
    steps : array of shape (T,), optional
        Training step of each point, strictly increasing (default ``0..T-1``).
    metric : str or callable
        One of ``latentgeo.geometry.METRICS`` (``"grassmann"``, ``"spd_affine"``,
        ``"spd_log_euclidean"``, ``"bures_wasserstein"``, ``"orthogonal"``, ``"sphere"``,
        ``"procrustes"``, ``"cka"``, ``"euclidean"``), or ``f(a, b) -> float``.
    name : str, optional
        Label kept in the attrs of results (e.g. the layer).
    **metric_options
        Passed to the metric (e.g. ``convention="geomstats"`` for ``"grassmann"``).

    Attributes
    ----------
    basis : torch.Tensor or None
        The common basis of the points when a builder used one (e.g. the (d, k) basis of
        :func:`trajectories.covariance`), else None.

    Notes
    -----
    The distance matrix is computed once, on first use, and reused by every other method.

    Examples
    --------
    >>> import torch
    >>> from latentgeo.geometry import principal_subspace
    >>> pts = torch.stack([principal_subspace(torch.randn(50, 6), 2) for _ in range(4)])
    >>> traj = Trajectory(pts, steps=[0, 10, 100, 1000], metric="grassmann")
    >>> traj.tortuosity() >= 1.0
    True
    """

    def __init__(
        self,
        points: Any,
        steps: Any = None,
        metric: str | Callable = "grassmann",
        *,
        name: str | None = None,
        **metric_options: Any,
    ) -> None:
        if not callable(metric):
            metric = resolve_metric(metric)
        self.metric = metric
        self.metric_options = dict(metric_options)
        self.points = as_tensor(points, "points")
        T = len(self.points)
        if T < 1:
            raise ValueError("points must hold at least one checkpoint")
        steps = np.arange(T) if steps is None else np.asarray(steps)
        if steps.shape != (T,):
            raise ValueError(f"steps must have shape ({T},) to match points, got {steps.shape!r}")
        if steps.dtype.kind not in "iuf":
            raise TypeError(f"steps must be numeric, got dtype {steps.dtype!r}")
        if T > 1 and not np.all(np.diff(steps) > 0):
            raise ValueError(f"steps must be strictly increasing, got {steps.tolist()!r}")
        self.steps = steps
        self.name = name
        if not callable(metric):
            # Fail now, not at the first distance: points off the manifold, unknown options.
            check_points(self.points, metric, "points")
            distance(self.points[:1], self.points[:1], metric, **self.metric_options)
        self._distances: np.ndarray | None = None
        self.basis: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.steps)

    def __repr__(self) -> str:
        metric = (
            self.metric
            if isinstance(self.metric, str)
            else getattr(self.metric, "__name__", "callable")
        )
        label = f", name={self.name!r}" if self.name is not None else ""
        return (
            f"Trajectory(T={len(self)}, point_shape={tuple(self.points.shape[1:])!r}, "
            f"metric={metric!r}{label})"
        )

    # --- distances -------------------------------------------------------------------------
    def _matrix(self) -> np.ndarray:
        if self._distances is None:
            D = pairwise_distances(self.points, self.metric, **self.metric_options)
            self._distances = D.detach().cpu().numpy()
        return self._distances

    def _attrs(self, **extra: Any) -> dict[str, Any]:
        metric = self.metric if isinstance(self.metric, str) else "callable"
        attrs = {"metric": metric, **{f"metric_{k}": v for k, v in self.metric_options.items()}}
        if self.name is not None:
            attrs["name"] = self.name
        return {**attrs, **extra}

    def distance_matrix(self) -> xr.DataArray:
        """Distances between all pairs of checkpoints.

        Returns
        -------
        xarray.DataArray of shape (T, T)
            dims ``("step", "step_other")``.
        """
        import xarray as xr

        return xr.DataArray(
            self._matrix().copy(),
            dims=("step", "step_other"),
            coords={"step": self.steps, "step_other": self.steps},
            name="distance",
            attrs=self._attrs(),
        )

    def step_lengths(self) -> xr.DataArray:
        """Distance between consecutive checkpoints, indexed by the earlier one.

        Returns
        -------
        xarray.DataArray of shape (T - 1,)
            dim ``step`` (start of each segment), coord ``step_end``.
        """
        import xarray as xr

        D = self._matrix()
        idx = np.arange(len(self) - 1)
        return xr.DataArray(
            D[idx, idx + 1],
            dims=("step",),
            coords={"step": self.steps[:-1], "step_end": ("step", self.steps[1:])},
            name="step_length",
            attrs=self._attrs(),
        )

    def speed(self) -> xr.DataArray:
        """Distance per training step between consecutive checkpoints.

        ``speed[t] = d(p_t, p_{t+1}) / (s_{t+1} - s_t)``.

        Returns
        -------
        xarray.DataArray of shape (T - 1,)
            dim ``step`` (start of each segment), coord ``step_end``.
        """
        lengths = self.step_lengths()
        out = lengths / np.diff(self.steps).astype(np.float64)
        out.name = "speed"
        out.attrs = self._attrs(units="distance per training step")
        return out

    def path_length(self) -> float:
        """Length of the polygonal path through the checkpoints (sum of step lengths)."""
        return float(self.step_lengths().sum())

    def end_to_end(self) -> float:
        """Distance between the first and the last checkpoint."""
        return float(self._matrix()[0, -1])

    def tortuosity(self) -> float:
        """Path length over end-to-end distance (>= 1 for a metric; 1 on a geodesic).

        Returns ``inf`` when the path returns exactly to its start, NaN for a single point.
        """
        if len(self) < 2:
            return float("nan")
        end = self.end_to_end()
        length = self.path_length()
        if end == 0.0:
            return float("inf") if length > 0 else float("nan")
        return length / end

    def distance_to(self, reference: str | int = "final") -> xr.DataArray:
        """Distance of every checkpoint to a reference checkpoint.

        Parameters
        ----------
        reference : {"final", "first"} or int
            The reference checkpoint, or its training step.

        Returns
        -------
        xarray.DataArray of shape (T,), dim ``step``.
        """
        import xarray as xr

        if isinstance(reference, str):
            if reference not in _REFERENCES:
                raise ValueError(
                    f"reference must be one of {_REFERENCES!r} or a step, got {reference!r}"
                )
            i = 0 if reference == "first" else len(self) - 1
        else:
            hits = np.flatnonzero(self.steps == reference)
            if hits.size == 0:
                raise ValueError(
                    f"reference step {reference!r} is not among the steps {self.steps.tolist()!r}"
                )
            i = int(hits[0])
        return xr.DataArray(
            self._matrix()[:, i].copy(),
            dims=("step",),
            coords={"step": self.steps},
            name=f"distance_to_{reference}",
            attrs=self._attrs(reference_step=self.steps[i].item()),
        )

    # --- events ----------------------------------------------------------------------------
    def _named_series(self, series: Any) -> xr.DataArray:
        if isinstance(series, str):
            if series == "speed":
                return self.speed()
            if series.startswith("distance_to_"):
                return self.distance_to(series.removeprefix("distance_to_"))
            raise ValueError(
                f"series must be 'speed', 'distance_to_final', 'distance_to_first' or an "
                f"array, got {series!r}"
            )
        if not hasattr(series, "dims"):
            values = np.asarray(series, dtype=np.float64)
            if values.shape != (len(self),):
                raise ValueError(
                    f"series must have one value per checkpoint ({len(self)}), got shape "
                    f"{values.shape!r}"
                )
            import xarray as xr

            return xr.DataArray(values, dims=("step",), coords={"step": self.steps})
        return series

    def onset(
        self, series: Any, threshold: float, direction: str = "above"
    ) -> int | float | xr.DataArray | None:
        """First step from which ``series`` is past ``threshold`` and stays there.

        Parameters
        ----------
        series : xarray.DataArray along ``step``, array of shape (T,), or name
            A name: ``"speed"``, ``"distance_to_final"``, ``"distance_to_first"``.
        threshold : float
        direction : {"above", "below"}

        Returns
        -------
        int or None (or a DataArray for a multi-dimensional series); see
        :func:`trajectories.onset`.
        """
        return _onset(self._named_series(series), threshold, direction)

    def change_points(self, series: Any = "speed", **kwargs: Any) -> np.ndarray:
        """Steps where the mean of a series changes, by default the speed.

        ``ruptures``' PELT with an L2 (change-in-mean) cost and latentgeo's penalty; see
        :func:`trajectories.change_points` for ``method``, ``penalty``, ``n_change_points``
        and ``min_size``. With the speed, each returned step starts a segment of steady
        movement (indexed by segment start, as :meth:`speed` is).
        """
        return _change_points(self._named_series(series), **kwargs)

    # --- pictures --------------------------------------------------------------------------
    def embed(self, method: str = "mds", n_components: int = 2) -> xr.DataArray:
        """Embed the checkpoints in a few dimensions, e.g. to plot the path in 2-D.

        Parameters
        ----------
        method : {"mds", "tangent_pca"}
            ``"mds"``: classical MDS of the distance matrix (any metric).
            ``"tangent_pca"``: PCA of the logs at the Frechet mean (geomstats' log and inner
            product; Grassmann, SPD, orthogonal (rotations) and sphere metrics).
        n_components : int

        Returns
        -------
        xarray.DataArray of shape (T, n_components)
            dims ``("step", "component")``. Coordinates are in the units of the trajectory's
            metric for every method: tangent PCA works in geomstats' convention, whose
            Grassmann distance is ``sqrt(2)`` times the default ``"arc"`` distance, and is
            rescaled here, so that on a geodesic both methods reproduce the distances of
            :meth:`distance_matrix`.

        Raises
        ------
        ValueError
            For an unknown ``method``; for ``"tangent_pca"`` with a metric that is not a
            Riemannian geodesic distance (``"cka"``, ``"procrustes"``, ``"euclidean"``, a
            callable, or the Grassmann ``"chordal"`` convention).
        """
        import xarray as xr

        if method not in _EMBED_METHODS:
            raise ValueError(f"method must be one of {_EMBED_METHODS!r}, got {method!r}")
        attrs = self._attrs(method=method)
        if method == "mds":
            coords, eig = classical_mds(self._matrix(), n_components)
            attrs["eigenvalues"] = eig.tolist()
        else:
            manifold = self._manifold()
            scale = self._tangent_scale()
            coords = manifold.tangent_pca(self.points, n_components=n_components).cpu().numpy()
            coords = coords * scale
            attrs["scale_from_geomstats"] = scale
        return xr.DataArray(
            coords,
            dims=("step", "component"),
            coords={"step": self.steps, "component": np.arange(n_components)},
            name="embedding",
            attrs=attrs,
        )

    def _tangent_scale(self) -> float:
        """Factor from the manifold's (geomstats') distance to the trajectory's metric."""
        if self.metric != "grassmann":
            # SPD, Bures-Wasserstein, orthogonal and sphere distances follow geomstats.
            return 1.0
        convention = self.metric_options.get("convention", "arc")
        if convention == "chordal":
            raise ValueError(
                "tangent_pca has no chordal units: the chordal Grassmann distance is not a "
                "geodesic distance; use method='mds' or convention='arc'"
            )
        # geomstats' Grassmannian: dist = sqrt(2) * ||theta||; "arc": ||theta||.
        return 1.0 if convention == "geomstats" else 1.0 / math.sqrt(2.0)

    def _manifold(self) -> Any:
        from latentgeo.geometry import SO, SPD, Grassmann, Sphere

        shape = tuple(self.points.shape[1:])
        if self.metric == "grassmann":
            return Grassmann(*shape)
        if self.metric in ("spd_affine", "spd_log_euclidean", "bures_wasserstein"):
            return SPD(shape[0], self.metric.removeprefix("spd_"))
        if self.metric == "orthogonal":
            return SO(shape[0])
        if self.metric == "sphere":
            return Sphere(shape[0] - 1)
        raise ValueError(
            f"tangent_pca needs a manifold metric (grassmann, spd_*, bures_wasserstein, "
            f"orthogonal, sphere), got {self.metric!r}; use method='mds'"
        )

    def to_dataset(self) -> xr.Dataset:
        """Speed, distances to the first and final checkpoints, and the distance matrix.

        Returns
        -------
        xarray.Dataset
            ``distance (step, step_other)``, ``speed (step)`` (NaN at the last step),
            ``distance_to_first (step)``, ``distance_to_final (step)``, and attrs
            ``path_length``, ``tortuosity``.
        """
        import xarray as xr

        speed = self.speed().drop_vars("step_end").reindex(step=self.steps)
        ds = xr.Dataset(
            {
                "distance": self.distance_matrix(),
                "speed": speed,
                "distance_to_first": self.distance_to("first"),
                "distance_to_final": self.distance_to("final"),
            },
            attrs=self._attrs(path_length=self.path_length(), tortuosity=self.tortuosity()),
        )
        return ds


__all__ = ["METRICS", "Trajectory"]
