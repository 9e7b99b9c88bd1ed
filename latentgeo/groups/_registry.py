"""The group registry, beside :class:`~latentgeo.groups.Group`.

:data:`GROUPS` maps the names written in group specs and reprs (``"Dihedral"``,
``"FiniteGroup.from_cayley_table"``, a user's ``"Klein"``) to the class or constructor that
rebuilds the group.  Each built-in group registers itself in its own module; a user's group
with :func:`latentgeo.groups.register` or the ``latentgeo.groups`` entry-point group.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from latentgeo._registry import Registry

from ._protocol import Group

__all__ = ["GROUPS"]

#: Group constructors by the name used in specs and reprs (``"Dihedral"``,
#: ``"FiniteGroup.from_cayley_table"``, ...): subclasses of :class:`Group` or constructors.
GROUPS: Registry[Callable[..., Any]] = Registry(
    "group", "latentgeo.groups", Group, constructors=True
)
