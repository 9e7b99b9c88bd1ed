"""One registry mechanism for every extension point: groups, actions and reducers.

A :class:`Registry` maps a name (the one written in specs: a group constructor name such as
``"Dihedral"``, an action spec's ``"type"``, a reducer spec's ``"name"``) to the class (or
constructor) that rebuilds the object.  Built-ins and user classes register the same way,
with the registry's :meth:`Registry.register` decorator::

    @latentgeo.groups.register
    class Klein(FiniteGroup): ...

Installed packages can instead declare an entry point in the group of the same name
(``latentgeo.groups``, ``latentgeo.actions``, ``latentgeo.reducers``), e.g. in
``pyproject.toml``::

    [project.entry-points."latentgeo.groups"]
    Klein = "mypkg.groups:Klein"

An entry point is loaded only when its name is looked up and not registered yet, so
``import latentgeo`` imports no plug-in.  The pattern follows xarray's backend entry points
(``xarray.backends``) and ``importlib.metadata``.

The three registries (:data:`GROUPS`, :data:`ACTIONS`, :data:`REDUCERS`) are the only
mutable state: nothing is cached on groups or classes.  Registering a name twice with a
different class is an error (re-registering the same class, or a class of the same module
and qualified name after a module reload, is allowed).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from importlib import metadata
from typing import Any, TypeVar, overload

from latentgeo._errors import LatentgeoError

__all__ = ["ACTIONS", "GROUPS", "REDUCERS", "MissingExtensionError", "Registry"]

T = TypeVar("T")


class MissingExtensionError(LatentgeoError, ValueError, LookupError):
    """A spec names a group, action or reducer that is neither registered nor installed.

    Raised with the name, the kind and the registered names; import the module that
    registers it (or install the package that declares its entry point) and retry.
    """


def _same_definition(a: Any, b: Any) -> bool:
    if a is b:
        return True
    return (
        getattr(a, "__module__", None) == getattr(b, "__module__", None)
        and getattr(a, "__qualname__", None) == getattr(b, "__qualname__", None)
        and getattr(a, "__qualname__", None) is not None
    )


class Registry:
    """Names of one kind of extension (groups, actions or reducers) and what builds them.

    Parameters
    ----------
    kind : str
        What is registered (``"group"``, ``"action"``, ``"reducer"``), for messages.
    entry_point_group : str
        The ``importlib.metadata`` entry-point group searched for names not registered.
    check : callable, optional
        ``check(obj)`` raises ``TypeError`` when ``obj`` may not be registered here.

    Examples
    --------
    >>> reg = Registry("widget", "latentgeo.test_widgets")
    >>> @reg.register
    ... class Knob:
    ...     pass
    >>> reg.get("Knob") is Knob, "Knob" in reg
    (True, True)
    """

    def __init__(
        self,
        kind: str,
        entry_point_group: str,
        check: Callable[[Any], None] | None = None,
    ) -> None:
        self.kind = kind
        self.entry_point_group = entry_point_group
        self._check = check
        self._items: dict[str, Any] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.entry_point_group!r}, names={self.names()!r})"

    @overload
    def register(self, obj: T, *, name: str | None = None) -> T: ...

    @overload
    def register(self, obj: str | None = None, *, name: str | None = None) -> Callable[[T], T]: ...

    def register(self, obj: Any = None, *, name: str | None = None) -> Any:
        """Register a class (or constructor) under ``name`` (default: its ``__name__``).

        Use as ``@register``, ``@register("name")`` or ``@register(name="name")``; returns the
        object unchanged.

        Raises
        ------
        ValueError
            If ``name`` is already registered to a different object.
        TypeError
            If the name is not a non-empty str, or the object is not of the registry's kind.
        """
        if obj is None or isinstance(obj, str):
            given = obj if isinstance(obj, str) else name

            def decorate(target: T) -> T:
                return self.register(target, name=given)

            return decorate
        key = name if name is not None else getattr(obj, "__name__", None)
        if not isinstance(key, str) or not key:
            raise TypeError(f"{self.kind} registry names must be non-empty str, got {key!r}")
        if self._check is not None:
            self._check(obj)
        with self._lock:
            old = self._items.get(key)
            if old is not None and not _same_definition(old, obj):
                raise ValueError(
                    f"{self.kind} name {key!r} is already registered to {old!r}; cannot "
                    f"register {obj!r} under the same name (choose another name)"
                )
            self._items[key] = obj
        return obj

    def _entry_points(self) -> Any:
        return metadata.entry_points(group=self.entry_point_group)

    def _load_entry_point(self, name: str) -> bool:
        """Load and register the entry point called ``name``; whether one was found."""
        for ep in self._entry_points():
            if ep.name == name:
                obj = ep.load()
                if self._items.get(name) is None:
                    self.register(obj, name=name)
                return True
        return False

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        if name in self._items:
            return True
        return any(ep.name == name for ep in self._entry_points())

    def get(self, name: str) -> Any:
        """The object registered under ``name``, loading its entry point if needed.

        Raises
        ------
        MissingExtensionError
            If no class is registered or installed under ``name``.
        """
        obj = self._items.get(name)
        if obj is None and self._load_entry_point(name):
            obj = self._items.get(name)
        if obj is None:
            raise MissingExtensionError(
                f"no {self.kind} named {name!r} is registered; known: {self.names()!r}. "
                f"Import the module that registers it (with @latentgeo."
                f"{self.entry_point_group.split('.')[-1]}.register) or install the package "
                f"that declares it in the {self.entry_point_group!r} entry-point group"
            )
        return obj

    def names(self) -> list[str]:
        """Registered names and installed entry-point names, sorted."""
        return sorted(set(self._items) | {ep.name for ep in self._entry_points()})

    def items(self) -> list[tuple[str, Any]]:
        """``(name, object)`` of the registered (already loaded) entries, sorted by name."""
        return sorted(self._items.items())

    def unregister(self, name: str) -> None:
        """Remove ``name`` (for tests and interactive redefinition).

        Raises
        ------
        KeyError
            If ``name`` is not registered.
        """
        with self._lock:
            del self._items[name]


def _check_group(obj: Any) -> None:
    from latentgeo.groups._protocol import Group

    if isinstance(obj, type) and not issubclass(obj, Group):
        raise TypeError(
            f"only subclasses of latentgeo.groups.Group can be registered as groups, got {obj!r}"
        )
    if not callable(obj):
        raise TypeError(f"a group registry entry must be a class or constructor, got {obj!r}")


def _check_action(obj: Any) -> None:
    from latentgeo.actions._base import Action

    if not (isinstance(obj, type) and issubclass(obj, Action)):
        raise TypeError(
            f"only subclasses of latentgeo.actions.Action can be registered as actions, got {obj!r}"
        )


def _check_reducer(obj: Any) -> None:
    from latentgeo.record._reducers import Reducer

    if not (isinstance(obj, type) and issubclass(obj, Reducer)):
        raise TypeError(
            f"only subclasses of latentgeo.reducers.Reducer can be registered as reducers, "
            f"got {obj!r}"
        )


#: Group constructors by the name used in specs and reprs (``"Dihedral"``,
#: ``"FiniteGroup.from_cayley_table"``, ...).
GROUPS = Registry("group", "latentgeo.groups", _check_group)
#: Action classes by their spec ``"type"``.
ACTIONS = Registry("action", "latentgeo.actions", _check_action)
#: Reducer classes by their spec ``"name"``.
REDUCERS = Registry("reducer", "latentgeo.reducers", _check_reducer)
