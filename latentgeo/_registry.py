"""One registry mechanism for every extension point: groups, actions, reducers, probe kinds.

A :class:`Registry` maps a name (the one written in specs: a group constructor name such as
``"Dihedral"``, an action spec's ``"type"``, a reducer spec's ``"name"``, a probe kind of
``probes.run``) to the class, constructor or object that it stands for.  Each registry is
defined beside its base class (``latentgeo.groups._registry.GROUPS`` beside ``Group``,
``latentgeo.actions._spec.ACTIONS`` beside ``Action``, ``latentgeo.record._reducers.REDUCERS``
beside ``Reducer``, ``probes._kinds.PROBE_KINDS`` beside ``ProbeKind``), and every built-in
registers itself where it is defined.  This module knows none of them: it imports nothing
from latentgeo but the error hierarchy.  Built-ins and user classes register the same way,
with the registry's :meth:`Registry.register` decorator::

    @latentgeo.groups.register
    class Klein(FiniteGroup): ...

Installed packages can instead declare an entry point in the group of the same name
(``latentgeo.groups``, ``latentgeo.actions``, ``latentgeo.reducers``, ``latentgeo.probes``),
e.g. in
``pyproject.toml``::

    [project.entry-points."latentgeo.groups"]
    Klein = "mypkg.groups:Klein"

An entry point is loaded only when its name is looked up and not registered yet, so
``import latentgeo`` imports no plug-in.  The pattern follows xarray's backend entry points
(``xarray.backends``) and ``importlib.metadata``.

The registries are the only mutable state: nothing is cached on groups or classes.
Registering a name twice with a different class is an error (re-registering the same class,
or a class of the same module and qualified name after a module reload, is allowed).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from importlib import metadata
from typing import Any, Generic, TypeVar, overload

from latentgeo._errors import LatentgeoError

__all__ = ["MissingExtensionError", "Registry"]

T = TypeVar("T")
V = TypeVar("V")


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


class Registry(Generic[V]):
    """Names of one kind of extension (groups, actions, reducers, probe kinds) and their objects.

    Parameters
    ----------
    kind : str
        What is registered (``"group"``, ``"action"``, ``"reducer"``), for messages.
    entry_point_group : str or None
        The ``importlib.metadata`` entry-point group searched for names not registered
        (None: no entry points).
    base : type, optional
        What may be registered: subclasses of ``base`` (or, with ``instances=True``,
        instances of it); anything else is a ``TypeError``.
    instances : bool
        Entries are instances of ``base`` (e.g. probe kinds), not classes.
    constructors : bool
        Callables that are not classes (e.g. ``FiniteGroup.from_cayley_table``) may be
        registered too.
    base_name : str, optional
        How messages name ``base`` (default ``"<entry_point_group>.<base name>"``, the public
        spelling, e.g. ``latentgeo.groups.Group``).
    check : callable, optional
        ``check(name, obj)`` raises when ``obj`` may not be registered under ``name`` (rules
        beyond the type, e.g. probe kinds' variable names); called under the lock.

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
        entry_point_group: str | None,
        base: type | None = None,
        *,
        instances: bool = False,
        constructors: bool = False,
        base_name: str | None = None,
        check: Callable[[str, Any], None] | None = None,
    ) -> None:
        self.kind = kind
        self.entry_point_group = entry_point_group
        self.base = base
        self._instances = instances
        self._constructors = constructors
        if base is not None and base_name is None:
            base_name = f"{entry_point_group or base.__module__}.{base.__qualname__}"
        self._base_name = base_name
        self._check = check
        self._items: dict[str, V] = {}
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.entry_point_group!r}, names={self.names()!r})"

    def _check_type(self, obj: Any) -> None:
        base = self.base
        if base is None:
            return
        if self._instances:
            if not isinstance(obj, base):
                raise TypeError(
                    f"only instances of {self._base_name} can be registered as "
                    f"{self.kind}s, got {obj!r}"
                )
            return
        if isinstance(obj, type):
            if not issubclass(obj, base):
                raise TypeError(
                    f"only subclasses of {self._base_name} can be registered as {self.kind}s, "
                    f"got {obj!r}"
                )
            return
        if not (self._constructors and callable(obj)):
            what = "a class or constructor" if self._constructors else "a class"
            raise TypeError(
                f"only subclasses of {self._base_name} can be registered as {self.kind}s "
                f"(a {self.kind} registry entry must be {what}), got {obj!r}"
            )

    @overload
    def register(self, obj: str | None = None, *, name: str | None = None) -> Callable[[T], T]: ...

    @overload
    def register(self, obj: T, *, name: str | None = None) -> T: ...

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
        self._check_type(obj)
        with self._lock:
            old = self._items.get(key)
            if old is not None and not _same_definition(old, obj):
                raise ValueError(
                    f"{self.kind} name {key!r} is already registered to {old!r}; cannot "
                    f"register {obj!r} under the same name (choose another name)"
                )
            if old is None and self._check is not None:
                self._check(key, obj)
            self._items[key] = obj
        return obj

    def _entry_points(self) -> Any:
        if self.entry_point_group is None:
            return ()
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

    def load_entry_points(self) -> None:
        """Load every installed entry point of the group not registered yet (for lookups that
        are not by name, e.g. a group's short spec prefix)."""
        for ep in self._entry_points():
            if ep.name not in self._items:
                obj = ep.load()
                if self._items.get(ep.name) is None:
                    self.register(obj, name=ep.name)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        if name in self._items:
            return True
        return any(ep.name == name for ep in self._entry_points())

    def get(self, name: str) -> V:
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
            how = "Import the module that registers it"
            if self.entry_point_group is not None:
                how += (
                    f" (with @latentgeo.{self.entry_point_group.split('.')[-1]}.register) or "
                    f"install the package that declares it in the {self.entry_point_group!r} "
                    "entry-point group"
                )
            raise MissingExtensionError(
                f"no {self.kind} named {name!r} is registered; known: {self.names()!r}. {how}"
            )
        return obj

    def __getitem__(self, name: str) -> V:
        return self.get(name)

    def __iter__(self) -> Iterator[str]:
        """Registered (loaded) names, in registration order."""
        return iter(list(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def values(self) -> list[V]:
        """The registered (loaded) objects, in registration order."""
        return list(self._items.values())

    def names(self) -> list[str]:
        """Registered names and installed entry-point names, sorted."""
        return sorted(set(self._items) | {ep.name for ep in self._entry_points()})

    def items(self) -> list[tuple[str, V]]:
        """``(name, object)`` of the registered (already loaded) entries, in registration
        order."""
        return list(self._items.items())

    def unregister(self, name: str) -> None:
        """Remove ``name`` (for tests and interactive redefinition).

        Raises
        ------
        KeyError
            If ``name`` is not registered.
        """
        with self._lock:
            del self._items[name]
