"""The manifold machinery shared by latentgeo's manifolds (validation, public API, defaults).

:class:`_Manifold` gives the public methods (``dist``, ``frechet_mean``, ``exp``, ``log``,
``geodesic``, ``tangent_pca``) with input checks and geomstats-backed defaults (through
:mod:`latentgeo.geometry._geomstats_bridge`); :class:`_ClosedFormManifold` replaces exp/log,
geodesics, the Frechet mean and the tangent Gram by latentgeo's torch closed forms, for the
manifolds where geomstats' logs are wrong at and near the cut locus (a zero log between
orthogonal subspaces, antipodal points, rotations by pi). The concrete manifolds are in
:mod:`latentgeo.geometry._manifolds`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from latentgeo._validate import check_int
from latentgeo.geometry._common import as_tensor
from latentgeo.geometry._geomstats_bridge import from_gs, geomstats_backend, geomstats_call, to_gs


class _Manifold:
    """Common machinery: conversions to and from geomstats and the geomstats-backed methods."""

    _point_ndim = 2

    def __init__(self) -> None:
        geomstats_backend()
        with geomstats_call():
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
        with geomstats_call():
            est = FrechetMean(self.space)
            if hasattr(est, "optimizer"):  # closed-form estimators (circle) have none
                est.set(max_iter=max_iter, epsilon=tol**2 / max(self.space.dim, 1))
                if init is not None:
                    est.set(init_point=to_gs(self._to_gs_point(init)))
            est.fit(to_gs(self._to_gs_point(P)), weights=None if w is None else to_gs(w))
        return self._from_gs_point(from_gs(est.estimate_, P.device))

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
        with geomstats_call():
            out = self.space.metric.exp(
                to_gs(self._to_gs_tangent(V, B)), to_gs(self._to_gs_point(B))
            )
        return self._from_gs_point(from_gs(out, B.device))

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
        with geomstats_call():
            out = self.space.metric.log(to_gs(self._to_gs_point(P)), to_gs(self._to_gs_point(B)))
        return self._from_gs_tangent(from_gs(out, B.device), B)

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
        with geomstats_call():
            curve = self.space.metric.geodesic(
                initial_point=to_gs(self._to_gs_point(A)), end_point=to_gs(self._to_gs_point(B))
            )
            out = curve(to_gs(times))
        out = from_gs(out, A.device).reshape(times.numel(), *self._gs_point_shape())
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
        with geomstats_call():
            gs_base = to_gs(self._to_gs_point(B))
            metric = self.space.metric
            logs = metric.log(to_gs(self._to_gs_point(P)), gs_base)
            return np.stack(
                [
                    from_gs(
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
