"""The action registry and :func:`from_spec`, beside :class:`~latentgeo.actions.Action`.

:data:`ACTIONS` maps an action spec's ``"type"`` to its class.  Each built-in action
registers itself in its own module with :func:`register`, exactly as a user's action does;
installed packages may declare actions in the ``latentgeo.actions`` entry-point group.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from latentgeo._registry import MissingExtensionError, Registry
from latentgeo.actions._base import Action

__all__ = ["ACTIONS", "from_spec", "register"]

#: Action classes by their spec ``"type"``.
ACTIONS: Registry[type[Action]] = Registry("action", "latentgeo.actions", Action)

#: Class decorator registering an :class:`Action` subclass under its class name (the
#: ``"type"`` of its spec), so :func:`from_spec` rebuilds it: ``@register`` or
#: ``@register("Name")``.  Installed packages may declare actions in the
#: ``latentgeo.actions`` entry-point group instead.
register = ACTIONS.register


def from_spec(spec: Mapping[str, Any]) -> Action:
    """Rebuild an action from :meth:`Action.to_spec`'s dict.

    The class is looked up by ``spec["type"]`` in the action registry (built-ins, classes
    decorated with :func:`register`, then the ``latentgeo.actions`` entry points).  A class
    with its own ``from_spec`` classmethod gets the whole dict; any other is called with the
    remaining keys as keyword arguments (JSON turns tuples into lists; constructors normalise
    them back).

    Parameters
    ----------
    spec : mapping
        ``{"type": <action class name>, **parameters}`` as written by ``to_spec`` (for
        instance read back from a run store's attrs).

    Returns
    -------
    Action
        An action equal to the one that wrote ``spec``.

    Raises
    ------
    MissingExtensionError
        (a ``ValueError``) If no action class of that type is registered or installed.
    ValueError
        If the spec has keys the class's constructor does not take.
    TypeError
        If ``spec`` is not a mapping.

    Examples
    --------
    >>> from latentgeo.actions import TokenShift
    >>> act = TokenShift(7, position=(0, 1))
    >>> from_spec(act.to_spec()) == act
    True
    """
    if not isinstance(spec, Mapping):
        raise TypeError(f"spec must be a dict, got {type(spec).__name__!r}: {spec!r}")
    kind = spec.get("type")
    if not isinstance(kind, str):
        raise ValueError(f"action spec {dict(spec)!r} has no 'type' naming the action class")
    try:
        cls = ACTIONS.get(kind)
    except MissingExtensionError as err:
        raise MissingExtensionError(f"cannot rebuild action spec {dict(spec)!r}: {err}") from None
    own = cls.__dict__.get("from_spec")
    if isinstance(own, classmethod):
        return own.__func__(cls, dict(spec))
    kwargs = {k: v for k, v in spec.items() if k != "type"}
    params = inspect.signature(cls).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    extra = set(kwargs) - set(params)
    if extra and not takes_any:
        raise ValueError(
            f"unexpected keys {sorted(extra)} in {kind} spec; allowed: {tuple(params)}"
        )
    return cls(**kwargs)
