"""Which symmetry a layer learned, unnamed: the largest invariant and equivariant subalgebras.

For a candidate Lie algebra with basis ``G_1..G_m`` acting on inputs (one-parameter families
``T^{(i)}_t = exp(t G_i)``), the Lie derivative of a layer ``h`` along ``X = Σ c_i G_i`` is
``L_X h = Σ c_i d_i`` with ``d_i(x) = d/dt h(T^{(i)}_t x)|₀`` (exact, forward-mode autograd
through the protected model-call path).  Following LieGG (Moskalev et al., 2022, "LieGG:
Studying learned Lie group generators", NeurIPS), applied to latents instead of outputs:

- **invariant** subalgebra: the ``c`` with ``Σ c_i d_i(x) = 0`` for every probe input, the
  null space of the matrix ``[d_1 … d_m]`` (one row per sample and unit);
- **equivariant** subalgebra: the ``c`` for which a latent operator exists,
  ``Σ c_i d_i(x) = A h(x) + a`` for all ``x``: the null space of the same columns after
  removing what an affine function of ``h`` explains (least squares over the samples).

Columns are scaled to be dimensionless (the latent's relative change per relative change of
the input, ``‖d_i‖ / ‖h − h̄‖`` over ``‖G_i x‖ / ‖x‖``), so the singular values compare
across generators of different units (pixels, radians): about 1 for a generic direction,
0 for an exact symmetry; the spectrum says how sharp the answer is.  A subspace is kept when
its singular values are below ``tol``; it is then checked for closure under the bracket (a
subalgebra) and named where it matches a known one.  Finite groups are answered by
:func:`probes.subgroup_scan` and reported in the same result type.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from probes._intervene import LayerForward, check_inputs, model_layers

__all__ = [
    "DiscoveredSymmetry",
    "SymmetryDiscovery",
    "affine2_algebra",
    "discover_symmetry",
    "gl3_algebra",
]


@dataclasses.dataclass(frozen=True)
class DiscoveredSymmetry:
    """One discovered symmetry (invariant or equivariant) of a layer.

    Attributes
    ----------
    name : str or None
        The known subalgebra it matches (``"so(2)"``, ``"so(3) ⊕ scalings"``, ``"zero"``),
        or for a finite group the maximal subgroups' names joined by ``", "``; None if
        nothing known matches.
    dimension : int
        Lie algebra: its dimension; finite group: the order of the largest maximal subgroup.
    basis : ndarray of shape (dimension, m) or None
        Orthonormal coefficient vectors in the ambient basis (Lie algebra only).
    singular_values : ndarray of shape (m,) or None
        Ascending scaled singular values (Lie algebra), the spectrum of the answer.
    closure_error : float or None
        Largest component of a bracket of basis elements outside the subspace, relative to
        the elements' norms (0 for a subalgebra; None where the generators' matrices are
        unknown or ``dimension < 2``).
    subgroups : tuple of str
        Finite groups: the names of the maximal respected subgroups.
    """

    name: str | None
    dimension: int
    basis: np.ndarray | None = None
    singular_values: np.ndarray | None = None
    closure_error: float | None = None
    subgroups: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class SymmetryDiscovery:
    """The result of :func:`discover_symmetry`: the invariant and equivariant symmetry.

    Attributes
    ----------
    kind : {"lie_algebra", "finite"}
    ambient : tuple of str
        The candidate algebra's basis names, or the finite group's spec.
    invariant, equivariant : DiscoveredSymmetry
    layer : str
    tol : (float, float) or None
        Thresholds on the scaled singular values, invariant and equivariant (Lie algebra).
    scan : xarray.Dataset or None
        The subgroup scan (finite groups).
    """

    kind: str
    ambient: tuple[str, ...]
    invariant: DiscoveredSymmetry
    equivariant: DiscoveredSymmetry
    layer: str
    tol: tuple[float, float] | None = None
    scan: Any = None

    def to_dataset(self) -> Any:
        """The result as the dataset a run store caches (``analysis/symmetry_discovery``).

        The layout :func:`probes.discovery_over_training` stacks along ``step`` and
        ``latentgeo analyze`` reports; a training callback's ``analyses=`` function may return
        this object, which is stored through this method.

        Returns
        -------
        xarray.Dataset
            ``invariant_dimension`` (int), ``invariant_name`` (str, ``""`` where nothing
            known matches) and the same for ``equivariant``; for a Lie algebra also
            ``*_basis`` (basis_index, generator; rows past the dimension NaN),
            ``*_singular_values`` (basis_index) and ``*_closure_error`` (NaN where None),
            with the ``generator`` coordinate.  Attributes ``kind`` and ``layer``.
        """
        import xarray as xr

        m = len(self.ambient)
        data: dict[str, Any] = {}
        for which in ("invariant", "equivariant"):
            sym = getattr(self, which)
            data[f"{which}_dimension"] = sym.dimension
            data[f"{which}_name"] = np.array("" if sym.name is None else sym.name, dtype=object)
            if self.kind == "lie_algebra":
                basis = np.full((m, m), np.nan)
                basis[: sym.dimension] = sym.basis
                data[f"{which}_basis"] = (("basis_index", "generator"), basis)
                data[f"{which}_singular_values"] = ("basis_index", sym.singular_values)
                data[f"{which}_closure_error"] = (
                    np.nan if sym.closure_error is None else sym.closure_error
                )
        coords = (
            {"generator": np.array(self.ambient, dtype=object)}
            if self.kind == "lie_algebra"
            else {}
        )
        return xr.Dataset(data, coords=coords, attrs={"kind": self.kind, "layer": self.layer})


@dataclasses.dataclass(frozen=True)
class _Algebra:
    families: tuple[Any, ...]
    names: tuple[str, ...]
    matrices: np.ndarray | None
    known: dict[str, np.ndarray]


def affine2_algebra(**kwargs: Any) -> _Algebra:
    """The affine algebra of the plane acting on images (6 generators, Frobenius-orthogonal):
    ``t_x, t_y`` (translations), ``rotation``, ``scaling``, ``shear`` (symmetric), ``stretch``.

    ``kwargs`` go to :class:`latentgeo.actions.ImageAffineFamily` (``interpolation``,
    ``padding_mode``).
    """
    from latentgeo.actions import ImageAffineFamily

    gens = {
        "t_x": [[0, 0, 1], [0, 0, 0]],
        "t_y": [[0, 0, 0], [0, 0, 1]],
        "rotation": [[0, 1, 0], [-1, 0, 0]],
        "scaling": [[1, 0, 0], [0, 1, 0]],
        "shear": [[0, 1, 0], [1, 0, 0]],
        "stretch": [[1, 0, 0], [0, -1, 0]],
    }
    mats = np.zeros((6, 3, 3))
    for i, g in enumerate(gens.values()):
        mats[i, :2] = g
    names = tuple(gens)
    idx = {n: i for i, n in enumerate(names)}

    def span(*members: str) -> np.ndarray:
        return np.eye(6)[[idx[m] for m in members]]

    known = {
        "so(2)": span("rotation"),
        "translations": span("t_x", "t_y"),
        "scalings": span("scaling"),
        "so(2) ⊕ scalings": span("rotation", "scaling"),
        "se(2)": span("t_x", "t_y", "rotation"),
        "translations ⊕ scalings": span("t_x", "t_y", "scaling"),
        "sim(2)": span("t_x", "t_y", "rotation", "scaling"),
        "sl(2)": span("rotation", "shear", "stretch"),
        "gl(2)": span("rotation", "scaling", "shear", "stretch"),
        "sa(2)": span("t_x", "t_y", "rotation", "shear", "stretch"),
        "aff(2)": np.eye(6),
    }
    fams = tuple(ImageAffineFamily(g, **kwargs) for g in gens.values())
    return _Algebra(fams, names, mats, known)


def gl3_algebra() -> _Algebra:
    """gl(3) acting on point clouds ``(..., n_points, 3)``: the 9 matrix units ``E_ij``."""
    from latentgeo.actions import PointCloudFamily, so3_basis

    mats = np.zeros((9, 3, 3))
    names = []
    for k in range(9):
        i, j = divmod(k, 3)
        mats[k, i, j] = 1.0
        names.append(f"E{i}{j}")
    coords = mats.reshape(9, 9)  # row k: vec(E_k); a matrix X has coefficients vec(X)
    so3 = so3_basis().reshape(3, 9) @ coords.T
    scal = np.eye(3).reshape(1, 9) @ coords.T
    traceless = np.eye(9)[[k for k in range(9) if k not in (0, 4, 8)]]
    diag = np.array([[1, 0, 0, 0, -1, 0, 0, 0, 0], [0, 0, 0, 0, 1, 0, 0, 0, -1]], float)
    known = {
        "so(3)": so3,
        "scalings": scal,
        "so(3) ⊕ scalings": np.concatenate([so3, scal]),
        "sl(3)": np.concatenate([traceless, diag]),
        "gl(3)": np.eye(9),
    }
    return _Algebra(tuple(PointCloudFamily(m) for m in mats), tuple(names), mats, known)


def _orthonormal(rows: np.ndarray) -> np.ndarray:
    if rows.size == 0:
        return rows.reshape(0, rows.shape[-1])
    _, s, vt = np.linalg.svd(rows, full_matrices=False)
    return vt[s > 1e-12 * max(s.max(), 1e-300)]


def _name(basis: np.ndarray, known: dict[str, np.ndarray], name_tol: float) -> str | None:
    if basis.shape[0] == 0:
        return "zero"
    for name, sub in known.items():
        q = _orthonormal(sub)
        if q.shape[0] != basis.shape[0]:
            continue
        # Largest principal angle's sine: the part of one subspace outside the other.
        sines = np.linalg.svd(basis - (basis @ q.T) @ q, compute_uv=False)
        if sines.max() <= name_tol:
            return name
    return None


def _closure(basis: np.ndarray, mats: np.ndarray | None) -> float | None:
    if mats is None or basis.shape[0] < 2:
        return None
    flat = mats.reshape(len(mats), -1)
    X = np.einsum("ai,ijk->ajk", basis, mats)
    worst = 0.0
    for a in range(len(X)):
        for b in range(a + 1, len(X)):
            br = X[a] @ X[b] - X[b] @ X[a]
            coef, *_ = np.linalg.lstsq(flat.T, br.ravel(), rcond=None)
            outside = np.linalg.norm(flat.T @ (coef - basis.T @ (basis @ coef)))
            outside += np.linalg.norm(flat.T @ coef - br.ravel())  # outside the ambient span
            scale = np.linalg.norm(X[a]) * np.linalg.norm(X[b])
            worst = max(worst, float(outside / scale))
    return worst


def _null(M: np.ndarray, tol: float) -> tuple[np.ndarray, np.ndarray]:
    """Ascending singular values of ``M`` and the right singular vectors below ``tol``."""
    if M.shape[0] > M.shape[1]:  # many rows: the SVD of the (m, m) triangular factor
        M = np.asarray(np.linalg.qr(M, mode="r"))
    _, s, vt = np.linalg.svd(M, full_matrices=True)  # vt is (m, m) either way
    s_full = np.zeros(M.shape[1])
    s_full[: s.size] = s
    order = np.argsort(s_full)
    return s_full[order], vt[order][s_full[order] < tol]


def _resolve_algebra(algebra: Any, names: Any, matrices: Any, known: Any) -> _Algebra:
    if isinstance(algebra, _Algebra):
        return algebra
    if algebra == "affine2":
        return affine2_algebra()
    if algebra == "gl3":
        return gl3_algebra()
    if isinstance(algebra, str) or not isinstance(algebra, Sequence) or not algebra:
        raise ValueError(
            f"algebra must be 'affine2', 'gl3', a finite-group Action or a non-empty sequence "
            f"of one-parameter families (x, t) -> x'; got {algebra!r}"
        )
    if not all(callable(f) for f in algebra):
        raise TypeError(f"every basis element must be a family (x, t) -> x', got {algebra!r}")
    m = len(algebra)
    el = tuple(str(n) for n in names) if names is not None else tuple(f"G{i}" for i in range(m))
    if len(el) != m:
        raise ValueError(f"names must give {m} names, got {names!r}")
    mats = None if matrices is None else np.asarray(matrices, dtype=np.float64)
    if mats is not None and (mats.ndim != 3 or mats.shape[0] != m):
        raise ValueError(f"matrices must have shape ({m}, k, k), got {mats.shape}")
    kn = {str(k): np.atleast_2d(np.asarray(v, dtype=np.float64)) for k, v in (known or {}).items()}
    return _Algebra(tuple(algebra), el, mats, kn)


def discover_symmetry(
    model: torch.nn.Module,
    layer: str,
    algebra: Any,
    inputs: torch.Tensor,
    *,
    tol: float = 1e-3,
    name_tol: float = 0.1,
    names: Any = None,
    matrices: Any = None,
    known: Any = None,
    n_components: int | None = None,
    threshold: float = 0.9,
    n_bootstrap: int = 0,
) -> SymmetryDiscovery:
    """The largest subalgebra (or subgroup) under which a layer is invariant, and equivariant.

    Parameters
    ----------
    model : torch.nn.Module
        Called only through latentgeo's protected model-call path.
    layer : str
        The submodule whose output is examined.
    algebra : ``"affine2"``, ``"gl3"``, sequence of one-parameter families, or Action
        The candidate: the affine algebra of the plane on images (:func:`affine2_algebra`),
        gl(3) on point clouds (:func:`gl3_algebra`), any basis of families ``(x, t) -> x'``,
        or an action of a finite group (answered by :func:`probes.subgroup_scan`).
    inputs : Tensor of shape (n_samples, ...)
    tol : float or (float, float)
        Scaled singular values below ``tol`` span the discovered subalgebra (a pair: one
        threshold for invariance, one for equivariance).
    name_tol : float
        Largest sine of the principal angles to a known subalgebra for its name.
    names, matrices, known :
        A user basis: its element names, its matrices ``(m, k, k)`` (closure under the
        bracket, naming) and known subalgebras ``{name: coefficient rows}``.
    n_components : int, optional
        Equivariance: regress on the top principal components of the layer (needed when the
        layer has at least as many units as there are samples).
    threshold, n_bootstrap :
        Finite groups: as :func:`probes.subgroup_scan`.

    Returns
    -------
    SymmetryDiscovery

    Raises
    ------
    ValueError
        Unknown algebra or layer; equivariance with ``n_samples <= n_units + 1`` and no
        ``n_components``.
    """
    from latentgeo.actions import Action

    x = check_inputs(inputs, floating=True)
    layer_names, modules = model_layers(model, [layer])
    name = layer_names[0]
    fwd = LayerForward(model, modules)
    if isinstance(algebra, Action):
        return _finite(fwd, name, algebra, x, threshold, n_bootstrap)
    alg = _resolve_algebra(algebra, names, matrices, known)
    tols = tuple(tol) if isinstance(tol, tuple | list) else (tol, tol)
    if len(tols) != 2 or not all(
        isinstance(t, float | int) and not isinstance(t, bool) and t > 0 for t in tols
    ):
        raise ValueError(
            f"tol must be a positive float or a pair (invariant, equivariant) of them, got {tol!r}"
        )
    from probes._lie_derivative import _jvp

    with torch.no_grad():
        _, hidden = fwd(x, read=[name])
    h = hidden[name].reshape(x.shape[0], -1).to(torch.float64)
    n = h.shape[0]
    zero = torch.zeros((), dtype=x.dtype, device=x.device)
    hc_norm = float((h - h.mean(0)).norm())
    x_norm = float(x.norm())
    cols, moved = [], []
    for fam in alg.families:

        def latent(t: torch.Tensor, fam: Any = fam) -> torch.Tensor:
            return fwd(fam(x, t), read=[name])[1][name]

        def moved_input(t: torch.Tensor, fam: Any = fam) -> torch.Tensor:
            return fam(x, t)

        _, d = _jvp(latent, zero)
        cols.append(d.detach().reshape(n, -1).to(torch.float64))
        _, dx = _jvp(moved_input, zero)
        moved.append(float(dx.norm()))
    # Dimensionless columns: relative latent change per relative input change.
    scale = np.array([(x_norm / m if m > 0 else 0.0) / max(hc_norm, 1e-300) for m in moved])
    D = torch.stack(cols, dim=-1)  # (n, units, m)
    M_inv = (D.reshape(-1, D.shape[-1]).cpu().numpy()) * scale
    # Equivariance: remove what an affine function of h explains, sample by sample.
    H = h - h.mean(0)
    if n_components is not None:
        _, _, V = torch.linalg.svd(H, full_matrices=False)
        V = V[: int(n_components)].T
        H, D = H @ V, torch.einsum("nur,uk->nkr", D, V)
    if n <= H.shape[1] + 1:
        raise ValueError(
            f"layer {name!r} has {H.shape[1]} units and {n} samples: equivariance needs more "
            "samples than units + 1 (pass more inputs or n_components)"
        )
    design = torch.cat([H, torch.ones(n, 1, dtype=H.dtype, device=H.device)], dim=1)
    Q, _ = torch.linalg.qr(design)
    R = D - torch.einsum("nk,mk,mur->nur", Q, Q, D)
    M_eq = R.reshape(-1, R.shape[-1]).cpu().numpy() * scale

    out = []
    for M, t in zip((M_inv, M_eq), tols, strict=True):
        s, null = _null(M, float(t))
        # Back from scaled coordinates to coefficients of the ambient basis.
        basis = _orthonormal(null * scale) if null.size else null
        out.append(
            DiscoveredSymmetry(
                name=_name(basis, alg.known, name_tol),
                dimension=int(basis.shape[0]),
                basis=basis,
                singular_values=s,
                closure_error=_closure(basis, alg.matrices),
            )
        )
    return SymmetryDiscovery(
        kind="lie_algebra",
        ambient=alg.names,
        invariant=out[0],
        equivariant=out[1],
        layer=name,
        tol=(float(tols[0]), float(tols[1])),
    )


def _finite(
    fwd: LayerForward, name: str, action: Any, x: torch.Tensor, threshold: float, n_boot: int
) -> SymmetryDiscovery:
    from probes._orbit_reps import whole_finite_orbit
    from probes._subgroups import subgroup_scan

    if not whole_finite_orbit(action):
        raise ValueError(f"a finite candidate needs a whole group's orbit, got {action!r}")
    orbit = action.orbit(x)
    n_el, n = orbit.shape[:2]
    with torch.no_grad():
        _, hidden = fwd(orbit.reshape(n_el * n, *orbit.shape[2:]), read=[name])
    Z = hidden[name].reshape(n_el, n, -1)
    scan = subgroup_scan(Z, action.group, threshold=threshold, n_bootstrap=n_boot)

    def found(flag: str) -> DiscoveredSymmetry:
        subs = tuple(str(s) for s in scan.subgroup.values[scan[flag].values])
        orders = scan.order.values[scan[flag].values]
        return DiscoveredSymmetry(
            name=", ".join(subs) if subs else None,
            dimension=int(orders.max()) if orders.size else 0,
            subgroups=subs,
        )

    return SymmetryDiscovery(
        kind="finite",
        ambient=(action.group.spec,),
        invariant=found("maximal_invariant"),
        equivariant=found("maximal_equivariant"),
        layer=name,
        scan=scan,
    )
