"""The built-in group classes, imported so that each registers itself in :data:`GROUPS`.

:func:`latentgeo.groups.parse` imports this module (not the package ``__init__``) so that
every built-in name and short-spec prefix is known before a spec is looked up.
"""

from __future__ import annotations

from ._alternating import Alternating
from ._cyclic import Cyclic
from ._dihedral import Dihedral
from ._finite import FiniteGroup
from ._o2 import O2
from ._o3 import O3
from ._permutations import Permutations
from ._product import DirectProduct
from ._quaternion import Quaternion
from ._so2 import SO2
from ._so3 import SO3
from ._symmetric import Symmetric

__all__ = [
    "O2",
    "O3",
    "SO2",
    "SO3",
    "Alternating",
    "Cyclic",
    "Dihedral",
    "DirectProduct",
    "FiniteGroup",
    "Permutations",
    "Quaternion",
    "Symmetric",
]
