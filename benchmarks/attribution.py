"""Benchmark equivariance attribution and irrep ablation against the forwards they need.

Each estimator is a fixed number of forwards of the user's model plus bookkeeping (hooks,
orbit averages, projections, the protected model-call context).  The reference is those
forwards run bare in the same process: the plain ``model(batch)`` calls under
``torch.no_grad()`` (intervention, ablation) or forward-mode (dual-number) derivatives of
the bare model (Lie derivative), the same number of them on the same batches.  The target is
at most 1.5x.

- intervention: a CNN (4 conv blocks, 16 channels, 32x32 images) under D4, 5 layers:
  ``1 + 5`` forwards of the 8 x n orbit batch;
- Lie derivative: the same CNN along image rotation (bicubic ``grid_sample``), each layer's
  generator the rotation of its feature map: one forward, the derivative of the network along
  the family (double backward through ``grid_sample``), the family's tangent on each feature
  map, and one forward-mode derivative of the rest of the network from each layer;
- ablation: an MLP on modular-addition tokens under ``TokenShift(p)`` (C_p), the first
  hidden layer projected: ``2 + 2 (n_irreps − 1) + 2`` forwards of the p x n orbit batch.

Prints times (best of ``--repeats`` after a warm-up) and ratios.

Run: ``OMP_NUM_THREADS=1 python benchmarks/attribution.py`` (``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _best(ours: Any, ref: Any, repeats: int) -> tuple[float, float]:
    """Best times of ``ours`` and ``ref``, alternated (the machine is shared: a slow spell
    then hits both), after one warm-up call of each."""
    ours(), ref()
    t_ours, t_ref = [], []
    for _ in range(repeats):
        for fn, times in ((ref, t_ref), (ours, t_ours)):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return min(t_ours), min(t_ref)


def _cnn(channels: int) -> torch.nn.Sequential:
    torch.manual_seed(0)
    c = channels
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, c, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(c, c, 3, padding=1, stride=2), torch.nn.ReLU(),
        torch.nn.Conv2d(c, c, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(c, c, 3, padding=1, stride=2), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(c, 10),
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small smoke run")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import torch.autograd.forward_ad as fwAD

    import probes
    from latentgeo.actions import ImageRotations, TokenShift, image_rotation

    n, size, c = (8, 16, 8) if args.quick else (32, 32, 16)
    net = _cnn(c)
    x = torch.randn(n, 1, size, size)
    layers = ["1", "3", "5", "7", "8"]
    action = ImageRotations("D4")
    flat = action.orbit(x).reshape(-1, 1, size, size)

    def bare_forwards() -> None:
        with torch.no_grad():
            for _ in range(1 + len(layers)):
                net(flat)

    t_att, t_ref = _best(
        lambda: probes.equivariance_attribution(net, action, x, layers), bare_forwards, args.repeats
    )
    print(f"intervention, D4, {len(layers)} layers, orbit batch {flat.shape[0]}:")
    print(f"  attribution {t_att * 1e3:8.1f} ms   bare forwards {t_ref * 1e3:8.1f} ms   "
          f"ratio {t_att / t_ref:5.2f}")  # fmt: skip

    fam = image_rotation()
    zero = torch.zeros(())

    one = torch.ones(())

    def bare_jvps() -> None:
        # What the decomposition needs, bare: one forward reading the layers; the derivative
        # of every layer along the family (through grid_sample: double backward); the family's
        # tangent on each layer's feature map; one derivative of the network from each layer.
        hs: list[torch.Tensor] = []
        hooks = [net[int(k)].register_forward_hook(lambda m, i, o: hs.append(o)) for k in layers]
        with torch.no_grad():
            net(x)
        for h in hooks:
            h.remove()
        torch.autograd.functional.jvp(lambda t: net(fam(x, t)), zero, one)
        for k, h in zip(layers, hs):
            v = torch.autograd.functional.jvp(lambda t, h=h: fam(h, t), zero, one)[1]
            rest = net[int(k) + 1 :]
            with fwAD.dual_level():
                fwAD.unpack_dual(rest(fwAD.make_dual(h, v)))

    t_lie, t_ref = _best(
        lambda: probes.equivariance_attribution(net, fam, x, layers), bare_jvps, args.repeats
    )
    print(f"Lie derivative, rotation, {len(layers)} layers, batch {n}:")
    print(f"  attribution {t_lie * 1e3:8.1f} ms   bare derivatives {t_ref * 1e3:8.1f} ms   "
          f"ratio {t_lie / t_ref:5.2f}")  # fmt: skip

    p, n_tok, hidden = (13, 16, 32) if args.quick else (59, 64, 256)
    torch.manual_seed(1)
    mlp = torch.nn.Sequential(
        torch.nn.Embedding(p, hidden), torch.nn.Flatten(), torch.nn.Linear(2 * hidden, hidden),
        torch.nn.ReLU(), torch.nn.Linear(hidden, p),
    )  # fmt: skip
    tokens = torch.randint(0, p, (n_tok, 2))
    labels = (tokens[:, 0] + tokens[:, 1]) % p
    shift = TokenShift(p, position=0)
    orbit_tokens = shift.orbit(tokens)
    orbit_labels = torch.stack([(labels + g) % p for g in range(p)])
    flat_tok = orbit_tokens.reshape(-1, 2)
    n_irreps = len(shift.group.irreps())
    n_forwards = 2 + 2 * (n_irreps - 1) + 2

    def bare_ablation() -> None:
        with torch.no_grad():
            for _ in range(n_forwards):
                mlp(flat_tok)

    loss = torch.nn.functional.cross_entropy
    t_abl, t_ref = _best(
        lambda: probes.irrep_ablation(
            mlp, "2", shift, tokens, orbit_labels, loss, sets={"low": ["E1", "E2"]}
        ),
        bare_ablation,
        args.repeats,
    )
    print(f"irrep ablation, C{p}, {n_irreps} irreps, orbit batch {flat_tok.shape[0]}:")
    print(f"  ablation {t_abl * 1e3:8.1f} ms   bare forwards {t_ref * 1e3:8.1f} ms   "
          f"ratio {t_abl / t_ref:5.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
