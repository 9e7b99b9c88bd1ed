"""Haar-random elements of a continuous group's orbit as a sample: leave-one-element-out fits.

The harmonic fit (:func:`latentgeo.groups._harmonic.harmonic_energies`) at Haar-random
elements estimates Haar integrals by Monte Carlo over the elements, so its shares vary with the
draw of elements.  Every pooled energy of the fit is a linear function of the element Gram
matrix pooled over samples and units (:func:`pooled_energies`); the fit without one element
is then a rank-one downdate of ``p × p`` moments (:class:`ElementJackknife`), and
``OrbitEnergies.intervals`` adds the delete-one-element jackknife variance of the shares
(:func:`latentgeo._bootstrap.add_jackknife_variance`) to the bootstrap over probe samples.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["ElementJackknife", "NotRecorded", "pooled_energies"]


def _energies_from_moments(
    Ai: np.ndarray,
    W: np.ndarray,
    N: np.ndarray,
    tr_g: np.ndarray,
    tr_m: np.ndarray,
    m: int,
    n: int,
    owner: np.ndarray,
) -> np.ndarray:
    """Pooled energies from the fit's moments, batched over a leading axis.

    ``Ai = (BᵀB)⁻¹``, ``W = Bᵀ G B``, ``N = Bᵀ M B`` (shape (..., p, p)), ``tr_g = tr G``,
    ``tr_m = tr M`` (shape (...)), on ``m`` elements; see :func:`pooled_energies`.
    """
    n_irreps = int(owner.max()) + 1
    onehot = np.zeros((len(owner), n_irreps))
    onehot[np.arange(len(owner)), owner] = 1.0
    AW, AN = Ai @ W, Ai @ N
    coef = np.einsum("...ij,...ji->...i", AW, Ai)  # diag(P G Pᵀ) = diag(Ai W Ai)
    fit = coef @ onehot
    const = int(np.flatnonzero(owner == 0)[0])
    inv = coef[..., const] - n * np.einsum("...j,...j->...", AN[..., const, :], Ai[..., :, const])
    rss = tr_g - np.einsum("...ii->...", AW)  # tr((I − H) G)
    p = len(owner)
    if m <= p:  # no residual degrees of freedom: not debiased (as harmonic_energies)
        fit[..., 0] = inv
        return np.concatenate([fit, (rss / m)[..., None]], axis=-1)
    sigma2 = rss / (m - p)
    gain = np.einsum("...ii->...i", Ai) @ onehot  # diag(P Pᵀ) per irrep
    rss_centred = rss - n * (tr_m - np.einsum("...ii->...", AN))
    fit = fit - sigma2[..., None] * gain
    fit[..., 0] = inv - rss_centred / (m - p) * gain[..., 0]
    return np.concatenate([fit, sigma2[..., None]], axis=-1)


def pooled_energies(
    gram: np.ndarray, mean_gram: np.ndarray, n: int, B: np.ndarray, owner: np.ndarray
) -> np.ndarray:
    """The pooled (summed over samples) energies :func:`harmonic_energies` gives, from Grams.

    Every pooled energy of the fit is a quadratic form of the orbits, so it is a linear
    function of the element Gram matrix ``G = sum_i Y_i Y_iᵀ`` (over samples ``i`` and units)
    and of the mean orbit's ``M = Ȳ Ȳᵀ``: with ``P = B⁺ = (BᵀB)⁻¹Bᵀ``, the hat matrix
    ``H = B P``, the fitted coefficients' energies are ``diag(P G Pᵀ)``, the residual
    ``tr((I − H) G)``, the Haar-centred invariant energy ``(P G Pᵀ)_00 − n (P M Pᵀ)_00``,
    and that of the residual of the orbit minus the mean orbit
    ``tr((I − H) G) − n tr((I − H) M)``; all are functions of the ``p × p`` moments
    ``BᵀB``, ``Bᵀ G B``, ``Bᵀ M B`` and the traces.

    Parameters
    ----------
    gram, mean_gram : float64 arrays of shape (m, m)
    n : int
        Number of samples.
    B : float64 array of shape (m, p)
        :func:`harmonic_basis` at the elements, of full column rank.
    owner : int64 array of shape (p,)

    Returns
    -------
    float64 array of shape (n_irreps + 1,)
        Irreps up to the degree, then ``"residual"`` (as ``energies.sum(0)``; debiased when
        ``m > p``).
    """
    Ai = np.linalg.inv(B.T @ B)
    return _energies_from_moments(
        Ai,
        B.T @ gram @ B,
        B.T @ mean_gram @ B,
        np.trace(gram),
        np.trace(mean_gram),
        B.shape[0],
        n,
        owner,
    )


class NotRecorded:
    """Haar-random elements fitted with ``element_sample=False``: no interval over them."""

    def leave_one_out(self) -> tuple[np.ndarray | None, str | None]:
        return None, (
            "the energies were computed with element_sample=False (point estimates only), "
            "so the spread over the draw of Haar-random elements is unknown; recompute them "
            "with element_sample=True"
        )


#: Leave-one-out fits computed at a time (bounds the (block, p, p) moment arrays).
_LOO_BLOCK = 64


@dataclass(frozen=True, eq=False)
class ElementJackknife:
    """Haar-random elements of a continuous group's fit as a sample: leave-one-out energies.

    Holds the element Gram matrices pooled over samples and units (``gram``, ``mean_gram``:
    :func:`pooled_energies`), the sample count, the basis at the elements and its irrep
    owners; :meth:`leave_one_out` refits without each element on these (rank-one downdates
    of the ``p × p`` moments, ``O(m p³)``), once, when an interval is asked for.
    """

    gram: np.ndarray
    mean_gram: np.ndarray
    n: int
    B: np.ndarray
    owner: np.ndarray
    _result: list[tuple[np.ndarray | None, str | None]] = field(
        default_factory=list, init=False, repr=False
    )

    def leave_one_out(self) -> tuple[np.ndarray | None, str | None]:
        """Pooled energies with each element left out in turn, at the same degree.

        The jackknife needs every leave-one-out fit to be the same estimator as the full
        one: a basis of full column rank ``p`` and residual degrees of freedom
        (``m − 1 > p``) to debias with.

        Returns
        -------
        replicates : float64 array of shape (m, n_irreps + 1) or None
        note : str or None
            Why there are no replicates (then ``replicates`` is None).
        """
        if not self._result:  # computed once per fit
            self._result.append(self._leave_one_out())
        return self._result[0]

    def _leave_one_out(self) -> tuple[np.ndarray | None, str | None]:
        B, G, M = self.B, self.gram, self.mean_gram
        m, p = B.shape
        if m - 1 <= p:
            return None, (
                f"{m} Haar-random elements: the shares vary with the draw of elements, and "
                f"their spread is estimated by leaving one element out, which needs more than "
                f"{p + 1} elements for this fit ({p} basis functions and a residual degree of "
                f"freedom to debias with); record at least {p + 2} elements"
            )
        A = B.T @ B
        s = np.linalg.svd(A, compute_uv=False)
        if s[-1] <= 1e-10 * s[0]:
            return None, (
                f"the fit's {p} basis functions are linearly dependent on the {m} sampled "
                "elements (a component of the group not sampled), so the spread over the "
                "draw of elements cannot be estimated; sample every component"
            )
        Ai = np.linalg.inv(A)
        lev = np.einsum("kj,ji,ki->k", B, Ai, B)  # leverages h_kk
        if lev.max() > 1.0 - 1e-8:
            k = int(np.argmax(lev))
            return None, (
                f"leaving out sampled element {k} of {m} makes the fit's {p} basis functions "
                "linearly dependent (e.g. the only element of a component of the group), so "
                "the spread over the draw of elements cannot be estimated; sample more "
                "elements (every component at least twice)"
            )
        GB, MB = G @ B, M @ B
        W, N = B.T @ GB, B.T @ MB
        rows = []
        for k0 in range(0, m, _LOO_BLOCK):
            b = B[k0 : k0 + _LOO_BLOCK]  # (c, p): the left-out elements' basis rows
            v = b @ Ai  # Sherman–Morrison: (A − b bᵀ)⁻¹ = Ai + v vᵀ / (1 − h)
            Aik = Ai + v[:, :, None] * v[:, None, :] / (1.0 - lev[k0 : k0 + len(b), None, None])
            gk, mk = np.diagonal(G)[k0 : k0 + len(b)], np.diagonal(M)[k0 : k0 + len(b)]
            rg, rm = GB[k0 : k0 + len(b)], MB[k0 : k0 + len(b)]
            outer = b[:, :, None] * b[:, None, :]
            Wk = W - b[:, :, None] * rg[:, None, :] - rg[:, :, None] * b[:, None, :]
            Wk = Wk + gk[:, None, None] * outer
            Nk = N - b[:, :, None] * rm[:, None, :] - rm[:, :, None] * b[:, None, :]
            Nk = Nk + mk[:, None, None] * outer
            rows.append(
                _energies_from_moments(
                    Aik, Wk, Nk, np.trace(G) - gk, np.trace(M) - mk, m - 1, self.n, self.owner
                )
            )
        return np.concatenate(rows), None
