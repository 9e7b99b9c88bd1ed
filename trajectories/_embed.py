"""Two-dimensional pictures of trajectories: classical multidimensional scaling."""

from __future__ import annotations

from typing import Any

import numpy as np

from latentgeo._validate import check_int


def classical_mds(D: Any, n_components: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Classical (Torgerson) MDS of a distance matrix.

    Double-centres the squared distances, ``B = -1/2 J D^2 J``, and embeds with the top
    eigenvectors scaled by the square roots of their eigenvalues. When ``D`` holds Euclidean
    distances of points in ``n_components`` dims, they are recovered up to a rigid motion.

    Parameters
    ----------
    D : array of shape (n, n)
        Symmetric distance matrix with zero diagonal.
    n_components : int

    Returns
    -------
    coords : array of shape (n, n_components)
        Columns with non-positive eigenvalues are zero.
    eigenvalues : array of shape (n_components,)
        The leading eigenvalues of ``B`` (the variance each axis carries, times n).
    """
    D = np.asarray(D, dtype=np.float64)
    if D.ndim != 2 or D.shape[0] != D.shape[1]:
        raise ValueError(f"D must be a square (n, n) matrix, got shape {D.shape!r}")
    if not np.all(np.isfinite(D)):
        raise ValueError("D contains NaN or infinite distances; MDS needs finite ones")
    n_components = check_int(n_components, "n_components", minimum=1)
    n = D.shape[0]
    if np.abs(D - D.T).max(initial=0.0) > 1e-8 * max(1.0, np.abs(D).max(initial=0.0)):
        raise ValueError("D must be symmetric")
    D2 = (0.5 * (D + D.T)) ** 2
    J = np.eye(n) - 1.0 / n
    B = -0.5 * J @ D2 @ J
    w, V = np.linalg.eigh(0.5 * (B + B.T))
    order = np.argsort(w)[::-1][:n_components]
    w, V = w[order], V[:, order]
    coords = V * np.sqrt(np.clip(w, 0.0, None))
    # Deterministic orientation: the largest-magnitude coordinate of each axis is positive.
    signs = np.sign(coords[np.abs(coords).argmax(axis=0), np.arange(coords.shape[1])])
    coords = coords * np.where(signs == 0, 1.0, signs)
    if coords.shape[1] < n_components:
        coords = np.pad(coords, ((0, 0), (0, n_components - coords.shape[1])))
        w = np.pad(w, (0, n_components - w.shape[0]))
    return coords, w
