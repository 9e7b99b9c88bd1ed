"""Finite and continuous groups with their real irreducible representations.

Finite groups are immutable, hashable value objects defined by a Cayley table, with
``a∘b`` meaning "apply ``b`` first, then ``a``" and the identity at index 0.  Named families
(:class:`Cyclic`, :class:`Dihedral`, :class:`Symmetric`, :class:`DirectProduct`) carry
closed-form real irreps; any other group (:meth:`FiniteGroup.from_cayley_table`) gets its
real irreps by a seeded numerical decomposition of the regular representation.
:func:`parse` turns a spec (``"C8"``, ``"D4"``, ``"C2xC4"``, ``"S3"``, ``"SO2"``) or a repr
back into a group.  :class:`SO2` is the continuous rotation group of the plane;
:class:`O2`, :class:`SO3` and :class:`O3` are the compact matrix groups with real irreps
by degree (Wigner-D for SO(3)).

Examples
--------
>>> from latentgeo.groups import Dihedral, parse
>>> G = Dihedral(4)
>>> parse(repr(G)) == G, G.spec, [r.name for r in G.irreps()]
(True, 'D4', ['A1', 'A2', 'B1', 'B2', 'E1'])
"""

from ._cyclic import Cyclic
from ._decompose import complex_structure, is_irreducible, split_representation
from ._dihedral import Dihedral
from ._finite import FiniteGroup
from ._irreps import IRREP_TYPES, Irrep, commutant_dimension
from ._matrix import MatrixGroup, MatrixIrrep
from ._o2 import O2
from ._o3 import O3
from ._parse import parse
from ._product import DirectProduct
from ._protocol import Group, as_generator
from ._so2 import SO2, SO2Irrep
from ._so3 import SO3
from ._symmetric import Symmetric

__all__ = [
    "IRREP_TYPES",
    "O2",
    "O3",
    "SO2",
    "SO3",
    "Cyclic",
    "Dihedral",
    "DirectProduct",
    "FiniteGroup",
    "Group",
    "Irrep",
    "MatrixGroup",
    "MatrixIrrep",
    "SO2Irrep",
    "Symmetric",
    "as_generator",
    "commutant_dimension",
    "complex_structure",
    "is_irreducible",
    "parse",
    "split_representation",
]
