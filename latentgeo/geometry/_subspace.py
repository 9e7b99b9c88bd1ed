"""Subspaces: principal angles, Grassmann distances, principal and isotypic subspaces."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch

from latentgeo._validate import check_int
from latentgeo.geometry._common import (
    as_pair,
    as_tensor,
    check_choice,
    check_finite,
    check_orthonormal,
)

if TYPE_CHECKING:
    from latentgeo.groups import Group, GroupIrrep

GRASSMANN_CONVENTIONS = ("arc", "geomstats", "chordal")


def _angles_unchecked(U: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
    # Work with the wider basis as U so that V has the fewer columns: the sines of the residual
    # (I - UU^T)V then pair one-to-one with the cosines of U^T V.
    if V.shape[-1] > U.shape[-1]:
        U, V = V, U
    M = U.mT @ V
    cos = torch.linalg.svdvals(M)  # descending: smallest angles first
    # Sines from the residual, not sqrt(1 - cos^2): arccos/sqrt lose everything below ~1e-8.
    sin = torch.linalg.svdvals(V - U @ M).flip(-1)  # ascending: smallest angles first
    # atan2 is accurate at both ends: the sine resolves tiny angles, the cosine angles near pi/2.
    return torch.atan2(sin, cos)


def principal_angles(U: Any, V: Any, *, check: bool = True) -> torch.Tensor:
    """Principal angles between the subspaces spanned by two orthonormal bases.

    Parameters
    ----------
    U : array of shape (..., d, k)
        Orthonormal basis (``U^T U = I``).
    V : array of shape (..., d, l)
        Orthonormal basis; leading dims broadcast against those of ``U`` (a ``(T, 1, d, k)``
        against a ``(1, T, d, k)`` gives all ``T x T`` pairs).
    check : bool
        Verify orthonormality of the inputs (cheap; disable in inner loops).

    Returns
    -------
    theta : tensor of shape (..., min(k, l))
        Angles in ``[0, pi/2]``, ascending. Computed as ``atan2(sin, cos)`` with the cosines
        from the singular values of ``U^T V`` and the sines from those of ``(I - U U^T) V``
        (Knyazev & Argentati 2002), so that angles down to ~1e-16 are resolved.

    Examples
    --------
    >>> import torch
    >>> U = torch.eye(3, dtype=torch.float64)[:, :1]
    >>> V = torch.tensor([[1.0], [1.0], [0.0]], dtype=torch.float64) / 2**0.5
    >>> float(principal_angles(U, V)[0])  # pi / 4
    0.7853981633974483
    """
    U, V = as_pair(U, V, ("U", "V"), min_ndim=2)
    if U.shape[-2] != V.shape[-2]:
        raise ValueError(
            f"U and V must live in the same ambient dimension d, got U of shape "
            f"{tuple(U.shape)!r} and V of shape {tuple(V.shape)!r}"
        )
    if check:
        check_orthonormal(U, "U")
        check_orthonormal(V, "V")
    return _angles_unchecked(U, V)


def _grassmann_from_angles(theta: torch.Tensor, convention: str) -> torch.Tensor:
    if convention == "arc":
        return torch.linalg.vector_norm(theta, dim=-1)
    if convention == "geomstats":
        return math.sqrt(2.0) * torch.linalg.vector_norm(theta, dim=-1)
    return torch.linalg.vector_norm(torch.sin(theta), dim=-1)


def grassmann_distance(
    U: Any, V: Any, *, convention: str = "arc", check: bool = True
) -> torch.Tensor:
    """Geodesic (or chordal) distance between subspaces given by orthonormal bases.

    Parameters
    ----------
    U : array of shape (..., d, k)
        Orthonormal basis.
    V : array of shape (..., d, k)
        Orthonormal basis; leading dims broadcast against those of ``U``.
    convention : {"arc", "geomstats", "chordal"}
        ``"arc"`` (default): arc length ``||theta||_2`` of the principal angles, the geodesic
        distance of Gr(d, k) with the metric of Edelman, Arias & Smith (1998) on bases.
        ``"geomstats"``: ``sqrt(2) * ||theta||_2``, the geodesic distance of geomstats'
        ``Grassmannian`` (canonical metric on projectors ``U U^T``).
        ``"chordal"``: ``||sin theta||_2 = ||U U^T - V V^T||_F / sqrt(2)``.
    check : bool
        Verify orthonormality of the inputs.

    Returns
    -------
    dist : tensor of shape (...)
    """
    check_choice(convention, "convention", GRASSMANN_CONVENTIONS)
    U, V = as_pair(U, V, ("U", "V"), min_ndim=2)
    if U.shape[-2:] != V.shape[-2:]:
        raise ValueError(
            f"U and V must be bases of the same Gr(d, k), got shapes {tuple(U.shape)!r} and "
            f"{tuple(V.shape)!r}"
        )
    theta = principal_angles(U, V, check=check)
    return _grassmann_from_angles(theta, convention)


def _flatten_rows(Z: torch.Tensor, name: str) -> torch.Tensor:
    if Z.ndim < 2:
        raise ValueError(
            f"{name} must have shape (..., n_samples, n_units) with at least 2 dims, got "
            f"shape {tuple(Z.shape)!r}"
        )
    return Z.reshape(-1, Z.shape[-1])


def _top_k_basis(X: torch.Tensor, k: int, center: bool) -> torch.Tensor:
    n, d = X.shape
    if k > min(n, d):
        raise ValueError(
            f"k={k!r} exceeds min(n_rows, n_units) = {min(n, d)} of the latents "
            f"(rows {n}, units {d})"
        )
    if center:
        X = X - X.mean(dim=0, keepdim=True)
    # SVD of the data, not eigh of the covariance: eigh squares the condition number.
    _, _, Vh = torch.linalg.svd(X, full_matrices=False)
    basis = Vh[:k].mT
    # Deterministic signs (largest entry of each column positive): reproducible bases across
    # devices and library versions; the subspace itself does not depend on the signs.
    idx = basis.abs().argmax(dim=0)
    signs = torch.sign(basis[idx, torch.arange(k, device=basis.device)])
    signs[signs == 0] = 1
    return basis * signs


def principal_subspace(Z: Any, k: int, *, center: bool = True) -> torch.Tensor:
    """Top-``k`` principal subspace of a set of latents.

    Parameters
    ----------
    Z : array of shape (n_elements, n_samples, n_units) or (n_samples, n_units)
        Latents; all leading dims are pooled as observations.
    k : int
        Dimension of the subspace.
    center : bool
        Subtract the mean over observations first (PCA).

    Returns
    -------
    basis : tensor of shape (n_units, k)
        Orthonormal basis of the span of the top-``k`` right singular vectors, a point of
        Gr(n_units, k).
    """
    k = check_int(k, "k", minimum=1)
    Z = as_tensor(Z, "Z")
    check_finite(Z, "Z")
    return _top_k_basis(_flatten_rows(Z, "Z"), k, center)


def _irrep_for(group: Group, irrep: Any) -> GroupIrrep:
    if not getattr(group, "is_finite", False) or not hasattr(group, "cayley_table"):
        raise TypeError(f"group must be a latentgeo finite group, got {type(group).__name__}")
    irreps = group.irreps()
    names = [r.name for r in irreps]
    if hasattr(irrep, "name") and not isinstance(irrep, str):
        irrep = irrep.name
    if isinstance(irrep, int) and not isinstance(irrep, bool):
        if not 0 <= irrep < len(names):
            raise ValueError(f"irrep index {irrep!r} out of range for {len(names)} irreps")
        return irreps[irrep]
    if irrep not in names:
        raise ValueError(f"irrep must be one of {names!r}, got {irrep!r}")
    return irreps[names.index(irrep)]


def isotypic_subspace(
    Z: Any, group: Group, irrep: Any, k: int, *, center: bool = True
) -> torch.Tensor:
    """Top-``k`` principal subspace of the part of the latents that transforms like ``irrep``.

    The orbit signal ``g -> Z[g, i]`` of every sample is projected with the group's isotypic
    projector ``P`` along the element axis, ``Z_iso[g] = sum_h P[g, h] Z[h]``, and the top-``k``
    PCA basis of the projected latents is returned.

    Parameters
    ----------
    Z : array of shape (n_elements, n_samples, n_units)
        Latents of the probe set's orbit, ``Z[g] = z(g . x)`` in the group's element order.
    group : latentgeo.groups.FiniteGroup
        The finite group (its irreps' characters and Cayley table give the projection).
    irrep : str, int or Irrep
        Irrep name, index into ``group.irreps()``, or the irrep itself.
    k : int
        Dimension of the subspace.
    center : bool
        Subtract the mean over (element, sample) before the PCA.

    Returns
    -------
    basis : tensor of shape (n_units, k)
    """
    k = check_int(k, "k", minimum=1)
    Z_iso = isotypic_component(Z, group, irrep)
    return _top_k_basis(Z_iso.reshape(-1, Z_iso.shape[-1]), k, center)


def isotypic_component(Z: Any, group: Group, irrep: Any) -> torch.Tensor:
    """The part of orbit latents that transforms like ``irrep``: ``Σ_h P[g, h] Z[h]``.

    Parameters
    ----------
    Z : array of shape (n_elements, n_samples, n_units)
        Latents of the probe set's orbit in the group's element order.
    group : latentgeo.groups.FiniteGroup
    irrep : str, int or Irrep

    Returns
    -------
    tensor of shape (n_elements, n_samples, n_units)
        The isotypic component of every sample's orbit signal; the components of all irreps
        sum to ``Z`` and are mutually orthogonal along the element axis.

    Raises
    ------
    ValueError
        If ``Z`` is not 3-D, holds non-finite values, or its element axis does not match.
    """
    Z = as_tensor(Z, "Z")
    if Z.ndim != 3:
        raise ValueError(
            f"Z must have shape (n_elements, n_samples, n_units), got shape {tuple(Z.shape)!r}"
        )
    check_finite(Z, "Z")
    from latentgeo.groups._fourier import project_isotypic

    rho = _irrep_for(group, irrep)
    if Z.shape[0] != group.order:
        raise ValueError(
            f"Z has {Z.shape[0]} elements along axis 0 but the group has order {group.order}"
        )
    # P Z in row blocks of P, from the character: no |G| x |G| matrix for large groups.
    return project_isotypic(group, rho, Z)
