"""Geometry of per-step latent summaries: closed forms in torch and a geomstats bridge.

Closed forms (batched over leading dims, any device, float64 unless given float32):
distances on the Grassmannian, SPD matrices, orthogonal group and sphere, representational
shape metrics, intrinsic dimension, and exp/log on the Grassmannian, the sphere and SO(n)
(accurate at and near the cut locus). Summaries per (layer, step) turn latents into manifold
points. ``Grassmann``, ``SPD``, ``SO`` and ``Sphere`` give Frechet means, exp/log, geodesics and
tangent PCA: by those closed forms on the Grassmannian, sphere and SO(n), by geomstats (imported
only when a manifold is built) on SPD.
"""

from latentgeo.geometry._dimension import twonn_dimension
from latentgeo.geometry._exp_log import (
    grassmann_exp,
    grassmann_log,
    so_exp,
    so_log,
    so_logm,
    sphere_exp,
    sphere_log,
)
from latentgeo.geometry._geomstats_bridge import SO, SPD, Grassmann, Sphere
from latentgeo.geometry._pairwise import (
    METRICS,
    check_points,
    distance,
    pairwise_distances,
    resolve_metric,
)
from latentgeo.geometry._rotation import (
    orthogonal_distance,
    orthogonalize,
    rotation_angles,
    sphere_distance,
)
from latentgeo.geometry._shape import cka_distance, linear_cka, procrustes_distance
from latentgeo.geometry._spd import (
    ledoit_wolf,
    shrinkage_covariance,
    spd_distance,
    spd_logm,
    spd_sqrtm,
)
from latentgeo.geometry._subspace import (
    grassmann_distance,
    isotypic_component,
    isotypic_subspace,
    principal_angles,
    principal_subspace,
)

__all__ = [
    "METRICS",
    "SO",
    "SPD",
    "Grassmann",
    "Sphere",
    "check_points",
    "cka_distance",
    "distance",
    "grassmann_distance",
    "grassmann_exp",
    "grassmann_log",
    "isotypic_component",
    "isotypic_subspace",
    "ledoit_wolf",
    "linear_cka",
    "orthogonal_distance",
    "orthogonalize",
    "pairwise_distances",
    "principal_angles",
    "principal_subspace",
    "procrustes_distance",
    "resolve_metric",
    "rotation_angles",
    "shrinkage_covariance",
    "so_exp",
    "so_log",
    "so_logm",
    "spd_distance",
    "spd_logm",
    "spd_sqrtm",
    "sphere_distance",
    "sphere_exp",
    "sphere_log",
    "twonn_dimension",
]
