"""CUDA paths against the CPU (marked ``cuda``; skipped without a CUDA device).

``benchmarks/device_check.py`` runs the same comparisons at full size with timings.
"""

import copy

import numpy as np
import pytest
import torch

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


@pytest.fixture(autouse=True)
def _no_tf32():
    # Full-precision float32 matmuls and convolutions for the comparisons, restored after.
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def test_linear_probe_on_cuda_matches_cpu():
    import probes
    from latentgeo.datasets.planted import planted_latents
    from latentgeo.groups import Dihedral

    Z = planted_latents(Dihedral(3), {"A1": 2, "E1": 3}, 400, noise=0.2).Z
    ref = probes.LinearProbe(n_bootstrap=50).fit(Z)
    got = probes.LinearProbe(n_bootstrap=50, device="cuda").fit(torch.as_tensor(Z, device="cuda"))
    np.testing.assert_allclose(got.rho_, ref.rho_, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(got.r2_, ref.r2_, rtol=1e-10)
    np.testing.assert_allclose(got.null_r2_, ref.null_r2_, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(got.r2_ci_, ref.r2_ci_, rtol=1e-9)


def test_recorder_on_cuda_pinned_and_equal_to_cpu(tmp_path):
    from latentgeo.actions import ImageRotations
    from latentgeo.groups import Cyclic
    from latentgeo.record import LatentRecorder
    from latentgeo.store import open_run

    torch.manual_seed(0)
    base = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.Flatten())
    x = torch.randn(32, 1, 6, 6, generator=torch.Generator().manual_seed(1))
    action = ImageRotations(Cyclic(4))
    blocks, pinned = {}, None
    for where in ("cpu", "cuda"):
        model = copy.deepcopy(base).to(where)
        rec = LatentRecorder(model, ["0"], action, x, tmp_path / f"{where}.zarr")
        for step in range(3):
            rec.record(step)
            with torch.no_grad():  # the next checkpoint differs; the copy must not race it
                model[0].weight.mul_(0.5)
        rec.flush()
        if where == "cuda":
            pinned = [b.is_pinned() for bufs in rec._free_host.values() for b in bufs]
        rec.close()
        r = open_run(tmp_path / f"{where}.zarr")
        blocks[where] = [r.read_block("0", i) for i in range(3)]
    assert pinned and all(pinned)
    for a, b in zip(blocks["cuda"], blocks["cpu"]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_grassmann_distances_on_cuda_match_cpu(rng):
    import latentgeo.geometry as geo

    bases = torch.as_tensor(np.linalg.qr(rng.normal(size=(10, 30, 4)))[0])
    ref = geo.pairwise_distances(bases, "grassmann")
    got = geo.pairwise_distances(bases.cuda(), "grassmann")
    np.testing.assert_allclose(got.cpu().numpy(), ref.numpy(), rtol=1e-10, atol=1e-12)
