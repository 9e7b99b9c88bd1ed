"""Group-action probes on latents: equivariance, invariance, irrep spectra, null baselines.

Input for one (layer, step) is ``Z`` of shape ``(n_elements, n_samples, n_units)`` with
``Z[identity]`` the latents of the untransformed probe inputs (numpy or torch; computed in
torch, float64 by default, on any device).

- :class:`LinearProbe` — ridge maps ``z(g·x) ≈ rho(g) z(x) + b(g)`` for all elements at once
  (one shared SVD, penalty by closed-form GCV/LOO), held-out R², re-paired null, bootstrap CI;
- :func:`invariance`, :func:`orbit_spectrum` — fit-free invariant share and irrep spectrum;
- :func:`homomorphism_error`, :class:`GroupConsistentProbe` / :func:`fit_from_generators`;
- :class:`OrthogonalProbe` — whitened Procrustes, ``rho(g) ∈ O(k)``;
- :func:`character_multiplicities` — soft irrep multiplicities of fitted maps;
- :class:`GeneratorProbe`, :func:`lie_derivative` — SO(2) generators and Lie derivatives;
- :func:`subgroup_scan` — invariance and equivariance under every subgroup, from one orbit;
- :class:`LieAlgebraProbe`, :func:`bracket_law` — one generator per Lie-algebra basis element
  (so(3): ``L_x, L_y, L_z``) and the bracket law ``[L_x, L_y] = L_z`` they must obey;
- :func:`family_lie_derivative`, :func:`so3_lie_derivative`, :func:`family_latents` — exact
  (autograd) Lie derivatives along SO(3) generators and any one-parameter family;
- :func:`run` — all of it over a run store, streamed one (layer, step) at a time, cached;
  :func:`register_probe` / :func:`register_dim` add a kind of result to it (a
  :class:`ProbeKind` computed on each :class:`Block`; or the ``latentgeo.probes`` entry-point
  group of an installed package).
- :class:`LiveProbes` — invariance, spectrum and R² at every recorded step, while training
  (``LatentRecorder(..., live=LiveProbes([...]))``).
- :func:`equivariance_attribution` — each layer's share of the end-to-end equivariance error
  (orbit-average intervention, or the layer-wise Lie-derivative decomposition);
- :func:`irrep_ablation`, :func:`isotypic_components` — restricted and excluded loss per irrep;
- :func:`discover_symmetry` — the largest invariant / equivariant subalgebra (or subgroup);
- :func:`attribution_over_training`, :func:`ablation_over_training`,
  :func:`discovery_over_training` — the three over saved checkpoints, cached in a run store
  (:func:`stack_steps`: the layout, also written by the training callbacks' ``analyses=``).
"""

from probes import _builtin_kinds  # noqa: F401  (the built-in probe kinds register themselves)
from probes._ablation import irrep_ablation, isotypic_components
from probes._attribution import equivariance_attribution
from probes._characters import character_multiplicities
from probes._discovery import DiscoveredSymmetry, SymmetryDiscovery, discover_symmetry
from probes._homomorphism import (
    GroupConsistentProbe,
    HomomorphismDefect,
    fit_from_generators,
    homomorphism_error,
)
from probes._kinds import Block, ProbeKind, register_dim, register_probe
from probes._lie import GeneratorProbe
from probes._lie_algebra import (
    BracketLawCheck,
    LieAlgebraProbe,
    bracket_law,
    one_parameter_elements,
)
from probes._lie_derivative import (
    family_latents,
    family_lie_derivative,
    lie_derivative,
    so3_lie_derivative,
)
from probes._linear import LinearProbe
from probes._live import LiveProbes
from probes._orthogonal import OrthogonalProbe
from probes._over_training import (
    ablation_over_training,
    attribution_over_training,
    discovery_over_training,
    stack_steps,
)
from probes._runner import run
from probes._spectrum import invariance, orbit_spectrum
from probes._subgroups import respected_subgroups, subgroup_scan

__all__ = [
    "Block",
    "BracketLawCheck",
    "DiscoveredSymmetry",
    "GeneratorProbe",
    "GroupConsistentProbe",
    "HomomorphismDefect",
    "LieAlgebraProbe",
    "LinearProbe",
    "LiveProbes",
    "OrthogonalProbe",
    "ProbeKind",
    "SymmetryDiscovery",
    "ablation_over_training",
    "attribution_over_training",
    "bracket_law",
    "character_multiplicities",
    "discover_symmetry",
    "discovery_over_training",
    "equivariance_attribution",
    "family_latents",
    "family_lie_derivative",
    "fit_from_generators",
    "homomorphism_error",
    "invariance",
    "irrep_ablation",
    "isotypic_components",
    "lie_derivative",
    "one_parameter_elements",
    "orbit_spectrum",
    "register_dim",
    "register_probe",
    "respected_subgroups",
    "run",
    "so3_lie_derivative",
    "stack_steps",
    "subgroup_scan",
]
