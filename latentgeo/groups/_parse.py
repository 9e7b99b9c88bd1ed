"""Parse group specs (``"C8"``, ``"D4"``, ``"C2xC4"``, ``"S3"``, ``"SO2"``) and reprs."""

from __future__ import annotations

import ast
import re
from typing import Any

from ._finite import FiniteGroup

__all__ = ["parse"]

_SHORT = re.compile(r"(SO2|C|D|S)(\d*)")
# D1 (issue 11): the compact matrix groups, matched before the finite families.
_MATRIX_GROUPS = ("SO3", "O3", "O2")
_CALL_NAMES = (
    "FiniteGroup.from_cayley_table",
    "DirectProduct",
    "Dihedral",
    "Symmetric",
    "Cyclic",
    "SO2",
)
_HELP = (
    "expected a spec like 'C8', 'D4', 'S3', 'SO2', a product 'C2xC4' or 'D4x(C2xC3)', or a "
    "repr like 'Cyclic(8)' / 'FiniteGroup.from_cayley_table([[0, 1], [1, 0]])'"
)


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
        # D1 (issue 11): SO3, O3, O2 and their reprs SO3(), O3(), O2().
        for name in _MATRIX_GROUPS:
            if self.text.startswith(name, self.pos):
                end = self.pos + len(name)
                if self.text.startswith("()", end):
                    end += 2
                if end == len(self.text) or not self.text[end].isalnum():
                    self.pos = end
                    from . import _o2, _o3, _so3

                    return {"SO3": _so3.SO3, "O3": _o3.O3, "O2": _o2.O2}[name]()
        for name in _CALL_NAMES:
            if self.text.startswith(name, self.pos):
                after = self.pos + len(name)
                rest = self.text[after:].lstrip()
                if rest.startswith("("):
                    return self.call(after + len(self.text[after:]) - len(rest))
        m = _SHORT.match(self.text, self.pos)
        if m is None:
            raise self.error("expected a group")
        kind, digits = m.groups()
        if kind == "SO2":
            if digits:
                raise self.error("unexpected digits after 'SO2'")
            self.pos = m.end()
            from ._so2 import SO2

            return SO2()
        if not digits:
            raise self.error(f"missing order after {kind!r}")
        self.pos = m.end()
        from ._cyclic import Cyclic
        from ._dihedral import Dihedral
        from ._symmetric import Symmetric

        return {"C": Cyclic, "D": Dihedral, "S": Symmetric}[kind](int(digits))

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
    from ._cyclic import Cyclic
    from ._dihedral import Dihedral
    from ._product import DirectProduct
    from ._so2 import SO2
    from ._symmetric import Symmetric

    if not isinstance(node, ast.Call):
        raise parser.error(f"expected a group constructor, got {ast.unparse(node)!r}")
    func = ast.unparse(node.func)
    if func == "DirectProduct":
        if node.keywords or len(node.args) != 2:
            raise parser.error("DirectProduct takes two groups")
        return DirectProduct(*(_evaluate(a, parser) for a in node.args))
    try:
        args = [ast.literal_eval(a) for a in node.args]
        kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords}
    except (ValueError, TypeError, SyntaxError):
        raise parser.error(f"arguments of {func} must be literals") from None
    constructors = {
        "Cyclic": Cyclic,
        "Dihedral": Dihedral,
        "Symmetric": Symmetric,
        "SO2": SO2,
        "FiniteGroup.from_cayley_table": FiniteGroup.from_cayley_table,
    }
    if func not in constructors or (kwargs and func != "FiniteGroup.from_cayley_table"):
        raise parser.error(f"unknown constructor {ast.unparse(node)!r}")
    if set(kwargs) - {"names"}:
        raise parser.error(f"unexpected keywords {sorted(kwargs)!r}")
    try:
        return constructors[func](*args, **kwargs)
    except TypeError as err:  # wrong arity or argument types inside the string
        raise parser.error(f"bad arguments to {func}: {err}") from None


def parse(spec: Any) -> Any:
    """Build a group from its spec or repr.

    Parameters
    ----------
    spec : str or group
        ``"C8"`` (:class:`Cyclic`), ``"D4"`` (:class:`Dihedral`, order 8), ``"S3"``
        (:class:`Symmetric`), ``"SO2"``, products ``"C2xC4"`` (left-associative; use
        parentheses ``"C2x(C3xC4)"`` for other nestings), or any group's ``repr`` (e.g.
        ``"Cyclic(8)"``, ``"FiniteGroup.from_cayley_table([[0, 1], [1, 0]])"``).  A group
        object is returned unchanged.

    Returns
    -------
    FiniteGroup or SO2
        ``parse(repr(G)) == G`` and ``parse(G.spec) == G`` for every group.

    Raises
    ------
    ValueError
        If the string is not a valid spec (the message names it and the accepted forms).
    TypeError
        If ``spec`` is neither a str nor a group.

    Examples
    --------
    >>> parse("C2xC4").order
    8
    """
    from ._protocol import Group

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
