"""The two decompositions of the ridge design, and LinearProbe against scikit-learn's Ridge."""

import numpy as np
import pytest
import torch
from sklearn.linear_model import Ridge
from sklearn.metrics import r2_score

import probes._ridge as ridge
from probes import LinearProbe


def _check_design(X, design, rtol):
    Xc = X - X.mean(axis=0)
    U, s, Vt = (t.numpy() for t in (design.U, design.s, design.Vt))
    np.testing.assert_allclose(U.T @ U, np.eye(len(s)), atol=rtol)
    np.testing.assert_allclose((U * s) @ Vt, Xc, atol=rtol * np.abs(Xc).max())
    ref = np.linalg.svd(Xc, compute_uv=False)
    np.testing.assert_allclose(s, ref[: len(s)], rtol=rtol)


def test_gram_path_on_well_conditioned_inputs(monkeypatch, rng):
    X = rng.normal(size=(300, 20)) * np.linspace(0.5, 2.0, 20)
    calls = []
    real = torch.linalg.qr
    monkeypatch.setattr(torch.linalg, "qr", lambda *a, **k: calls.append(1) or real(*a, **k))
    design = ridge.fit_design(torch.as_tensor(X))
    assert calls == []  # the eigendecomposition path, no QR
    _check_design(X, design, 1e-10)
    assert float(design.dropped) == 0.0


def test_qr_path_on_ill_conditioned_and_rank_deficient_inputs(rng):
    # cond(Xc)² = 1e12 > GRAM_CONDITION_LIMIT: the backward-stable path, exact to round-off.
    X = rng.normal(size=(300, 12)) * np.logspace(0, -6, 12)
    design = ridge.fit_design(torch.as_tensor(X))
    _check_design(X, design, 1e-11)
    # A duplicated column: rank 11, the dropped direction carries nothing.
    Xd = np.concatenate([X[:, :11], X[:, :1]], axis=1)
    d2 = ridge.fit_design(torch.as_tensor(Xd))
    assert d2.s.numel() == 11 and float(d2.dropped) < 1e-20


