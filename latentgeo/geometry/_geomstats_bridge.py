"""The bridge to geomstats: manifolds for the per-step summaries.

This is the only module of latentgeo that imports geomstats, and it does so lazily (on the first
manifold built), so ``import latentgeo.geometry`` stays light. Two hazards are handled here:

* geomstats 2.8.0 (the newest release) imports ``numpy.trapz``, which numpy 2.4 removed. Right
  before importing geomstats we alias ``numpy.trapz = numpy.trapezoid`` -- only when the name is
  missing, so an older numpy is left as it is.
* geomstats picks its array backend from the ``GEOMSTATS_BACKEND`` environment variable at
  import, and its pytorch backend calls ``torch.set_default_dtype(torch.float64)`` process-wide,
  which would silently change the dtype of the user's model. We never set that variable (the
  default backend is numpy); if the user set it, we leave it alone, but we restore torch's
  default dtype after importing and after every geomstats call.

Points are exchanged as torch tensors in latentgeo's representation (orthonormal bases for the
Grassmannian, matrices for SPD and SO, vectors for the sphere); geomstats sees float64 arrays of
its active backend. Distances use latentgeo's closed forms (tested equal to geomstats' ``dist``).
On the Grassmannian, the sphere and SO(n), exp/log, geodesics, Frechet means and tangent PCA
use the torch closed forms of ``_exp_log`` too: geomstats' logs there are wrong at and near the
cut locus (a zero log between orthogonal subspaces, antipodal points, rotations by pi). They
agree with geomstats away from it (tested). SPD manifolds (no cut locus) run through geomstats.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from latentgeo._validate import check_int
from latentgeo.geometry._common import (
    as_tensor,
    check_choice,
    check_orthonormal,
)
from latentgeo.geometry._exp_log import (
    grassmann_exp,
    grassmann_log,
    so_exp,
    so_log,
    sphere_exp,
    sphere_log,
)
from latentgeo.geometry._rotation import (
    _check_orthogonal,
    orthogonal_distance,
    orthogonalize,
    sphere_distance,
)
from latentgeo.geometry._spd import SPD_METRICS, _check_spd_input, _sym_function, spd_distance
from latentgeo.geometry._subspace import grassmann_distance

__all__ = ["SO", "SPD", "Grassmann", "Sphere"]


@contextlib.contextmanager
def _torch_default_dtype_kept() -> Iterator[None]:
    # Undo, never cause: geomstats' pytorch backend sets torch's default dtype to float64.
    saved = torch.get_default_dtype()
    try:
        yield
    finally:
        if torch.get_default_dtype() != saved:
            torch.set_default_dtype(saved)


@contextlib.contextmanager
def _geomstats_call() -> Iterator[None]:
    """Run geomstats code, leaving torch's default dtype as it was found.

    geomstats' pytorch backend (only when the user chose it through ``GEOMSTATS_BACKEND``)
    creates tensors with torch's default dtype and expects float64; for the duration of the
    call we give it float64 and restore the caller's default afterwards (not thread-safe with
    respect to other threads creating tensors meanwhile; the numpy backend touches nothing).
    """
    with _torch_default_dtype_kept():
        if _backend_name() == "pytorch":
            torch.set_default_dtype(torch.float64)
        yield


def _geomstats_backend() -> Any:
    """Import geomstats (once; Python caches the module) and return its backend module."""
    if not hasattr(np, "trapz"):
        # geomstats 2.8.0 imports numpy.trapz, removed in numpy 2.4; same function, new name.
        # setattr: numpy's stubs (>= 2.4) have no trapz, older ones do; no ignore fits both.
        setattr(np, "trapz", np.trapezoid)  # noqa: B010
    with _torch_default_dtype_kept():
        import geomstats.backend as gs
    return gs


def _backend_name() -> str:
    from geomstats._backend import BACKEND_NAME

    return BACKEND_NAME


def _to_gs(t: torch.Tensor) -> Any:
    arr = t.detach().to("cpu", torch.float64).numpy()
    if _backend_name() == "pytorch":
        return torch.from_numpy(arr.copy())
    return arr


def _from_gs(y: Any, device: torch.device) -> torch.Tensor:
    if isinstance(y, torch.Tensor):
        y = y.detach().cpu().numpy()
    return torch.from_numpy(np.array(y, dtype=np.float64)).to(device)


class _Manifold:
    """Common machinery: conversions to and from geomstats and the geomstats-backed methods."""

    _point_ndim = 2

    def __init__(self) -> None:
        _geomstats_backend()
        with _geomstats_call():
            self.space = self._make_space()

    # --- hooks -----------------------------------------------------------------------------
    def _make_space(self) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def _check_points(self, P: torch.Tensor, name: str) -> torch.Tensor:
        return P

    def _to_gs_point(self, P: torch.Tensor) -> torch.Tensor:
        return P

    def _from_gs_point(self, P: torch.Tensor) -> torch.Tensor:
        return P

    def _to_gs_tangent(self, V: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
        return V

    def _from_gs_tangent(self, V: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
        return V

    def _dist(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    # --- public API ------------------------------------------------------------------------
    @property
    def point_shape(self) -> tuple[int, ...]:
        """Shape of one point in latentgeo's representation."""
        raise NotImplementedError  # pragma: no cover

    def _points(self, x: Any, name: str, *, batch: bool | None = None) -> torch.Tensor:
        P = as_tensor(x, name, dtype=torch.float64)
        shape = self.point_shape
        if P.ndim < len(shape) or tuple(P.shape[P.ndim - len(shape) :]) != shape:
            raise ValueError(f"{name} must have shape (..., {shape!r}), got {tuple(P.shape)!r}")
        if batch is True and P.ndim != len(shape) + 1:
            raise ValueError(f"{name} must have shape (n, *{shape!r}), got {tuple(P.shape)!r}")
        if batch is False and P.ndim != len(shape):
            raise ValueError(
                f"{name} must be a single point of shape {shape!r}, got {tuple(P.shape)!r}"
            )
        return self._check_points(P, name)

    def dist(self, a: Any, b: Any) -> torch.Tensor:
        """Geodesic distance by latentgeo's closed form (equal to geomstats' ``metric.dist``).

        Parameters
        ----------
        a, b : array of shape (..., *point_shape)

        Returns
        -------
        dist : tensor of shape (...)
        """
        return self._dist(self._points(a, "a"), self._points(b, "b"))

    def frechet_mean(
        self, points: Any, weights: Any = None, *, tol: float = 1e-8, max_iter: int = 256
    ) -> torch.Tensor:
        """Frechet (Karcher) mean by geomstats' ``FrechetMean`` gradient descent.

        geomstats stops when the squared norm of the mean log is below ``epsilon * dim``; its
        default ``epsilon = 1e-4`` is loose on high-dimensional manifolds (a gradient norm of
        0.55 on Gr(392, 8)), so we set ``epsilon = tol**2 / dim``: the returned point has a
        gradient norm below ``tol``. The descent starts from a closed-form guess where one
        exists (extrinsic mean on the Grassmannian, log-Euclidean mean on SPD).

        Parameters
        ----------
        points : array of shape (n, *point_shape)
        weights : array of shape (n,), optional
        tol : float
            Target norm of the Riemannian gradient (the mean of the logs) at the mean.
        max_iter : int
            geomstats warns if it stops there.

        Returns
        -------
        mean : tensor of shape point_shape
        """
        P = self._points(points, "points", batch=True)
        w = None
        if weights is not None:
            w = as_tensor(weights, "weights", dtype=torch.float64)
            if w.shape != (P.shape[0],) or bool((w < 0).any()) or not float(w.sum()) > 0:
                raise ValueError(
                    f"weights must be {P.shape[0]} non-negative numbers with a positive sum, "
                    f"got {weights!r}"
                )
        if not tol > 0:
            raise ValueError(f"tol must be > 0, got {tol!r}")
        max_iter = check_int(max_iter, "max_iter", minimum=1)
        return self._frechet_mean(P, w, float(tol), max_iter)

    def _initial_mean(self, P: torch.Tensor) -> torch.Tensor | None:
        return None  # geomstats' default: the first point

    def _frechet_mean(
        self, P: torch.Tensor, w: torch.Tensor | None, tol: float, max_iter: int
    ) -> torch.Tensor:
        from geomstats.learning.frechet_mean import FrechetMean

        init = self._initial_mean(P)
        with _geomstats_call():
            est = FrechetMean(self.space)
            if hasattr(est, "optimizer"):  # closed-form estimators (circle) have none
                est.set(max_iter=max_iter, epsilon=tol**2 / max(self.space.dim, 1))
                if init is not None:
                    est.set(init_point=_to_gs(self._to_gs_point(init)))
            est.fit(_to_gs(self._to_gs_point(P)), weights=None if w is None else _to_gs(w))
        return self._from_gs_point(_from_gs(est.estimate_, P.device))

    def exp(self, tangent: Any, base: Any) -> torch.Tensor:
        """Riemannian exponential: the point reached from ``base`` along ``tangent``.

        Parameters
        ----------
        tangent : array of shape (..., *tangent_shape)
        base : array of shape (..., *point_shape)

        Returns
        -------
        point : tensor of shape (..., *point_shape)
        """
        B = self._points(base, "base")
        V = as_tensor(tangent, "tangent", dtype=torch.float64, device=B.device)
        return self._exp(V, B)

    def _exp(self, V: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
        with _geomstats_call():
            out = self.space.metric.exp(
                _to_gs(self._to_gs_tangent(V, B)), _to_gs(self._to_gs_point(B))
            )
        return self._from_gs_point(_from_gs(out, B.device))

    def log(self, point: Any, base: Any) -> torch.Tensor:
        """Riemannian logarithm: the tangent vector at ``base`` pointing to ``point``.

        Parameters
        ----------
        point, base : array of shape (..., *point_shape)

        Returns
        -------
        tangent : tensor of shape (..., *tangent_shape)
        """
        return self._log(self._points(point, "point"), self._points(base, "base"))

    def _log(self, P: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
        with _geomstats_call():
            out = self.space.metric.log(_to_gs(self._to_gs_point(P)), _to_gs(self._to_gs_point(B)))
        return self._from_gs_tangent(_from_gs(out, B.device), B)

    def geodesic(self, a: Any, b: Any, t: Any) -> torch.Tensor:
        """Points of the geodesic from ``a`` (t = 0) to ``b`` (t = 1).

        Parameters
        ----------
        a, b : array of shape point_shape
        t : array of shape (n_t,)
            Times; values outside [0, 1] extrapolate.

        Returns
        -------
        points : tensor of shape (n_t, *point_shape)
        """
        A = self._points(a, "a", batch=False)
        B = self._points(b, "b", batch=False)
        times = as_tensor(t, "t", dtype=torch.float64).reshape(-1)
        return self._geodesic(A, B, times)

    def _geodesic(self, A: torch.Tensor, B: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
        with _geomstats_call():
            curve = self.space.metric.geodesic(
                initial_point=_to_gs(self._to_gs_point(A)), end_point=_to_gs(self._to_gs_point(B))
            )
            out = curve(_to_gs(times))
        out = _from_gs(out, A.device).reshape(times.numel(), *self._gs_point_shape())
        return self._from_gs_point(out)

    def _gs_point_shape(self) -> tuple[int, ...]:
        return self.point_shape

    def tangent_pca(self, points: Any, n_components: int = 2, *, base: Any = None) -> torch.Tensor:
        """Principal components of the points' logs at their Frechet mean, in metric units.

        The logs ``v_i = log_base(p_i)`` and their inner products ``<v_i, v_j>_base`` come
        from geomstats; the components are those of the centred Gram matrix (PCA in an
        orthonormal frame of the tangent space). Unlike geomstats' ``TangentPCA``, which
        flattens symmetric tangent matrices by their upper triangle (not an isometry, so its
        coordinates depend on the ambient basis), distances between the coordinates here are
        the metric's tangent-space distances.

        Parameters
        ----------
        points : array of shape (n, *point_shape)
        n_components : int
        base : array of shape point_shape, optional
            Base point of the tangent space; the Frechet mean by default.

        Returns
        -------
        coords : tensor of shape (n, n_components)
            Leading principal coordinates (zero beyond the rank of the logs).
        """
        n_components = check_int(n_components, "n_components", minimum=1)
        P = self._points(points, "points", batch=True)
        B = self.frechet_mean(P) if base is None else self._points(base, "base", batch=False)
        return self._tangent_pca(P, B, n_components)

    def _tangent_gram(self, P: torch.Tensor, B: torch.Tensor) -> np.ndarray:
        """Inner products ``<log_B p_i, log_B p_j>_B`` of the metric, shape (n, n)."""
        with _geomstats_call():
            gs_base = _to_gs(self._to_gs_point(B))
            metric = self.space.metric
            logs = metric.log(_to_gs(self._to_gs_point(P)), gs_base)
            return np.stack(
                [
                    _from_gs(
                        metric.inner_product(logs[i], logs, gs_base), torch.device("cpu")
                    ).numpy()
                    for i in range(P.shape[0])
                ]
            )

    def _tangent_pca(self, P: torch.Tensor, B: torch.Tensor, n_components: int) -> torch.Tensor:
        gram = self._tangent_gram(P, B)
        n = gram.shape[0]
        J = np.eye(n) - 1.0 / n
        K = J @ (0.5 * (gram + gram.T)) @ J
        w, V = np.linalg.eigh(K)
        order = np.argsort(w)[::-1][:n_components]
        coords = V[:, order] * np.sqrt(np.clip(w[order], 0.0, None))
        if coords.shape[1] < n_components:
            coords = np.pad(coords, ((0, 0), (0, n_components - coords.shape[1])))
        # Deterministic orientation: the largest-magnitude coordinate of each axis is positive.
        signs = np.sign(coords[np.abs(coords).argmax(axis=0), np.arange(n_components)])
        return torch.from_numpy(coords * np.where(signs == 0, 1.0, signs)).to(P.device)

    def __repr__(self) -> str:
        return f"{type(self).__name__}{self._repr_args()}"

    def _repr_args(self) -> str:  # pragma: no cover - overridden
        return "()"


class _ClosedFormManifold(_Manifold):
    """A manifold whose exp/log are latentgeo's closed forms; geomstats only for reference.

    Subclasses give ``_cf_exp(V, B)``, ``_cf_log(P, B)``, ``_metric_scale`` (the metric's inner
    product is ``_metric_scale * <V, W>_F`` on the tangents' representation) and
    ``_initial_mean``. Geodesics are ``t -> exp(t log)``; the Frechet mean is the Karcher
    gradient descent ``m <- exp_m(sum_i w_i log_m p_i)`` (Karcher 1977; step size 1, which is
    Newton's step for two points and converges for points in a convex ball), stopped when the
    metric norm of the mean log falls below ``tol``.
    """

    _metric_scale = 1.0
    _cf_exp: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    _cf_log: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

    def _tangent_ndim(self) -> int:
        return len(self.point_shape)

    def _sq_norm(self, V: torch.Tensor) -> torch.Tensor:
        dims = tuple(range(-self._tangent_ndim(), 0))
        return self._metric_scale * (V * V).sum(dim=dims)

    def _exp(self, V: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
        return self._cf_exp(V, B)

    def _log(self, P: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
        return self._cf_log(P, B)

    def _geodesic(self, A: torch.Tensor, B: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
        V = self._cf_log(B, A)
        t = times.to(V.dtype).reshape(-1, *([1] * V.ndim))
        return self._cf_exp(t * V, A.expand(times.numel(), *A.shape))

    def _frechet_mean(
        self, P: torch.Tensor, w: torch.Tensor | None, tol: float, max_iter: int
    ) -> torch.Tensor:
        n = P.shape[0]
        w = torch.full((n,), 1.0 / n, dtype=P.dtype, device=P.device) if w is None else w
        w = (w / w.sum()).to(P.device).reshape(n, *([1] * len(self.point_shape)))
        mean = self._start(P, w)
        grad_norm = math.inf
        for _ in range(max_iter):
            grad = (w * self._cf_log(P, mean.expand_as(P))).sum(dim=0)
            grad_norm = float(self._sq_norm(grad)) ** 0.5
            if grad_norm < tol:
                return mean
            mean = self._cf_exp(grad, mean)
        warnings.warn(
            f"{self!r}.frechet_mean stopped after max_iter={max_iter} iterations with a "
            f"gradient norm {grad_norm:.3g} > tol={tol:.3g} (points spread beyond a convex "
            f"ball have no unique mean)",
            RuntimeWarning,
            stacklevel=3,
        )
        return mean

    def _start(self, P: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """Starting point of the Karcher descent (a closed-form guess, else the first point)."""
        return P[0]

    def _tangent_gram(self, P: torch.Tensor, B: torch.Tensor) -> np.ndarray:
        V = self._cf_log(P, B.expand_as(P)).reshape(P.shape[0], -1)
        return (self._metric_scale * (V @ V.mT)).detach().cpu().numpy()


class Grassmann(_ClosedFormManifold):
    """Grassmannian Gr(d, k) of k-dimensional subspaces of R^d (geomstats ``Grassmannian``).

    Points are orthonormal bases of shape (d, k) (any basis of the subspace); geomstats works on
    the projectors ``U U^T``. Tangent vectors at ``U`` are horizontal (d, k) matrices ``D`` with
    ``U^T D = 0`` (Edelman, Arias & Smith 1998), corresponding to geomstats' ``D U^T + U D^T``.
    The metric follows geomstats: ``<D1, D2> = 2 tr(D1^T D2)``, so ``dist = sqrt(2) ||theta||_2
    = sqrt(2) ||log||_F`` (``grassmann_distance(convention="geomstats")``; the default "arc"
    convention of :func:`grassmann_distance` is ``||log||_F``).

    exp/log/geodesics/Frechet mean/tangent PCA use :func:`grassmann_exp` and
    :func:`grassmann_log` (O(d k^2), valid at principal angles of pi/2, where geomstats returns a
    zero log). ``exp`` and ``geodesic`` return the horizontal lift of the starting basis.

    Parameters
    ----------
    d : int
        Ambient dimension.
    k : int
        Subspace dimension, ``k <= d``.
    """

    _metric_scale = 2.0

    def __init__(self, d: int, k: int) -> None:
        self.d = check_int(d, "d", minimum=1)
        self.k = check_int(k, "k", minimum=1)
        if k > d:
            raise ValueError(f"k must be <= d, got k={k!r} and d={d!r}")
        super().__init__()

    def _make_space(self) -> Any:
        from geomstats.geometry.grassmannian import Grassmannian

        return Grassmannian(self.d, self.k)

    @property
    def point_shape(self) -> tuple[int, ...]:
        return (self.d, self.k)

    def _repr_args(self) -> str:
        return f"({self.d}, {self.k})"

    def _check_points(self, P: torch.Tensor, name: str) -> torch.Tensor:
        check_orthonormal(P, name)
        return P

    def _to_gs_point(self, P: torch.Tensor) -> torch.Tensor:
        return P @ P.mT

    def _dist(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return grassmann_distance(a, b, convention="geomstats", check=False)

    def _cf_exp(self, V: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
        if V.shape[-2:] != (self.d, self.k):
            raise ValueError(
                f"tangent must have shape (..., {self.d}, {self.k}), got {tuple(V.shape)!r}"
            )
        return grassmann_exp(V, B, check=False)

    def _cf_log(self, P: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
        return grassmann_log(P, B, check=False)

    def _start(self, P: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        # Extrinsic mean: the top-k eigenvectors of the weighted mean projector, i.e. the top-k
        # left singular vectors of [sqrt(w_i) U_i] (O(d (n k)^2), no d x d matrix).
        stacked = (w.sqrt() * P).permute(1, 0, 2).reshape(self.d, -1)
        return torch.linalg.svd(stacked, full_matrices=False)[0][:, : self.k]


class SPD(_Manifold):
    """Symmetric positive-definite k x k matrices with one of three metrics.

    Parameters
    ----------
    k : int
        Matrix size.
    metric : {"affine", "log_euclidean", "bures_wasserstein"}
        geomstats' ``SPDAffineMetric``, ``SPDLogEuclideanMetric`` or
        ``SPDBuresWassersteinMetric``. Tangent vectors are symmetric k x k matrices.
    """

    def __init__(self, k: int, metric: str = "affine") -> None:
        self.k = check_int(k, "k", minimum=1)
        self.metric = check_choice(metric, "metric", SPD_METRICS)
        super().__init__()

    def _make_space(self) -> Any:
        from geomstats.geometry import spd_matrices as m

        cls = {
            "affine": m.SPDAffineMetric,
            "log_euclidean": m.SPDLogEuclideanMetric,
            "bures_wasserstein": m.SPDBuresWassersteinMetric,
        }[self.metric]
        return m.SPDMatrices(self.k, equip=False).equip_with_metric(cls)

    @property
    def point_shape(self) -> tuple[int, ...]:
        return (self.k, self.k)

    def _repr_args(self) -> str:
        return f"({self.k}, metric={self.metric!r})"

    def _check_points(self, P: torch.Tensor, name: str) -> torch.Tensor:
        return _check_spd_input(P, name)

    def _dist(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return spd_distance(a, b, metric=self.metric)

    def _initial_mean(self, P: torch.Tensor) -> torch.Tensor | None:
        if self.metric == "bures_wasserstein":
            return None
        # The log-Euclidean mean: exact for that metric, a close start for the affine one.
        L = _sym_function(P, torch.log, "points").mean(dim=0)
        w, V = torch.linalg.eigh(0.5 * (L + L.mT))
        return (V * torch.exp(w)) @ V.mT


class SO(_ClosedFormManifold):
    """Special orthogonal group SO(k) with the bi-invariant metric (geomstats' convention).

    Points are k x k rotation matrices; tangent vectors at ``R`` are ambient matrices ``R A``
    with ``A`` skew-symmetric (geomstats' matrix representation). The metric is
    ``<R A, R B> = tr(A^T B) / 2``, so ``dist = ||A||_F / sqrt(2)`` (a rotation by theta in one
    plane is at distance theta), as :func:`orthogonal_distance`.

    exp/log/geodesics/Frechet mean/tangent PCA use :func:`so_exp` and :func:`so_log` (stable up
    to and at rotation angles of pi; see :func:`so_logm` for the choice at exactly pi).

    Parameters
    ----------
    k : int
        Matrix size.
    """

    _metric_scale = 0.5

    def __init__(self, k: int) -> None:
        self.k = check_int(k, "k", minimum=1)
        super().__init__()

    def _make_space(self) -> Any:
        from geomstats.geometry.special_orthogonal import SpecialOrthogonal

        return SpecialOrthogonal(self.k)

    @property
    def point_shape(self) -> tuple[int, ...]:
        return (self.k, self.k)

    def _repr_args(self) -> str:
        return f"({self.k})"

    def _check_points(self, P: torch.Tensor, name: str) -> torch.Tensor:
        _check_orthogonal(P, name)
        det = torch.linalg.det(P)
        if bool((det < 0).any()):
            raise ValueError(
                f"{name} must have determinant +1 (a rotation); use orthogonalize(..., "
                f"special=True) to project onto SO(k)"
            )
        return P

    def _dist(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return orthogonal_distance(a, b, check=False)

    def _cf_exp(self, V: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
        return so_exp(V, B, check=False)

    def _cf_log(self, P: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
        return so_log(P, B, check=False)

    def _start(self, P: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        # The rotation nearest the weighted mean matrix (the extrinsic mean), unless the
        # mean matrix is singular (e.g. two rotations by pi apart), then the first point.
        avg = (w * P).sum(dim=0)
        if float(torch.linalg.svdvals(avg)[-1]) <= 1e-8:
            return P[0]
        return orthogonalize(avg, special=True)


class Sphere(_ClosedFormManifold):
    """Unit sphere S^dim in R^(dim + 1) (geomstats ``Hypersphere(dim)``).

    Points are unit vectors of length ``dim + 1``; tangent vectors are ambient vectors
    orthogonal to the base point, with the Euclidean inner product (``dist = ||log||``).
    exp/log/geodesics/Frechet mean/tangent PCA use :func:`sphere_exp` and :func:`sphere_log`
    (stable near antipodal points; see :func:`sphere_log` for the choice at exactly antipodal
    ones).

    Parameters
    ----------
    dim : int
        Intrinsic dimension (points live in R^(dim + 1)).
    """

    _point_ndim = 1

    def __init__(self, dim: int) -> None:
        self.dim = check_int(dim, "dim", minimum=1)
        super().__init__()

    def _make_space(self) -> Any:
        from geomstats.geometry.hypersphere import Hypersphere

        return Hypersphere(self.dim)

    @property
    def point_shape(self) -> tuple[int, ...]:
        return (self.dim + 1,)

    def _repr_args(self) -> str:
        return f"({self.dim})"

    def _check_points(self, P: torch.Tensor, name: str) -> torch.Tensor:
        err = float((torch.linalg.vector_norm(P, dim=-1) - 1).abs().max())
        if not err <= math.sqrt(torch.finfo(P.dtype).eps):
            raise ValueError(f"{name} must hold unit vectors; max | ||x|| - 1 | = {err:.3g}")
        return P

    def _dist(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return sphere_distance(a, b)

    def _cf_exp(self, V: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
        return sphere_exp(V, B)

    def _cf_log(self, P: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
        return sphere_log(P, B)

    def _start(self, P: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        # The normalised weighted mean (the extrinsic mean) unless it (nearly) vanishes.
        avg = (w * P).sum(dim=0)
        norm = float(torch.linalg.vector_norm(avg))
        return avg / norm if norm > 1e-8 else P[0]
