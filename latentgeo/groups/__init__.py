"""Finite and continuous groups with their real irreducible representations.

Finite groups are immutable, hashable value objects defined by a Cayley table, with
``a∘b`` meaning "apply ``b`` first, then ``a``" and the identity at index 0.  Named families
(:class:`Cyclic`, :class:`Dihedral`, :class:`Symmetric` (``n <= 7``, Young's orthogonal
form), :class:`Alternating`, :class:`Quaternion`, :class:`DirectProduct`) carry closed-form
real irreps; any other group (:meth:`FiniteGroup.from_cayley_table`,
:meth:`FiniteGroup.from_generators`) gets its real irreps from its characters (Burnside–Dixon)
and its regular representation in ``O(|G|^3)``.  :func:`parse` turns a spec (``"C8"``,
``"D4"``, ``"C2xC4"``, ``"S5"``, ``"A5"``, ``"Q8"``, ``"SO2"``) or a repr back into a group.
:class:`SO2` is the continuous rotation group.

Every group class is found by name in one registry: decorate your own :class:`Group` subclass
with :func:`register` (or declare it in the ``latentgeo.groups`` entry-point group of an
installed package) and :func:`parse` rebuilds it from its spec, also in a fresh process that
opens a run store recorded with it.
:class:`O2`, :class:`SO3` and :class:`O3` are the compact matrix groups with real irreps
by degree (Wigner-D for SO(3)).

Examples
--------
>>> from latentgeo.groups import Dihedral, parse
>>> G = Dihedral(4)
>>> parse(repr(G)) == G, G.spec, [r.name for r in G.irreps()]
(True, 'D4', ['A1', 'A2', 'B1', 'B2', 'E1'])
"""

from latentgeo._registry import MissingExtensionError

from ._alternating import Alternating
from ._characters import CharacterTable
from ._cyclic import Cyclic
from ._decompose import complex_structure, is_irreducible, split_representation
from ._dihedral import Dihedral
from ._finite import FiniteGroup
from ._fourier import (
    MAX_DEFAULT_DEGREE,
    OVERSAMPLING,
    FallbackWarning,
    OrbitEnergies,
    check_elements,
    finite_energies,
    harmonic_basis,
    harmonic_energies,
    harmonic_names,
    isotypic_energies,
    orbit_energies,
    project_isotypic,
    resolve_max_degree,
    subset_energies,
)
from ._irreps import IRREP_TYPES, Irrep, commutant_dimension
from ._matrix import MatrixGroup, MatrixIrrep
from ._o2 import O2
from ._o3 import O3
from ._parse import parse
from ._permutation import PermutationGroup
from ._permutations import Permutations
from ._product import DirectProduct
from ._protocol import Group, GroupIrrep, as_generator
from ._quaternion import Quaternion
from ._registry import GROUPS as _GROUPS
from ._so2 import SO2, SO2Irrep
from ._so3 import SO3
from ._subgroups import Subgroup, SubgroupLattice
from ._symmetric import Symmetric

#: Class decorator registering a :class:`Group` subclass (or constructor) under its name, so
#: that :func:`parse` rebuilds it from its spec: ``@register`` or ``@register("Name")``.
register = _GROUPS.register

__all__ = [
    "IRREP_TYPES",
    "MAX_DEFAULT_DEGREE",
    "O2",
    "O3",
    "OVERSAMPLING",
    "SO2",
    "SO3",
    "Alternating",
    "CharacterTable",
    "Cyclic",
    "Dihedral",
    "DirectProduct",
    "FallbackWarning",
    "FiniteGroup",
    "Group",
    "GroupIrrep",
    "Irrep",
    "MatrixGroup",
    "MatrixIrrep",
    "MissingExtensionError",
    "OrbitEnergies",
    "PermutationGroup",
    "Permutations",
    "Quaternion",
    "SO2Irrep",
    "Subgroup",
    "SubgroupLattice",
    "Symmetric",
    "as_generator",
    "check_elements",
    "commutant_dimension",
    "complex_structure",
    "finite_energies",
    "harmonic_basis",
    "harmonic_energies",
    "harmonic_names",
    "is_irreducible",
    "isotypic_energies",
    "orbit_energies",
    "parse",
    "project_isotypic",
    "register",
    "resolve_max_degree",
    "split_representation",
    "subset_energies",
]
