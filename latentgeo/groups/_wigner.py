"""Real spherical harmonics and real Wigner-D matrices of SO(3), for any rotation matrix.

Real spherical harmonics of degree ``l`` (orthonormal on the unit sphere, order
``m = -l, ..., l``) are built from the associated Legendre recursion written for the
polynomials ``P_l^m(z) / sin^m(θ)`` times ``Re/Im (x + i y)^m``, so they are polynomials in
``(x, y, z)`` with no angle evaluated and no singularity at the poles (the standard
three-term recursion in ``l``; e.g. Press et al., *Numerical Recipes*, 3rd ed., §6.7, and
Wikipedia "Spherical harmonics — Real form"; the Condon–Shortley phase is omitted).

The real Wigner-D matrix ``D^l(R)`` is *defined* by how the harmonics transform,

    Y_n(Rᵀ x) = Σ_m Y_m(x) D^l(R)_{mn},

i.e. ``D^l(R)`` is the matrix of ``f ↦ f ∘ R⁻¹`` on the harmonics of degree ``l`` (so
``D(R₁R₂) = D(R₁) D(R₂)``, and ``D`` is orthogonal because the harmonics are orthonormal).
Since that space is finite-dimensional, the relation holds exactly at any set of points; it
is solved at a fixed, well-conditioned Fibonacci point set ``P`` of the sphere with more
points than ``2l + 1``: ``D(R) = Y(P)⁺ Y(P R)`` with the pseudo-inverse ``Y(P)⁺``
precomputed once per degree.  This works for every rotation (no Euler angles, no
angle-axis logarithm, hence no gimbal or ``θ = π`` instability); accuracy is that of the
pseudo-inverse, ~1e-14 at low degrees.  It is the same basis, up to a fixed orthogonal
change of basis per degree, as e3nn's ``Irreps.D_from_matrix`` (tested against e3nn).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

__all__ = ["real_spherical_harmonics", "so3_character", "wigner_d"]


def real_spherical_harmonics(degree: int, xyz: np.ndarray) -> np.ndarray:
    """Orthonormal real spherical harmonics of one degree at points of the unit sphere.

    Parameters
    ----------
    degree : int
        ``l >= 0``.
    xyz : array of shape (..., 3)
        Unit vectors (the harmonics are evaluated as homogeneous polynomials, so other
        lengths give ``|x|^l`` times the value at ``x / |x|``).

    Returns
    -------
    float64 array of shape (..., 2l + 1)
        ``out[..., l + m] = Y_l^m``, ``m = -l..l``, orthonormal for the surface measure:
        ``∫ Y_l^m Y_l^n dΩ = δ_mn``.  ``m > 0`` uses ``cos(mφ)``, ``m < 0`` ``sin(|m|φ)``.
    """
    p = np.asarray(xyz, dtype=np.float64)
    x, y, z = p[..., 0], p[..., 1], p[..., 2]
    r2 = x * x + y * y + z * z
    l = int(degree)
    out = np.empty((*p.shape[:-1], 2 * l + 1))
    c, s = np.ones_like(x), np.zeros_like(x)  # Re, Im of (x + i y)^m
    qmm = np.ones_like(x)  # (2m - 1)!! : P_m^m / sin^m without the phase
    for m in range(l + 1):
        if m > 0:
            c, s = x * c - y * s, x * s + y * c
            qmm = qmm * (2 * m - 1)
        # Recursion in j from m to l of Q_j^m(z) = P_j^m(z) / sin^m, homogenised with r².
        q_prev, q = np.zeros_like(x), qmm
        for j in range(m + 1, l + 1):
            q_prev, q = q, ((2 * j - 1) * z * q - (j + m - 1) * r2 * q_prev) / (j - m)
        norm = math.sqrt((2 * l + 1) / (4 * math.pi) / math.prod(range(l - m + 1, l + m + 1)))
        if m == 0:
            out[..., l] = norm * q
        else:
            out[..., l + m] = math.sqrt(2.0) * norm * q * c
            out[..., l - m] = math.sqrt(2.0) * norm * q * s
    return out


@lru_cache(maxsize=64)
def _fit_points(degree: int) -> tuple[np.ndarray, np.ndarray]:
    """A Fibonacci point set of the sphere and the pseudo-inverse of the harmonics there."""
    k = 4 * (2 * degree + 1) + 8
    i = np.arange(k) + 0.5
    z = 1.0 - 2.0 * i / k
    phi = np.pi * (1.0 + math.sqrt(5.0)) * i
    rho = np.sqrt(1.0 - z * z)
    pts = np.stack([rho * np.cos(phi), rho * np.sin(phi), z], axis=-1)
    pinv = np.linalg.pinv(real_spherical_harmonics(degree, pts))
    pts.flags.writeable = False
    pinv.flags.writeable = False
    return pts, pinv


def wigner_d(degree: int, rotations: np.ndarray) -> np.ndarray:
    """Real Wigner-D matrices of degree ``l`` at rotation matrices.

    Parameters
    ----------
    degree : int
        ``l >= 0``.
    rotations : float64 array of shape (..., 3, 3)
        Rotation matrices (validated by the caller).

    Returns
    -------
    float64 array of shape (..., 2l + 1, 2l + 1)
        Orthogonal matrices with ``D(R₁R₂) = D(R₁) D(R₂)``, in the basis of
        :func:`real_spherical_harmonics` (``D¹(R) = P R Pᵀ`` with ``P`` the permutation to
        ``(y, z, x)``).  See the module docstring for the construction.
    """
    R = np.asarray(rotations, dtype=np.float64)
    l = int(degree)
    if l == 0:
        return np.ones((*R.shape[:-2], 1, 1))
    pts, pinv = _fit_points(l)
    moved = np.matmul(pts, R)  # row k is (Rᵀ p_k)ᵀ
    return np.matmul(pinv, real_spherical_harmonics(l, moved))


def so3_character(degree: int, rotations: np.ndarray) -> np.ndarray:
    """Characters ``χ_l(R) = Σ_{m=-l}^{l} cos(mθ) = sin((2l+1)θ/2) / sin(θ/2)``.

    ``θ`` is the rotation angle, ``cos θ = (tr R − 1) / 2`` (clipped to [-1, 1]); the cosine
    sum has no singularity at ``θ = 0``.
    """
    R = np.asarray(rotations, dtype=np.float64)
    cos_t = np.clip((np.trace(R, axis1=-2, axis2=-1) - 1.0) / 2.0, -1.0, 1.0)
    theta = np.arccos(cos_t)
    out = np.ones_like(theta)
    for m in range(1, int(degree) + 1):
        out = out + 2.0 * np.cos(m * theta)
    return out
