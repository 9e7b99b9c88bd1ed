"""The import graph of ``latentgeo``, ``probes`` and ``trajectories``: no cycles, and the layers.

Every ``import`` statement of the three packages is read from the source (``ast``, nothing is
imported) and classified as *module level*, *deferred* (inside a function) or *type-checking*
(under ``if TYPE_CHECKING:``, which may point anywhere: it never runs).  An import of
``a.b._c`` is an edge to ``a.b._c`` and to the package ``a.b`` (Python runs its ``__init__``
first) unless the importer is inside ``a.b``.  ``from latentgeo import LatentRecorder`` (a
name the root package loads lazily) is an edge to the module it loads from.

This test is the truth for the layering that ``docs/architecture.md`` describes.
"""

from __future__ import annotations

import ast
import collections
from pathlib import Path

import pytest

import latentgeo

ROOT = Path(latentgeo.__file__).resolve().parents[1]
PACKAGES = ("latentgeo", "probes", "trajectories")

#: The private core: the only private modules of latentgeo that ``probes`` and
#: ``trajectories`` may import (the root package holds ``__version__`` and the lazy names).
CORE = (
    "latentgeo",
    "latentgeo._errors",
    "latentgeo._registry",
    "latentgeo._bootstrap",
    "latentgeo._validate",
    "latentgeo._model_call",
    "latentgeo._layers",
    "latentgeo._outputs",
    "latentgeo._progress",
)

#: Layers, bottom first.  A unit (a subpackage or top-level module of latentgeo, or
#: ``probes``/``trajectories``) may import only units of *lower* layers: none of its own layer
#: (no sideways imports) and none above.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("latentgeo._errors",),
    tuple(m for m in CORE if m != "latentgeo._errors"),
    ("latentgeo.groups",),
    ("latentgeo.geometry", "latentgeo.actions"),
    ("latentgeo.store", "latentgeo.checkpoints"),
    ("latentgeo.schedules",),
    ("latentgeo.record", "latentgeo.models", "latentgeo.datasets", "latentgeo.testing"),
    ("latentgeo.reducers",),  # the public face of latentgeo.record's reducers
    ("probes",),
    ("trajectories",),
    ("latentgeo.plot",),
    ("latentgeo._report",),
    ("latentgeo.pipeline",),
    ("latentgeo.cli", "latentgeo.callbacks"),
)
LAYER = {unit: i for i, units in enumerate(LAYERS) for unit in units}

#: Deprecated aliases: a package's module ``__getattr__`` that imports an old name from its new
#: home above it, only when the old name is used (with a DeprecationWarning).  Removed with
#: the alias.  (importing module, imported unit)
DEPRECATED_ALIASES = {("latentgeo.record", "probes")}  # latentgeo.record.LiveProbes

#: Deferred imports that may close a cycle *inside one package*: FiniteGroup's methods return
#: its subclasses (``G * H`` -> DirectProduct, the permutation form), and call helpers built
#: on FiniteGroup (subgroup lattice, irreps from characters, ``parse`` for pickling).  The
#: recursion of one class family, resolved at call time.  (importer, imported)
ALLOWED_DEFERRED_CYCLE_EDGES = {
    ("latentgeo.groups._finite", "latentgeo.groups._permutation"),
    ("latentgeo.groups._finite", "latentgeo.groups._parse"),
    ("latentgeo.groups._finite", "latentgeo.groups._product"),
    ("latentgeo.groups._finite", "latentgeo.groups._subgroups"),
    ("latentgeo.groups._finite", "latentgeo.groups._regular"),
}

Edge = tuple[str, str, str, str]  # (importer, imported, kind, "path:line")


def _modules() -> dict[str, tuple[Path, bool]]:
    mods = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            is_pkg = parts[-1] == "__init__"
            if is_pkg:
                parts = parts[:-1]
            mods[".".join(parts)] = (path, is_pkg)
    return mods


MODULES = _modules()


def _lazy_names() -> dict[str, str]:
    """``latentgeo.<name>`` -> module for the names the root package loads lazily."""
    tree = ast.parse((ROOT / "latentgeo" / "__init__.py").read_text())
    out = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            if node.targets[0].id == "_ATTRIBUTES":
                for name, module in ast.literal_eval(node.value).items():
                    out[f"latentgeo.{name}"] = module
    return out


LAZY = _lazy_names()


def _resolve(name: str) -> str | None:
    """The longest module of the three packages that ``name`` names or lies in."""
    name = LAZY.get(name, name)
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


class _Imports(ast.NodeVisitor):
    def __init__(self, module: str, is_pkg: bool, path: Path) -> None:
        self.module, self.is_pkg, self.path = module, is_pkg, path
        self.depth = 0
        self.type_checking = 0
        self.edges: list[Edge] = []

    def visit_If(self, node: ast.If) -> None:
        if "TYPE_CHECKING" in ast.unparse(node.test):
            self.type_checking += 1
            for child in node.body:
                self.visit(child)
            self.type_checking -= 1
            for child in node.orelse:
                self.visit(child)
        else:
            self.generic_visit(node)

    def _scope(self, node: ast.AST) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _scope

    def _add(self, target: str, node: ast.stmt) -> None:
        kind = "type-checking" if self.type_checking else "deferred" if self.depth else "module"
        resolved = _resolve(target)
        if resolved is None:
            return
        where = f"{self.path.relative_to(ROOT)}:{node.lineno}"
        self.edges.append((self.module, resolved, kind, where))
        ancestor = resolved.rpartition(".")[0]
        while ancestor:
            if not (self.module == ancestor or self.module.startswith(ancestor + ".")):
                self.edges.append((self.module, ancestor, kind, where))
            ancestor = ancestor.rpartition(".")[0]

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            base = self.module if self.is_pkg else self.module.rpartition(".")[0]
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            module = f"{base}.{node.module}" if node.module else base
        else:
            module = node.module or ""
        for alias in node.names:
            full = f"{module}.{alias.name}"
            self._add(full if full in MODULES or full in LAZY else module, node)


