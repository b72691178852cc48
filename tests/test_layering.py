"""The layering of DESIGN.md, read from the source: no import goes up, no import cycle.

Every module of ``engine/`` and ``jobs/`` is parsed with ``ast``; each ``import`` and
``from ... import`` (at module level or inside a function; those under
``if TYPE_CHECKING:`` aside) is an edge. A package's ``__init__`` importing its own
submodules (the registered plugins, the timm way) is the one allowed way round; the
spec's registered-name check may import the registries inside its function.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYERS = (
    ("_util", "storage", "spec", "layout", "processes"),
    ("scores", "data", "models"),
    ("shards",),
    ("training", "splits"),
    ("evaluation",),
    ("tracking", "distributed"),
    ("tasks",),
    ("lifecycle",),
    ("cli", "api", "jobs"),
)  # bottom to top, as DESIGN.md orders them
LEVEL = {name: level for level, names in enumerate(LAYERS) for name in names}
# (module, function) pairs allowed to import upwards inside the function: the spec's one
# validation step, which checks registered names (scores, models, sources, tasks)
LAZY_REGISTRY_CHECKS = {
    ("engine.spec.validate", "check_registered"),
    ("engine.spec.validate", "registered_task"),
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    files = [*(ROOT / "engine").rglob("*.py"), *(ROOT / "jobs").rglob("*.py")]
    return {_module_name(f): f for f in files}


def _layer(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] == "jobs":
        return "jobs"
    return parts[1] if len(parts) > 1 else None


def _imports(path: Path, module: str, known: dict) -> list[tuple[str, int, str | None]]:
    """``(imported module, line, enclosing function or None)`` of every import in ``path``."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[str, int, str | None]] = []

    def resolve(name: str) -> str:
        while name not in known and "." in name:
            name = name.rpartition(".")[0]
        return name

    def visit(nodes: list[ast.stmt], function: str | None) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                visit(node.orelse, function)
                continue
            if isinstance(node, ast.Import):
                found.extend(
                    (resolve(a.name), node.lineno, function)
                    for a in node.names
                    if a.name.split(".")[0] in ("engine", "jobs")
                )
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                if source.split(".")[0] in ("engine", "jobs"):
                    for alias in node.names:
                        full = f"{source}.{alias.name}"
                        found.append((resolve(full if full in known else source), node.lineno,
                                      function))  # fmt: skip
            inner = function
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                inner = node.name if function is None else function
            for field in ("body", "orelse", "finalbody"):
                visit(getattr(node, field, []) or [], inner)
            for handler in getattr(node, "handlers", []):
                visit(handler.body, inner)
            if isinstance(node, ast.Match):
                for case in node.cases:
                    visit(case.body, inner)

    visit(ast.parse(path.read_text()).body, None)
    return found


def _graph() -> tuple[dict[str, list[tuple[str, int, str | None]]], dict[str, Path]]:
    modules = _modules()
    return {m: _imports(p, m, modules) for m, p in modules.items()}, modules


def upward_imports() -> list[str]:
    """Every import from a lower layer to a higher one, as ``file:line: a -> b``."""
    edges, modules = _graph()
    bad = []
    for module, targets in edges.items():
        for target, line, function in targets:
            low, high = _layer(module), _layer(target)
            if low not in LEVEL or high not in LEVEL or LEVEL[high] <= LEVEL[low]:
                continue
            if (module, function) in LAZY_REGISTRY_CHECKS:
                continue
            bad.append(f"{modules[module].relative_to(ROOT)}:{line}: {module} -> {target}")
    return sorted(set(bad))


def import_cycles() -> list[list[str]]:
    """Strongly connected groups of modules, leaving out ``__init__`` -> own submodule edges."""
    edges, modules = _graph()
    graph = {}
    for m, targets in edges.items():
        own_plugins = m + "." if modules[m].name == "__init__.py" else None
        graph[m] = {
            t for t, _, _ in targets if t != m and not (own_plugins and t.startswith(own_plugins))
        }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))

    def connect(v: str) -> None:  # Tarjan's algorithm
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return groups


def test_every_package_has_a_layer():
    names = {_layer(m) for m in _modules()} - {None}
    assert names <= set(LEVEL), f"packages without a layer in LAYERS: {names - set(LEVEL)}"


def test_no_import_goes_up_a_layer():
    bad = upward_imports()
    assert not bad, "imports that go up a layer:\n" + "\n".join(bad)


def test_no_import_cycles():
    cycles = import_cycles()
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_the_checker_sees_an_upward_import_and_a_cycle(tmp_path, monkeypatch):
    """The checks above can fail: a planted upward import and a planted cycle are found."""
    engine = tmp_path / "engine"
    for package in ("spec", "tasks", "data"):
        (engine / package).mkdir(parents=True)
        (engine / package / "__init__.py").write_text("")
    (engine / "__init__.py").write_text("")
    (engine / "spec" / "schema.py").write_text("def f():\n    from engine.tasks import x\n")
    (engine / "data" / "a.py").write_text("from engine.data.b import y\n")
    (engine / "data" / "b.py").write_text("import engine.data.a\n")
    (tmp_path / "jobs").mkdir()
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert upward_imports() == ["engine/spec/schema.py:2: engine.spec.schema -> engine.tasks"]
    assert import_cycles() == [["engine.data.a", "engine.data.b"]]
