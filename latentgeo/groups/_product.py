"""Direct products of finite groups, with real irreps built from the factors' irreps."""

from __future__ import annotations

import numpy as np

from ._decompose import complex_structure, split_representation
from ._finite import FiniteGroup
from ._irreps import IRREP_TYPES, Irrep, commutant_dimension
from ._registry import GROUPS

__all__ = ["DirectProduct"]

_TYPE_OF_K = {k: t for t, k in IRREP_TYPES.items()}


@GROUPS.register
class DirectProduct(FiniteGroup):
    """The direct product ``G x H`` of two finite groups.

    Element ``i * H.order + j`` is the pair ``(g_i, h_j)``, named ``"(g_i,h_j)"``;
    composition is componentwise.  The spec is ``"GxH"`` (e.g. ``"C2xC4"``; a product as
    right factor is parenthesised, ``"C2x(C3xC4)"``).

    Real irreps come from the factors' real irreps ``rho`` (of ``G``) and ``sigma`` (of
    ``H``), in the order of the pairs, trivial first:

    - if ``rho`` or ``sigma`` is of real type, ``rho ⊗ sigma`` is irreducible; named
      ``"{rho}x{sigma}"`` (e.g. ``"AxE1"``) and of the other factor's type;
    - if both are of complex type, ``rho ⊗ sigma`` is the sum of two inequivalent real
      irreps of complex type: with the complex structures ``J_rho``, ``J_sigma``, the
      ``-1`` eigenspace of ``J_rho ⊗ J_sigma`` (where both complex structures agree; the
      character ``chi psi``) is named ``"{rho}x{sigma}+"`` and the ``+1`` eigenspace
      (``chi conj(psi)``) ``"{rho}x{sigma}-"``.  For ``C_m x C_n`` these are the
      frequency sum and difference;
    - otherwise (complex ⊗ quaternionic, quaternionic ⊗ quaternionic), ``rho ⊗ sigma`` is
      2 or 4 copies of one irrep; one copy is split off numerically, named
      ``"{rho}x{sigma}"``.

    Irrep names of a factor that is itself a product are parenthesised.

    Parameters
    ----------
    first, second : FiniteGroup
        The factors ``G`` and ``H``.

    Attributes
    ----------
    first, second : FiniteGroup
        The factors.

    Examples
    --------
    >>> from latentgeo.groups import Cyclic
    >>> G = DirectProduct(Cyclic(2), Cyclic(4))
    >>> G.spec, G.order, G.elements[G.compose("(r,r)", "(r,r3)")]
    ('C2xC4', 8, '(e,e)')
    """

    first: FiniteGroup
    second: FiniteGroup

    def __init__(self, first: FiniteGroup, second: FiniteGroup) -> None:
        for g in (first, second):
            if not isinstance(g, FiniteGroup):
                raise TypeError(f"DirectProduct factors must be finite groups, got {g!r}")
        d = self.__dict__
        d["first"], d["second"] = first, second
        n, m = first.order, second.order
        tg, th = first.cayley_table, second.cayley_table
        table = (tg[:, None, :, None] * m + th[None, :, None, :]).reshape(n * m, n * m)
        names = tuple(f"({a},{b})" for a in first.elements for b in second.elements)
        if len(set(names)) != len(names):  # only if factor names contain "," oddly
            names = tuple(f"({i},{j})" for i in range(n) for j in range(m))
        self._setup(table, names)

    @property
    def factors(self) -> tuple[FiniteGroup, FiniteGroup]:
        """``(G, H)``."""
        return (self.first, self.second)

    def _key(self) -> tuple:
        return (self.first, self.second)

    def __repr__(self) -> str:
        return f"DirectProduct({self.first!r}, {self.second!r})"

    def __reduce__(self) -> tuple:
        return (DirectProduct, (self.first, self.second))

    @property
    def spec(self) -> str:
        right = self.second.spec
        if isinstance(self.second, DirectProduct):
            right = f"({right})"
        return f"{self.first.spec}x{right}"

    def pair(self, element: object) -> tuple[int, int]:
        """Indices ``(i, j)`` in the factors of an element of the product."""
        return divmod(self.index(element), self.second.order)

    @property
    def generators(self) -> tuple[int, ...]:
        m = self.second.order
        return tuple(g * m for g in self.first.generators) + tuple(self.second.generators)

    def _compute_irreps(self) -> tuple[Irrep, ...]:
        n, m = self.first.order, self.second.order

        def label(group: FiniteGroup, rho: Irrep) -> str:
            return f"({rho.name})" if isinstance(group, DirectProduct) else rho.name

        irreps = []
        for rho in self.first.irreps():
            for sigma in self.second.irreps():
                name = f"{label(self.first, rho)}x{label(self.second, sigma)}"
                d = rho.dim * sigma.dim
                mats = np.einsum("iab,jcd->ijacbd", rho.matrices, sigma.matrices)
                mats = mats.reshape(n * m, d, d)
                k_rho, k_sigma = rho.commutant_dim, sigma.commutant_dim
                if k_rho == 1 or k_sigma == 1:
                    irreps.append(Irrep.from_matrices(name, mats, _TYPE_OF_K[k_rho * k_sigma]))
                elif k_rho == k_sigma == 2:
                    jj = np.kron(complex_structure(rho.matrices), complex_structure(sigma.matrices))
                    # J⊗J is a symmetric involution commuting with rho⊗sigma: eigh sorts
                    # its -1 eigenspace (both complex structures agree) first.
                    _, vecs = np.linalg.eigh(jj)
                    half = d // 2
                    for suffix, basis in (("+", vecs[:, :half]), ("-", vecs[:, half:])):
                        sub = np.einsum("ai,gab,bj->gij", basis, mats, basis)
                        irreps.append(Irrep.from_matrices(name + suffix, sub, "complex"))
                else:
                    basis = split_representation(mats)[0]
                    sub = np.einsum("ai,gab,bj->gij", basis, mats, basis)
                    chi = np.trace(sub, axis1=1, axis2=2)
                    irreps.append(
                        Irrep(name, sub.shape[1], sub, chi, _TYPE_OF_K[commutant_dimension(chi)])
                    )
        return tuple(irreps)