def _edges() -> list[Edge]:
    edges: list[Edge] = []
    for module, (path, is_pkg) in MODULES.items():
        visitor = _Imports(module, is_pkg, path)
        visitor.visit(ast.parse(path.read_text(), str(path)))
        edges.extend(e for e in visitor.edges if e[0] != e[1])
    return edges


EDGES = _edges()


def _unit(module: str) -> str:
    parts = module.split(".")
    if parts[0] != "latentgeo" or len(parts) == 1:
        return parts[0]
    return ".".join(parts[:2])


def _cycles(edges: list[Edge]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    graph: dict[str, set[str]] = collections.defaultdict(set)
    for a, b, _, _ in edges:
        graph[a].add(b)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(MODULES):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    component = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        component.append(w)
                        if w == v:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def _describe(edges: list[Edge]) -> str:
    return "\n".join(f"  {a} -> {b} ({kind}, {where})" for a, b, kind, where in edges)


def test_the_walker_sees_every_kind_of_import() -> None:
    kinds = collections.Counter(kind for _, _, kind, _ in EDGES)
    assert kinds["module"] > 100 and kinds["deferred"] > 20 and kinds["type-checking"] > 5
    # Known edges of each kind, as a check of the walker itself.
    seen = {(a, b, kind) for a, b, kind, _ in EDGES}
    assert ("probes._runner", "probes._kinds", "module") in seen
    assert ("latentgeo.groups._parse", "latentgeo.groups._builtins", "module") in seen
    assert ("latentgeo.groups._finite", "latentgeo.groups._product", "deferred") in seen
    assert ("latentgeo.store._run", "latentgeo.groups", "type-checking") in seen


def test_every_module_has_a_layer() -> None:
    missing = sorted({_unit(m) for m in MODULES} - set(LAYER))
    assert not missing, f"units with no layer (add them to LAYERS): {missing}"


def test_no_cycle_among_module_level_imports() -> None:
    module_level = [e for e in EDGES if e[2] == "module"]
    assert _cycles(module_level) == []


def test_no_cycle_counting_deferred_imports() -> None:
    edges = [e for e in EDGES if e[2] in ("module", "deferred")]
    kept = [e for e in edges if (e[0], e[1]) not in ALLOWED_DEFERRED_CYCLE_EDGES]
    cycles = _cycles(kept)
    assert cycles == [], "import cycles (counting imports inside functions):\n" + "\n".join(
        f"  {c}:\n" + _describe([e for e in kept if e[0] in c and e[1] in c]) for c in cycles
    )
    # The allowed edges stay inside one package.
    for a, b in ALLOWED_DEFERRED_CYCLE_EDGES:
        assert _unit(a) == _unit(b)


@pytest.mark.parametrize("kind", ["module", "deferred"])
def test_units_import_only_lower_layers(kind: str) -> None:
    bad = [
        e
        for e in EDGES
        if e[2] == kind
        and _unit(e[0]) != _unit(e[1])
        and LAYER[_unit(e[1])] >= LAYER[_unit(e[0])]
        and (e[0], _unit(e[1])) not in DEPRECATED_ALIASES
    ]
    assert not bad, "imports against the layering (a unit imports its own layer or above):\n" + (
        _describe(bad)
    )


def test_deprecated_aliases_are_still_there_and_warn() -> None:
    used = {(e[0], _unit(e[1])) for e in EDGES if e[2] == "deferred"}
    assert DEPRECATED_ALIASES <= used, sorted(DEPRECATED_ALIASES - used)
    import probes
    from latentgeo import record

    with pytest.warns(DeprecationWarning, match="probes.LiveProbes"):
        assert record.LiveProbes is probes.LiveProbes
    with pytest.raises(AttributeError, match="no attribute 'NoSuchName'"):
        record.NoSuchName  # noqa: B018


def _private(module: str) -> bool:
    return any(part.startswith("_") for part in module.split(".")[1:])


@pytest.mark.parametrize("package", ["probes", "trajectories"])
def test_probes_and_trajectories_use_public_names_and_the_core(package: str) -> None:
    bad = [
        e
        for e in EDGES
        if e[2] != "type-checking"
        and _unit(e[0]) == package
        and _unit(e[1]) != package
        and _private(e[1])
        and e[1] not in CORE
    ]
    assert not bad, f"{package} imports private modules of other packages:\n" + _describe(bad)


def test_type_checking_imports_are_counted_apart() -> None:
    # They may point anywhere (they never run); they are not part of the graphs above.
    tc = [e for e in EDGES if e[2] == "type-checking"]
    assert tc and all(e[1] in MODULES for e in tc)
