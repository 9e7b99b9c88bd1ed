"""Reference tests against e3nn: Wigner-D agreement, and spectra of e3nn layers with known
irreps (o3.Linear, spherical harmonics, tensor products) under SO(3) and O(3).

e3nn 0.6 evaluates in torch's default dtype; these tests set float64 inside a fixture and
restore it (the package never changes global torch state)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose

import probes
from latentgeo.actions import PointCloudRotations
from latentgeo.groups import O3, SO3

o3 = pytest.importorskip("e3nn.o3")


@pytest.fixture
def float64_default():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def _intertwiner(A, B):
    """Q with A(g) Q = Q B(g) for all g: the null vector of the stacked linear system."""
    d = A.shape[-1]
    eye = np.eye(d)
    # vec(A Q - Q B) = (I ⊗ A - Bᵀ ⊗ I) vec(Q) with column-major vec.
    M = np.concatenate([np.kron(eye, a) - np.kron(b.T, eye) for a, b in zip(A, B)])
    _, s, vt = np.linalg.svd(M)
    Q = vt[-1].reshape(d, d, order="F")
    return Q * np.sqrt(d) / np.linalg.norm(Q), s


@pytest.mark.parametrize(
    ("G", "names"),
    [(SO3(), ["0", "1", "2", "3", "4"]), (O3(), ["0e", "0o", "1o", "1e", "2e", "2o", "3o"])],
    ids=repr,
)
def test_wigner_d_matches_e3nn_up_to_a_fixed_basis(float64_default, G, names):
    fit, held = G.sample(12, 0), G.sample(200, 1)
    for name in names:
        ours = G.irrep(name)
        e3 = name + "e" if name.isdigit() else name  # SO(3) degree l is e3nn's "le"
        theirs = o3.Irreps(e3)

        def D(g, theirs=theirs):
            return theirs.D_from_matrix(torch.as_tensor(g)).numpy()

        Q, s = _intertwiner(ours(fit), D(fit))
        d = ours.dim
        assert s[-1] < 1e-10 and (d == 1 or s[-2] > 1e-3)  # a unique intertwiner
        assert_allclose(Q.T @ Q, np.eye(d), atol=1e-10)  # orthogonal
        # Constant across elements: the same Q intertwines held-out elements.
        assert_allclose(ours(held) @ Q, Q @ D(held), atol=1e-10)
        assert_allclose(ours.character_at(held), np.trace(D(held), axis1=1, axis2=2), atol=1e-10)


class _Model(torch.nn.Module):
    """Point cloud -> e3nn features with known irreps, one attribute per layer."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)  # e3nn initialises its weights from torch's global generator
        self.sh_irreps = o3.Irreps("0e+1o+2e+3o")
        # Three weightings of the harmonics: independent vectors, so that their cross and
        # triple products do not vanish.
        self.lin = o3.Linear(self.sh_irreps * 3, "2x0e+3x1o+1x2e+1x3o")
        self.cross = o3.FullyConnectedTensorProduct("2x1o", "2x1o", "1e")  # pseudovector
        self.triple = o3.FullyConnectedTensorProduct("1e", "3x1o", "0o")  # pseudoscalar

    def forward(self, x):
        r = x - x.mean(dim=-2, keepdim=True)
        sh = o3.spherical_harmonics(self.sh_irreps, r, normalize=True, normalization="norm")
        radius = torch.linalg.vector_norm(r, dim=-1, keepdim=True)  # invariant weights
        feats = torch.cat([(radius**k * sh).mean(dim=-2) for k in (0, 2, 4)], dim=-1)
        lin = self.lin(feats)
        vec = lin[:, 2:11]  # the 3x1o block
        pseudo = self.cross(vec[:, :6], vec[:, :6])
        return {"lin": lin, "pseudo": pseudo, "pseudoscalar": self.triple(pseudo, vec)}


IRREPS = {"lin": "2x0e+3x1o+1x2e+1x3o", "pseudo": "1e", "pseudoscalar": "0o"}


def _expected_shares(z, irreps, G):
    """Shares from e3nn's own outputs at the identity: an equivariant block's orbit has Haar
    energy |z|² per sample (Schur); the 0e block's is its spread over samples."""
    shares: dict[str, float] = {}
    for (_mul, ir), sl in zip(o3.Irreps(irreps), o3.Irreps(irreps).slices()):
        block = z[:, sl]
        name = f"{ir.l}{'e' if ir.p == 1 else 'o'}"
        if G == SO3():
            name = str(ir.l)
        e = ((block - block.mean(0)) ** 2).sum() if name in ("0", "0e") else (block**2).sum()
        shares[name] = shares.get(name, 0.0) + float(e)
    total = sum(shares.values())
    return {k: v / total for k, v in shares.items()}


@pytest.mark.parametrize("G", [SO3(), O3()], ids=repr)
def test_e3nn_layers_spectra_and_probes(float64_default, G):
    model = _Model()
    x = torch.randn(48, 6, 3, generator=torch.Generator().manual_seed(2))
    act = PointCloudRotations(G, n_elements=512, seed=3)
    orbit = act.orbit(x)  # (512, 48, 6, 3)
    with torch.no_grad():
        out = model(orbit.reshape(-1, 6, 3))
        at_identity = model(x)
    for layer, irreps in IRREPS.items():
        Z = out[layer].reshape(512, 48, -1).numpy()
        spec = probes.orbit_spectrum(Z, G, act.element_values, max_degree=3)
        expected = _expected_shares(at_identity[layer].numpy(), irreps, G)
        for name in spec.irrep.values:
            assert_allclose(
                float(spec.sel(irrep=name)),
                expected.get(name, 0.0),
                atol=1e-10,
                err_msg=f"{layer} {name}",
            )
        if G == O3():
            assert set(expected) == set(o3_names(irreps))
        # Equivariant features: held-out linear-probe R² ≈ 1 for every sampled element.
        if Z.shape[-1] > 1:
            lin = probes.LinearProbe(n_null=0, n_bootstrap=0).fit(Z)
            assert float(np.min(lin.r2_)) > 1 - 1e-8, layer
    # O(3) sees parity: the pseudoscalar is all "0o", which SO(3) calls invariant.
    Zp = out["pseudoscalar"].reshape(512, 48, -1).numpy()
    inv = probes.invariance(Zp, G, act.element_values, max_degree=3)
    assert_allclose(inv, 0.0 if G == O3() else 1.0, atol=1e-10)


def o3_names(irreps):
    return {f"{ir.l}{'e' if ir.p == 1 else 'o'}" for _, ir in o3.Irreps(irreps)}
