"""Parse group specs (``"C8"``, ``"D4"``, ``"C2xC4"``, ``"A5"``, ``"SO2"``) and reprs.

Every name is looked up in the one group registry
(:data:`latentgeo.groups._registry.GROUPS`): a call ``Name(args)`` runs the registered
constructor ``Name`` on literal arguments (or nested group calls), and a short spec
``<prefix><digits>`` runs ``cls._from_spec_number(int(digits))`` of the registered class whose
``spec_prefix`` is the whole name before the digits (``"Dic3"`` is never ``"D"`` followed by
``"ic3"``).  A name that no registered or installed group claims is a
:class:`~latentgeo.groups.MissingExtensionError`, whatever its spelling.  Nothing is
``eval``-ed.
"""

from __future__ import annotations

import ast
import re
from typing import Any

from latentgeo._registry import MissingExtensionError

from . import _builtins  # noqa: F401  (every built-in group registers itself)
from ._protocol import Group
from ._registry import GROUPS

__all__ = ["parse"]

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
# "C2x" in "C2x(C3xC4)": a short spec followed by the product operator, not a call.
_SHORT_THEN_PRODUCT = re.compile(r"[A-Za-z]+\d+x")
# The name of a short spec: the letters before its number ("Dic" in "Dic3", "SO" in "SO2").
_LETTERS = re.compile(r"[A-Za-z_]+")
_HELP = (
    "expected a spec like 'C8', 'D4', 'S5', 'A5', 'Q8', 'SO2', a product 'C2xC4' or "
    "'D4x(C2xC3)', or a repr like 'Cyclic(8)' / 'FiniteGroup.from_cayley_table([[0, 1], "
    "[1, 0]])' of a registered group (latentgeo.groups.register)"
)


def _short_prefixes() -> list[tuple[str, Any]]:
    """``(spec_prefix, class)`` of registered groups with a short spec, longest first."""
    out = []
    for _, obj in GROUPS.items():
        prefix = getattr(obj, "spec_prefix", None) if isinstance(obj, type) else None
        if isinstance(prefix, str) and prefix:
            out.append((prefix, obj))
    return sorted(out, key=lambda item: -len(item[0]))


def _short_match(text: str, pos: int) -> tuple[str, Any] | None:
    """The registered ``(spec_prefix, class)`` whose prefix starts ``text[pos:]`` and whose
    letters are the whole name there (so ``"Dic3"`` does not match ``"D"``)."""
    m = _LETTERS.match(text, pos)
    letters = m.group() if m else ""
    for prefix, cls in _short_prefixes():
        lead = _LETTERS.match(prefix)
        if text.startswith(prefix, pos) and (lead.group() if lead else "") == letters:
            return prefix, cls
    return None


