"""The chance level of LinearProbe: the closed-form expectation over re-pairings.

The closed form (``probes._ridge.expected_null_r2``) claims to be the expectation of the
re-paired fit's held-out error over uniformly random re-pairings.  On a handful of samples
every re-pairing can be enumerated, so the claim is checked exactly, against a plain numpy
ridge written out here; at research sizes it is checked against the mean of many re-paired
fits, with the penalty chosen on each.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from probes import LinearProbe
from probes._ridge import expected_null_r2, expected_scores, fit_design, select_alpha


def _ridge_predict(X_tr, Y_tr, X_te, alpha):
    """Ridge with an unpenalised intercept, from the normal equations."""
    xm, ym = X_tr.mean(0), Y_tr.mean(0)
    Xc = X_tr - xm
    W = np.linalg.solve(Xc.T @ Xc + alpha * np.eye(X_tr.shape[1]), Xc.T @ (Y_tr - ym))
    return ym + (X_te - xm) @ W


@pytest.fixture
def tiny():
    rng = np.random.default_rng(3)
    n, d, d_out = 7, 2, 3
    X = rng.normal(size=(n, d)) * [1.0, 0.3] + 2.0
    Y = rng.standard_t(3, size=(n, d_out)) + 5.0  # heavy-tailed, off-centre targets
    tr, te = np.arange(4), np.arange(4, n)
    perms = np.array(list(itertools.permutations(range(n))))  # all 5040 re-pairings
    return X, Y, tr, te, perms


@pytest.mark.parametrize("alpha", [0.05, 1.0, 30.0])
def test_closed_form_is_the_exact_expectation_over_every_re_pairing(tiny, alpha):
    X, Y, tr, te, perms = tiny
    sse = sst = 0.0
    for perm in perms:
        Yp = Y[perm]
        pred = _ridge_predict(X[tr], Yp[tr], X[te], alpha)
        sse += ((Yp[te] - pred) ** 2).sum()
        sst += ((Yp[te] - Yp[te].mean(0)) ** 2).sum()
    expected = 1.0 - sse / sst  # ratio of the two exact expectations
    design = fit_design(torch.as_tensor(X[tr]))
    got = expected_null_r2(
        design, torch.as_tensor(X[te]), torch.tensor([alpha], dtype=torch.float64), "gcv", len(X)
    )
    # Both are float64 sums of a few thousand O(10) terms: agreement to round-off.
    assert float(got) == pytest.approx(expected, rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("criterion", ["gcv", "loo"])
def test_expected_criterion_is_the_mean_criterion_over_every_re_pairing(tiny, criterion):
    X, Y, tr, _, perms = tiny
    design = fit_design(torch.as_tensor(X[tr]))
    alphas = torch.logspace(-2, 2, 9, dtype=torch.float64)
    # Every re-pairing's training targets, batched as "elements" of one select_alpha call.
    Yp = torch.as_tensor(Y[perms[:, tr]])  # (n_perms, n_train, d_out)
    Yc = Yp - Yp.mean(dim=1, keepdim=True)
    B = torch.einsum("nr,gnd->grd", design.U, Yc)
    _, scores = select_alpha(design, Yc, B, alphas, criterion)
    tau = float(((Y - Y.mean(0)) ** 2).sum() / (len(Y) - 1))
    scale = tau if criterion == "gcv" else tau / Y.shape[1]
    np.testing.assert_allclose(
        scores.mean(dim=0).numpy(),
        scale * expected_scores(design, alphas, criterion).numpy(),
        rtol=1e-10,
    )


@pytest.mark.parametrize("criterion", ["gcv", "loo"])
def test_expected_null_matches_the_mean_of_many_re_paired_fits(rng, criterion):
    n, d = 256, 24
    X = rng.normal(size=(n, d)) * np.linspace(0.3, 2.0, d) + 1.0
    Z = np.stack([X] + [X @ rng.normal(size=(d, d)) + rng.normal(size=(n, d)) for _ in range(2)])
    common = dict(n_bootstrap=0, criterion=criterion, random_state=0)
    closed = LinearProbe(**common).fit(Z).null_r2_
    many = LinearProbe(n_null=120, null="permutation", **common).fit(Z).null_r2_samples_
    # The closed form is one number for every element (the targets' variance cancels).
    assert np.ptp(closed) == 0.0
    mean, se = many.mean(axis=0), many.std(axis=0, ddof=1) / np.sqrt(len(many))
    # 120 fits: the mean's standard error is measured; 4 se leaves a 6e-5 two-sided false
    # alarm per element under normality.  What the closed form omits (the spread of the chosen
    # penalty, and E[ratio] vs ratio of E) is of order 1/n_test and far below 4 se here.
    assert np.all(np.abs(closed - mean) <= 4 * se)
    # And it is a chance level: just below 0 (a ridge fit to unrelated targets adds noise).
    assert np.all((-0.2 < closed) & (closed < 0.0))


def test_expected_null_of_constant_targets_is_the_fit_itself(rng):
    X = rng.normal(size=(120, 4))
    Z = np.stack([X, -X, np.full_like(X, 0.7)])
    probe = LinearProbe(n_bootstrap=0).fit(Z)
    assert probe.null_r2_[2] == probe.r2_[2]
    assert probe.null_r2_[1] == probe.null_r2_[0] != probe.r2_[1]


def test_null_choice_is_validated(rng):
    Z = rng.normal(size=(2, 40, 3))
    with pytest.raises(ValueError, match="null"):
        LinearProbe(null="analytic").fit(Z)
    # n_null=0 skips either null.
    for null in ("expected", "permutation"):
        p = LinearProbe(n_null=0, null=null, n_bootstrap=0).fit(Z)
        assert np.isnan(p.null_r2_).all() and p.null_r2_samples_.shape == (0, 2)