@pytest.mark.parametrize(
    ("force_qr", "test_size", "dtype"),
    # test_size 0.7: the held-out blocks and the null's targets outgrow the spent training
    # buffer they are carved from (probes._dense.Workspace) and get fresh memory; float32:
    # the null runs in the data's own dtype (no conversion while gathering).
    [
        (False, 0.25, torch.float64),
        (True, 0.25, torch.float64),
        (False, 0.7, torch.float64),
        (False, 0.25, torch.float32),
    ],
)
def test_linear_probe_equals_sklearn_ridge(monkeypatch, rng, force_qr, test_size, dtype):
    # With one penalty there is nothing to select: every map, bias, held-out R² and the
    # null fit equal scikit-learn's Ridge on the same split and the same re-pairing.
    if force_qr:
        monkeypatch.setattr(ridge, "GRAM_CONDITION_LIMIT", 0.0)
    G, n, d, alpha = 4, 200, 6, 3.0
    X = rng.normal(size=(n, d)) * np.linspace(0.5, 2.0, d)
    Z = np.stack([X] + [X @ rng.normal(size=(d, d)) + rng.normal(size=(n, d)) for _ in range(3)])
    p = LinearProbe(
        alphas=[alpha],
        n_null=1,
        null="permutation",
        n_bootstrap=0,
        random_state=5,
        test_size=test_size,
        dtype=dtype,
    ).fit(Z)
    # float64: round-off of the float64 fit; float32: of sums over <= 140 x 6 float32 values.
    rtol, atol = (1e-9, 1e-11) if dtype == torch.float64 else (1e-4, 1e-5)
    tr, te = p.train_index_, p.test_index_
    perm = np.random.default_rng(5).permutation(n)  # the probe's first draw (no bootstrap)
    np.testing.assert_array_equal(p.null_permutations_[0], perm)
    for g in range(G):
        ref = Ridge(alpha=alpha).fit(Z[0, tr], Z[g, tr])
        np.testing.assert_allclose(p.rho_[g], ref.coef_, rtol=rtol, atol=atol)
        np.testing.assert_allclose(p.bias_[g], ref.intercept_, rtol=rtol, atol=atol)
        r2 = r2_score(Z[g, te], ref.predict(Z[0, te]), multioutput="variance_weighted")
        np.testing.assert_allclose(p.r2_[g], r2, rtol=rtol / 10, atol=atol)
        null = Ridge(alpha=alpha).fit(Z[0, tr], Z[g, perm[tr]])
        r2n = r2_score(Z[g, perm[te]], null.predict(Z[0, te]), multioutput="variance_weighted")
        # The re-paired fits run in float32 (probes._linear.null_precision): float32
        # round-off of sums over 50 x 6 values, relative ~1e-6 of the R² ratio's terms.
        np.testing.assert_allclose(p.null_r2_[g], r2n, rtol=0, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_gemm_equals_torch_on_strided_views_with_bias(rng, dtype):
    from probes._dense import gemm

    A = torch.as_tensor(rng.normal(size=(70, 30)), dtype=dtype)
    Y = torch.as_tensor(rng.normal(size=(30, 4, 9)), dtype=dtype)
    b = Y[:, 1:].reshape(30, 27)  # a strided view (row stride 36), as the fit passes
    bias = torch.as_tensor(rng.normal(size=(1, 27)), dtype=dtype)
    ref = torch.addmm(bias, A.T.T, b)
    # Products of 30 terms: round-off of order 30 · eps relative to the terms.
    tol = 30 * torch.finfo(dtype).eps * 10
    out = torch.empty(70, 27, dtype=dtype)
    assert gemm(A, b, out=out, bias=bias) is out
    torch.testing.assert_close(out, ref, rtol=tol, atol=tol)
    torch.testing.assert_close(gemm(A[:, :20].T.T, b[:20]), A[:, :20] @ b[:20], rtol=tol, atol=tol)
    # A tensor that needs grad takes torch's path (numpy cannot view it) and keeps its graph.
    g = A.clone().requires_grad_(True)
    assert gemm(g, b).requires_grad


def test_gemm_holds_blas_threads_to_torchs_and_restores_them():
    from threadpoolctl import threadpool_info

    from probes._dense import blas_threads as _blas_threads

    def blas_threads():
        return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]

    before = blas_threads()
    old = torch.get_num_threads()
    try:
        for n in (2, 1):  # both ways, whatever the process's own BLAS setting is
            torch.set_num_threads(n)
            with _blas_threads():
                inside = blas_threads()
            assert inside and all(k == n for k in inside)
            assert blas_threads() == before
    finally:
        torch.set_num_threads(old)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_gram_eigendecomposition_matches_torch(rng, dtype):
    from probes._ridge import _gram_eigh

    Xc = torch.as_tensor(rng.normal(size=(200, 12)) * np.linspace(0.5, 3, 12), dtype=dtype)
    evals, evecs = _gram_eigh(Xc)
    ref = torch.linalg.eigh(Xc.T @ Xc).eigenvalues
    eps = torch.finfo(dtype).eps
    # Eigenvalues to a relative error of order n · eps of the largest (Weyl).
    torch.testing.assert_close(evals, ref, rtol=0, atol=float(200 * eps * ref.max()))
    # The decomposition reconstructs the Gram matrix and its vectors are orthonormal.
    gram = Xc.T @ Xc
    torch.testing.assert_close(
        evecs @ torch.diag(evals) @ evecs.T, gram, rtol=0, atol=float(200 * eps * ref.max())
    )
    torch.testing.assert_close(evecs.T @ evecs, torch.eye(12, dtype=dtype), rtol=0, atol=50 * eps)


def test_gemm_reads_layouts_blas_cannot_take_in_place(rng):
    from probes._dense import _blasable, gemm

    A = torch.as_tensor(rng.normal(size=(40, 60)))
    every_other = A[:, ::2]  # inner stride 2: no unit stride, so BLAS cannot read it in place
    assert not _blasable(every_other).data_ptr() == every_other.data_ptr()
    assert _blasable(A.T).data_ptr() == A.data_ptr()  # a transpose is read in place
    B = torch.as_tensor(rng.normal(size=(30, 7)))
    tol = 30 * torch.finfo(torch.float64).eps * 10
    torch.testing.assert_close(gemm(every_other, B), every_other @ B, rtol=tol, atol=tol)