class _Parser:
    """Recursive descent over ``product := factor ('x' factor)*``, ``factor := '(' product
    ')' | short | call``, where ``call`` is a repr evaluated through a whitelisted AST."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def error(self, why: str) -> ValueError:
        return ValueError(
            f"cannot parse group {self.text!r}: {why} at position {self.pos}; {_HELP}"
        )

    def skip(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def product(self) -> Any:
        from ._product import DirectProduct

        group = self.factor()
        self.skip()
        while self.text.startswith("x", self.pos):
            self.pos += 1
            group = DirectProduct(group, self.factor())
            self.skip()
        return group

    def factor(self) -> Any:
        self.skip()
        if self.text.startswith("(", self.pos):
            self.pos += 1
            group = self.product()
            self.skip()
            if not self.text.startswith(")", self.pos):
                raise self.error("missing ')'")
            self.pos += 1
            return group
        m = _IDENT.match(self.text, self.pos)
        if m is not None:
            rest = self.text[m.end() :].lstrip()
            if rest.startswith("("):
                if m.group() in GROUPS:
                    return self.call(len(self.text) - len(rest))
                if not _SHORT_THEN_PRODUCT.match(m.group()):
                    try:
                        GROUPS.get(m.group())
                    except MissingExtensionError as err:
                        raise MissingExtensionError(
                            f"cannot rebuild group {self.text!r}: {err}"
                        ) from None
        found = _short_match(self.text, self.pos)
        if found is None and m is not None:
            # A name no loaded group claims: an installed package may declare it.
            GROUPS.load_entry_points()
            found = _short_match(self.text, self.pos)
            if found is None:
                name = (_LETTERS.match(self.text, self.pos) or m).group()
                if name in GROUPS:
                    raise self.error(f"{name!r} is a group constructor: call it, e.g. {name}(...)")
                known = sorted(prefix for prefix, _ in _short_prefixes())
                raise MissingExtensionError(
                    f"cannot rebuild group {self.text!r}: no group with the short spec "
                    f"{name!r}<number> is registered (known prefixes: {known!r}). Import the "
                    "module that registers it (with @latentgeo.groups.register) or install the "
                    "package that declares it in the 'latentgeo.groups' entry-point group"
                )
        if found is not None:
            prefix, cls = found
            start = self.pos + len(prefix)
            end = start
            while end < len(self.text) and self.text[end].isdigit():
                end += 1
            self.pos = end
            number = int(self.text[start:end]) if end > start else None
            try:
                return cls._from_spec_number(number)
            except (TypeError, ValueError) as err:
                raise self.error(str(err)) from None
        raise self.error("expected a group")

    def call(self, open_paren: int) -> Any:
        """Consume ``Name(...)`` whose '(' is at ``open_paren`` and evaluate it safely."""
        depth, i, quote = 0, open_paren, None
        while i < len(self.text):
            ch = self.text[i]
            if quote:
                if ch == "\\":
                    i += 1
                elif ch == quote:
                    quote = None
            elif ch in "'\"":
                quote = ch
            elif ch in "([":
                depth += 1
            elif ch in ")]":
                depth -= 1
                if depth == 0:
                    break
            i += 1
        else:
            raise self.error("unbalanced parentheses")
        source = self.text[self.pos : i + 1]
        self.pos = i + 1
        try:
            node = ast.parse(source, mode="eval").body
        except SyntaxError:
            raise self.error(f"invalid expression {source!r}") from None
        return _evaluate(node, self)


def _evaluate(node: ast.AST, parser: _Parser) -> Any:
    """Evaluate ``Name(args)``: a registered constructor applied to literals or groups."""
    if isinstance(node, ast.Call):
        func = ast.unparse(node.func)
        if func not in GROUPS:
            raise parser.error(f"unknown constructor {ast.unparse(node)!r}")
        constructor = GROUPS.get(func)
        args = [_evaluate(a, parser) for a in node.args]
        if any(k.arg is None for k in node.keywords):
            raise parser.error(f"'**' is not allowed in {ast.unparse(node)!r}")
        kwargs = {str(k.arg): _evaluate(k.value, parser) for k in node.keywords}
        try:
            return constructor(*args, **kwargs)
        except TypeError as err:  # wrong arity or argument types inside the string
            raise parser.error(f"bad arguments to {func}: {err}") from None
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError):
        raise parser.error(
            f"arguments must be literals or group constructors, got {ast.unparse(node)!r}"
        ) from None


def parse(spec: Any) -> Group:
    """Build a group from its spec or repr.

    Parameters
    ----------
    spec : str or group
        ``"C8"`` (:class:`Cyclic`), ``"D4"`` (:class:`Dihedral`, order 8), ``"S3"``
        (:class:`Symmetric`), ``"A5"`` (:class:`Alternating`), ``"Q8"``
        (:class:`Quaternion`), ``"SO2"``, the short spec of any registered class with a
        ``spec_prefix``, products ``"C2xC4"`` (left-associative; use
        parentheses ``"C2x(C3xC4)"`` for other nestings), or any group's ``repr`` (e.g.
        ``"Cyclic(8)"``, ``"FiniteGroup.from_cayley_table([[0, 1], [1, 0]])"``, a user's
        ``"Klein()"`` registered with :func:`latentgeo.groups.register`).  A group
        object is returned unchanged.

    Returns
    -------
    Group
        ``parse(repr(G)) == G`` and ``parse(G.spec) == G`` for every group.

    Raises
    ------
    MissingExtensionError
        (a ``ValueError``) If the spec calls a constructor that is neither registered nor
        installed as an entry point (e.g. a user's group whose module is not imported).
    ValueError
        If the string is not a valid spec (the message names it and the accepted forms).
    TypeError
        If ``spec`` is neither a str nor a group.

    Examples
    --------
    >>> parse("C2xC4").order
    8
    """
    if isinstance(spec, Group):
        return spec
    if not isinstance(spec, str):
        raise TypeError(f"group spec must be a str, got {spec!r}")
    parser = _Parser(spec)
    group = parser.product()
    parser.skip()
    if parser.pos != len(spec):
        raise parser.error("unexpected trailing text")
    return group
