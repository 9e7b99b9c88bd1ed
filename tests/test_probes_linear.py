"""LinearProbe: agreement with scikit-learn, held-out honesty, nulls, dtypes, bad input."""

import numpy as np
import pytest
import torch
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LinearRegression, RidgeCV
from sklearn.metrics import r2_score

from probes import LinearProbe
from probes._ridge import fit_design, select_alpha


def _orbit(rng, G, n, d, noise):
    """Random affine maps of random inputs, with per-element noise levels."""
    X = rng.normal(size=(n, d)) * rng.uniform(0.2, 3.0, size=d)
    Z = [X]
    for g in range(1, G):
        A = rng.normal(size=(d, d)) / np.sqrt(d)
        Z.append(X @ A.T + rng.normal(size=d) + noise[g] * rng.normal(size=(n, d)))
    return np.stack(Z)


@pytest.mark.parametrize(("n", "d"), [(160, 12), (60, 90)])
def test_loo_matches_sklearn_ridgecv(rng, n, d):
    # criterion="loo" is the efficient leave-one-out that RidgeCV calls its gcv mode: same
    # grid, same choice (first minimum), same held-out R², in both n > d and n < d regimes.
    # The identity element (targets == inputs) has a criterion at round-off level for every
    # small penalty, so its argmin is decided by round-off: only its R² is compared.
    Z = _orbit(rng, 5, n, d, noise=[0, 0.1, 0.5, 1.5, 4.0])
    probe = LinearProbe(criterion="loo", n_null=0, n_bootstrap=0).fit(Z)
    tr, te = probe.train_index_, probe.test_index_
    for g in range(Z.shape[0]):
        ref = RidgeCV(alphas=probe.alphas_).fit(Z[0, tr], Z[g, tr])
        r2 = r2_score(Z[g, te], ref.predict(Z[0, te]), multioutput="variance_weighted")
        np.testing.assert_allclose(probe.r2_[g], r2, rtol=0, atol=1e-6)
        if g == 0:
            continue
        assert ref.alpha_ == probe.alpha_[g]
        np.testing.assert_allclose(probe.rho_[g], ref.coef_, rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(probe.bias_[g], ref.intercept_, rtol=1e-6, atol=1e-8)


def test_gcv_choice_agrees_with_ridgecv_when_leverage_is_uniform(rng):
    # Golub's GCV replaces each leverage h_ii by their mean tr(H)/n; with n >> d and a
    # Gaussian design the leverages are nearly uniform, so the default criterion picks the
    # same grid point as RidgeCV's leave-one-out, and the held-out R² agrees to 1e-6.
    Z = _orbit(rng, 5, 2000, 10, noise=[0, 0.3, 1.0, 2.0, 4.0])
    probe = LinearProbe(n_null=0, n_bootstrap=0).fit(Z)
    tr, te = probe.train_index_, probe.test_index_
    for g in range(1, 5):
        ref = RidgeCV(alphas=probe.alphas_).fit(Z[0, tr], Z[g, tr])
        assert ref.alpha_ == probe.alpha_[g]
        r2 = r2_score(Z[g, te], ref.predict(Z[0, te]), multioutput="variance_weighted")
        np.testing.assert_allclose(probe.r2_[g], r2, rtol=0, atol=1e-6)


def test_gcv_matches_definition(rng):
    # GCV(α) = n RSS(α) / (n − tr H(α))² with H the hat matrix of ridge with an unpenalised
    # intercept, computed here the slow way from the explicit matrix.
    n, d = 40, 7
    X = rng.normal(size=(n, d))
    Y = rng.normal(size=(3, n, d)) + X @ rng.normal(size=(d, d))
    alphas = np.logspace(-3, 3, 9)
    design = fit_design(torch.as_tensor(X))
    Yc = torch.as_tensor(Y - Y.mean(axis=1, keepdims=True))
    B = torch.einsum("nr,gnd->grd", design.U, Yc)
    _, scores = select_alpha(design, Yc, B, torch.as_tensor(alphas), "gcv")
    Xc = X - X.mean(axis=0)
    for a, alpha in enumerate(alphas):
        H = np.full((n, n), 1.0 / n) + Xc @ np.linalg.solve(Xc.T @ Xc + alpha * np.eye(d), Xc.T)
        for g in range(3):
            resid = (np.eye(n) - H) @ (Y[g] - Y[g].mean(axis=0))
            gcv = n * (resid**2).sum() / (n - np.trace(H)) ** 2
            np.testing.assert_allclose(scores[g, a].item(), gcv, rtol=1e-10)


def test_r2_is_variance_weighted_sklearn_on_same_split(rng):
    Z = _orbit(rng, 3, 120, 6, noise=[0, 0.3, 1.0])
    probe = LinearProbe(n_null=0, n_bootstrap=0).fit(Z)
    pred = probe.predict(Z[:, probe.test_index_])
    for g in range(3):
        ref = r2_score(Z[g, probe.test_index_], pred[g], multioutput="variance_weighted")
        np.testing.assert_allclose(probe.r2_[g], ref, rtol=0, atol=1e-12)
    held_out = Z[:, probe.test_index_]
    np.testing.assert_allclose(probe.score_elements(held_out), probe.r2_, rtol=0, atol=1e-12)
    # score: one float, the mean over the non-identity elements (what model selection ranks).
    score = probe.score(held_out)
    assert isinstance(score, float)
    np.testing.assert_allclose(score, probe.r2_[1:].mean(), rtol=0, atol=1e-12)


def test_no_in_sample_fit_when_units_exceed_samples(rng):
    # Unrelated latents with d >= n: least squares interpolates the training set perfectly,
    # but the held-out R² that the probe reports stays at chance.
    n, d = 60, 80
    Z = rng.normal(size=(4, n, d))
    probe = LinearProbe(n_null=2, n_bootstrap=0).fit(Z)
    tr = probe.train_index_
    for g in range(1, 4):
        in_sample = LinearRegression().fit(Z[0, tr], Z[g, tr])
        pred = in_sample.predict(Z[0, tr])
        assert r2_score(Z[g, tr], pred, multioutput="variance_weighted") > 1 - 1e-8
        assert probe.r2_[g] < 0.05
    assert np.all(probe.null_r2_ < 0.05)


def test_null_is_chance_and_excess_is_signal(rng):
    Z = _orbit(rng, 3, 400, 5, noise=[0, 0.0, 0.0])
    probe = LinearProbe(n_null=3, null="permutation", n_bootstrap=100).fit(Z)
    assert np.all(probe.r2_ > 1 - 1e-8)
    assert probe.null_r2_samples_.shape == (3, 3)
    # Re-paired samples carry no linear relation: the null sits at (or just below) zero.
    assert np.all(np.abs(probe.null_r2_) < 0.05)
    np.testing.assert_allclose(probe.excess_r2_, probe.r2_ - probe.null_r2_)


def test_bootstrap_interval_brackets_estimate(rng):
    Z = _orbit(rng, 4, 300, 6, noise=[0, 0.5, 1.0, 2.0])
    probe = LinearProbe(n_null=0, n_bootstrap=300).fit(Z)
    lo, hi = probe.r2_ci_[:, 0], probe.r2_ci_[:, 1]
    assert np.all(lo <= hi)
    assert np.all(lo[1:] < probe.r2_[1:]) and np.all(probe.r2_[1:] < hi[1:])
    # Noisier elements are predicted worse, and the intervals say so.
    assert hi[3] < lo[1]


def test_float32_agrees_with_float64(rng):
    Z = _orbit(rng, 4, 300, 8, noise=[0, 0.2, 0.5, 1.0]).astype(np.float32)
    p64 = LinearProbe(n_null=1, n_bootstrap=0).fit(Z)
    p32 = LinearProbe(n_null=1, n_bootstrap=0, dtype=torch.float32).fit(Z)
    np.testing.assert_array_equal(p32.alpha_ > 0, True)
    np.testing.assert_allclose(p32.r2_, p64.r2_, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(p32.null_r2_, p64.null_r2_, rtol=1e-4, atol=1e-4)


def test_torch_input_and_device(rng):
    Z = _orbit(rng, 3, 100, 4, noise=[0, 0.1, 0.2])
    a = LinearProbe(n_null=0, n_bootstrap=0).fit(Z)
    b = LinearProbe(n_null=0, n_bootstrap=0, device="cpu").fit(torch.as_tensor(Z))
    np.testing.assert_allclose(a.rho_, b.rho_, rtol=1e-12, atol=1e-12)


def test_seeded_and_global_rng_untouched(rng):
    Z = _orbit(rng, 3, 100, 4, noise=[0, 0.5, 0.5])
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    np_state = np.random.get_state()[1].copy()  # noqa: NPY002 (checking the legacy global)
    a = LinearProbe(random_state=7).fit(Z)
    b = LinearProbe(random_state=7).fit(Z)
    np.testing.assert_array_equal(a.r2_ci_, b.r2_ci_)
    np.testing.assert_array_equal(a.null_r2_, b.null_r2_)
    assert torch.equal(state, torch.random.get_rng_state())
    np.testing.assert_array_equal(np_state, np.random.get_state()[1])  # noqa: NPY002
    assert torch.get_default_dtype() == torch.float32


def test_bad_input(rng):
    Z = rng.normal(size=(3, 50, 4))
    with pytest.raises(ValueError, match="shape"):
        LinearProbe().fit(Z[0])
    bad = Z.copy()
    bad[2, 5, 1] = np.nan
    bad[1, 0, 0] = np.inf
    with pytest.raises(ValueError, match=r"2 non-finite values .* element 1"):
        LinearProbe().fit(bad)
    with pytest.raises(ValueError, match="cannot split 3 samples"):
        LinearProbe().fit(Z[:, :3])
    with pytest.raises(ValueError, match="alphas"):
        LinearProbe(alphas=[1.0, -1.0]).fit(Z)
    with pytest.raises(ValueError, match="criterion"):
        LinearProbe(criterion="kfold").fit(Z)
    with pytest.raises(TypeError, match="real numbers"):
        LinearProbe().fit(Z.astype(complex))
    probe = LinearProbe(n_null=0, n_bootstrap=0).fit(Z)
    with pytest.raises(ValueError, match="fitted on 3"):
        probe.score(Z[:2])
    with pytest.raises(NotFittedError, match="not fitted"):
        LinearProbe().score(Z)


def test_rho_is_formed_from_the_fits_factors_once_and_survives_pickling(rng):
    import pickle

    Z = _orbit(rng, 3, 150, 4, noise=[0, 0.1, 0.3])
    probe = LinearProbe(n_null=0, n_bootstrap=0)
    assert not hasattr(probe, "rho_")  # unfitted: an AttributeError, like every fitted name
    probe.fit(Z)
    twin = pickle.loads(pickle.dumps(probe))  # pickled before rho_ was ever read
    rho = probe.rho_
    assert rho.shape == (3, 4, 4) and probe.rho_ is rho  # formed once, then kept
    np.testing.assert_array_equal(twin.rho_, rho)
    # The factors reproduce the predictions the fit scored: predict() goes through rho_.
    te = probe.test_index_
    pred = probe.predict(Z[:, te])
    for g in range(3):
        r2 = r2_score(Z[g, te], pred[g], multioutput="variance_weighted")
        assert r2 == pytest.approx(probe.r2_[g], abs=1e-12)
    # A refit forms the new fit's maps, not the old ones.
    probe.fit(Z[:, ::-1].copy())
    assert not np.array_equal(probe.rho_, rho)
