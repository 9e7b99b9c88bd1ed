"""Homomorphism error of fitted maps, and the group-consistent fit from the generators."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch

from probes._base import HasAttributes, RidgeProbeBase
from probes._linear import LinearProbe
from probes._scoring import r2_and_interval, variance_weighted_r2
from probes._validation import (
    as_orbit_tensor,
    check_group_order,
    element_index,
)

if TYPE_CHECKING:
    from latentgeo.groups import FiniteGroup

__all__ = [
    "GroupConsistentProbe",
    "HomomorphismDefect",
    "fit_from_generators",
    "homomorphism_error",
]


@dataclass(frozen=True)
class HomomorphismDefect:
    """Relative homomorphism defect of a family of maps over all pairs of elements.

    Attributes
    ----------
    mean, max : float
        Mean and maximum over all ordered pairs ``(g, h)`` of
        ``‖rho(g) rho(h) − rho(gh)‖_F / ‖rho(gh)‖_F``.
    pairwise : ndarray of shape (n_elements, n_elements)
        ``pairwise[g, h]`` the defect of the pair.
    worst : tuple of (int, int)
        The pair with the largest defect.

    ``float(err)`` is the mean.
    """

    mean: float
    max: float
    pairwise: np.ndarray = field(repr=False)
    worst: tuple[int, int]

    def __float__(self) -> float:
        return self.mean


def homomorphism_error(
    rho: Any, group: FiniteGroup, *, device: Any = None, dtype: torch.dtype = torch.float64
) -> HomomorphismDefect:
    """How far fitted maps are from a group homomorphism.

    Parameters
    ----------
    rho : array-like or Tensor of shape (n_elements, n_units, n_units)
        ``rho[g]`` the map of element ``g`` (element order of ``group``).
    group : FiniteGroup
        Supplies ``cayley_table`` (``table[g, h]`` the index of ``g∘h``).
    device : torch.device or str, optional
    dtype : torch.dtype

    Returns
    -------
    HomomorphismDefect
        Mean, max and per-pair relative Frobenius errors
        ``‖rho(g) rho(h) − rho(g∘h)‖_F / ‖rho(g∘h)‖_F``.

    Notes
    -----
    Maps fitted by the probes vanish off the numerical span of the latents (``rank_``): there
    ``rho(e)`` is the projector onto the span rather than the identity, and the defect is the
    defect of the representation on the span (the zero block contributes nothing).

    Examples
    --------
    >>> import numpy as np
    >>> from latentgeo.groups import Cyclic
    >>> from probes import homomorphism_error
    >>> G = Cyclic(4)
    >>> homomorphism_error(G.regular_representation(), G).max < 1e-12
    True
    """
    R = as_orbit_tensor(rho, dtype=dtype, device=device, name="rho")
    check_group_order(R.shape[0], group, name="rho")
    if R.shape[1] != R.shape[2]:
        raise ValueError(f"rho must hold square matrices, got shape {tuple(R.shape)}")
    table = torch.as_tensor(np.array(group.cayley_table), device=R.device, dtype=torch.long)
    G = R.shape[0]
    norms = torch.linalg.matrix_norm(R)  # (G,)
    if bool((norms == 0).any()):
        zero = int(torch.nonzero(norms == 0)[0, 0])
        raise ValueError(f"rho[{zero}] is the zero matrix; the relative error is undefined")
    out = torch.empty(G, G, dtype=R.dtype, device=R.device)
    for g in range(G):  # one row of pairs at a time: memory |G| d², not |G|² d²
        prod = R[g] @ R  # (G, d, d): rho(g) rho(h) for every h
        target = R[table[g]]
        out[g] = torch.linalg.matrix_norm(prod - target) / norms[table[g]]
    pairwise = out.cpu().numpy()
    worst = np.unravel_index(int(np.argmax(pairwise)), pairwise.shape)
    return HomomorphismDefect(
        mean=float(pairwise.mean()),
        max=float(pairwise.max()),
        pairwise=pairwise,
        worst=(int(worst[0]), int(worst[1])),
    )


def cayley_words(group: FiniteGroup, generators: Any = None) -> list[tuple[int, int, int]]:
    """Breadth-first spanning tree of the Cayley graph from the identity.

    Returns
    -------
    list of (element, generator, parent)
        In BFS order; ``element = generator ∘ parent`` so ``rho(element) = rho(generator)
        rho(parent)`` and every element's word is as short as possible.
    """
    gens = group.generators if generators is None else generators
    gens = [element_index(group, s) for s in gens]
    if not gens:
        raise ValueError(f"group {group!r} has no generators to build words from")
    table = np.asarray(group.cayley_table)
    seen = {int(group.identity)}
    queue = deque([int(group.identity)])
    steps = []
    while queue:
        parent = queue.popleft()
        for s in gens:
            child = int(table[s, parent])
            if child not in seen:
                seen.add(child)
                steps.append((child, s, parent))
                queue.append(child)
    if len(seen) != group.order:
        raise ValueError(
            f"generators {gens!r} reach {len(seen)} of the {group.order} elements of {group!r}"
        )
    return steps


@dataclass(eq=False, repr=False)
class GroupConsistentProbe(RidgeProbeBase):
    """Fit affine maps on the generators only and build every element along Cayley words.

    The ridge maps ``z(s·x) ≈ rho(s) z(x) + b(s)`` are fitted for the generators ``s`` alone
    (penalty by GCV, as :class:`LinearProbe`); every other element gets the composed affine
    map along its shortest word, ``A(s∘g) = A(s) A(g)``, found by breadth-first search of the
    Cayley graph.  The result is a homomorphism by construction (up to the fit of the
    generators' relations), and its held-out R² tells how much of the orbit a single
    representation explains.

    Parameters
    ----------
    group : FiniteGroup
        The only positional parameter.
    generators : sequence of int or str, optional
        Defaults to ``group.generators``.
    alphas, criterion, test_size, random_state, device, dtype, n_bootstrap, confidence :
        Keyword-only, see :class:`probes._base.RidgeProbeBase` (no null fits here).

    Attributes
    ----------
    rho_ : ndarray of shape (n_elements, n_units, n_units)
    bias_ : ndarray of shape (n_elements, n_units)
    generators_ : list of int
    r2_ : ndarray of shape (n_elements,)
        Held-out R² of the composed maps.  It estimates the population R² of the fitted
        (composed) maps on fresh samples, not the best representation's; see
        :mod:`probes._scoring` for its bias.
    r2_ci_ : ndarray of shape (n_elements, 2)
        Interval at ``confidence`` for the population R² of the fitted map (the estimand of
        ``r2_``): a delta-method Student interval over the held-out samples
        (:func:`probes._scoring.r2_interval`), calibrated in ``docs/calibration.md``.
        Computed when ``n_bootstrap > 0`` (the interval is analytic; the count itself is not
        used), NaN otherwise.
    generator_probe_ : LinearProbe
        The ridge fit of the generators (``rho_`` of shape (n_generators + 1, d, d), identity
        first).
    rank_ : int
        Dimension of the span of the training inputs the maps act on (``rho_[identity]`` is
        the projector onto it when it is smaller than ``n_units``).
    """

    group: FiniteGroup
    generators: Any = None

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **RidgeProbeBase._parameter_constraints,
        "group": [HasAttributes("order", "cayley_table", "generators", what="a finite group")],
        "generators": ["array-like", None],
    }

    def fit(self, Z: Any, y: None = None) -> GroupConsistentProbe:
        """Fit the generators on the training split and score all elements held out.

        Parameters
        ----------
        Z : array-like or Tensor of shape (n_elements, n_samples, n_units)

        Returns
        -------
        self
        """
        self._validate_params()
        Zt = as_orbit_tensor(Z, dtype=self.dtype, device=self.device)
        check_group_order(Zt.shape[0], self.group)
        words = cayley_words(self.group, self.generators)
        gens = sorted({s for _, s, _ in words})
        e = int(self.group.identity)
        sub = Zt[[e, *gens]]  # identity first: it is the input of every generator's fit
        probe = LinearProbe(**self.ridge_params(), n_null=0, n_bootstrap=0, identity=0).fit(sub)
        d = Zt.shape[2]
        A = np.zeros((self.group.order, d + 1, d + 1))  # affine maps in homogeneous form
        A[:, d, d] = 1.0
        # The identity's map: the identity on the span the inputs identify, the projector
        # onto it when they are rank-deficient (every fitted map vanishes off the span, so
        # only the projector keeps A(s) A(e) = A(s) and words through e homomorphic).
        if probe.rank_ == d:
            A[e, :d, :d] = np.eye(d)
        else:
            Q = probe.components_.T  # (d, rank)
            mu = Zt[e, torch.as_tensor(probe.train_index_, device=Zt.device)].mean(dim=0)
            A[e, :d, :d] = Q @ Q.T
            A[e, :d, d] = (np.eye(d) - Q @ Q.T) @ mu.cpu().numpy()
        gen_affine = {}
        for k, s in enumerate(gens, start=1):
            M = np.eye(d + 1)
            M[:d, :d] = probe.rho_[k]
            M[:d, d] = probe.bias_[k]
            gen_affine[s] = M
        for child, s, parent in words:
            A[child] = gen_affine[s] @ A[parent]
        self.rho_ = A[:, :d, :d].copy()
        self.bias_ = A[:, :d, d].copy()
        self.generators_ = gens
        self.generator_probe_ = probe
        self.rank_ = probe.rank_
        self.n_features_in_ = d

        te = torch.as_tensor(probe.test_index_, device=Zt.device)
        X = Zt[e, te]
        R = torch.as_tensor(self.rho_, dtype=Zt.dtype, device=Zt.device)
        b = torch.as_tensor(self.bias_, dtype=Zt.dtype, device=Zt.device)
        Y_hat = torch.einsum("ged,nd->gne", R, X) + b[:, None, :]
        Y = Zt[:, te]
        r2, ci = r2_and_interval(Y, Y_hat, self.confidence if self.n_bootstrap else None)
        self.r2_, self.r2_ci_ = r2.cpu().numpy(), ci.cpu().numpy()
        self.train_index_, self.test_index_ = probe.train_index_, probe.test_index_
        return self

    def score(self, Z: Any, y: None = None) -> float:
        """Mean R² over the non-identity elements of the composed maps on new samples.

        Parameters
        ----------
        Z : array-like of shape (n_elements, n_samples, n_units)
        y : None
            Ignored (scikit-learn signature).

        Returns
        -------
        float
        """
        self._check_fitted()
        t = as_orbit_tensor(Z, dtype=self.dtype, device=self.device, min_samples=2)
        check_group_order(t.shape[0], self.group)
        if t.shape[2] != self.n_features_in_:
            raise ValueError(
                f"Z has {t.shape[2]} units but the probe was fitted on {self.n_features_in_}"
            )
        e = int(self.group.identity)
        R = torch.as_tensor(self.rho_, dtype=t.dtype, device=t.device)
        b = torch.as_tensor(self.bias_, dtype=t.dtype, device=t.device)
        Y_hat = torch.einsum("ged,nd->gne", R, t[e]) + b[:, None, :]
        return self._mean_r2(variance_weighted_r2(t, Y_hat).cpu().numpy(), e)


def fit_from_generators(Z: Any, group: FiniteGroup, **kwargs: Any) -> GroupConsistentProbe:
    """Shorthand for ``GroupConsistentProbe(group, **kwargs).fit(Z)``.

    Parameters
    ----------
    Z : array-like or Tensor of shape (n_elements, n_samples, n_units)
    group : FiniteGroup
    **kwargs
        Parameters of :class:`GroupConsistentProbe`.

    Returns
    -------
    GroupConsistentProbe
        Fitted; ``r2_`` is the held-out R² of the group-consistent maps.
    """
    return GroupConsistentProbe(group, **kwargs).fit(Z)
