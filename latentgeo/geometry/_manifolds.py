"""The manifolds for the per-step summaries: Grassmann, SPD, SO and Sphere.

Distances use latentgeo's closed forms (tested equal to geomstats' ``dist``). On the
Grassmannian, the sphere and SO(n), exp/log, geodesics, Frechet means and tangent PCA use the
torch closed forms of ``_exp_log`` too: geomstats' logs there are wrong at and near the cut
locus (a zero log between orthogonal subspaces, antipodal points, rotations by pi). They agree
with geomstats away from it (tested). SPD manifolds (no cut locus) run through geomstats
(:mod:`latentgeo.geometry._geomstats_bridge`, the only module that imports it).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from latentgeo._validate import check_int
from latentgeo.geometry._common import check_choice, check_orthonormal
from latentgeo.geometry._exp_log import (
    grassmann_exp,
    grassmann_log,
    so_exp,
    so_log,
    sphere_exp,
    sphere_log,
)
from latentgeo.geometry._manifold import _ClosedFormManifold, _Manifold
from latentgeo.geometry._rotation import (
    _check_orthogonal,
    orthogonal_distance,
    orthogonalize,
    sphere_distance,
)
from latentgeo.geometry._spd import SPD_METRICS, _check_spd_input, _sym_function, spd_distance
from latentgeo.geometry._subspace import grassmann_distance

__all__ = ["SO", "SPD", "Grassmann", "Sphere"]


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
