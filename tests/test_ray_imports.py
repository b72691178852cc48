"""Ray only at orchestration: no module of ``engine/`` outside ``engine/distributed`` imports Ray.

DESIGN.md: "no Ray imports outside engine/distributed or jobs/". Every ``import`` and
``from ... import`` (module level or inside a function) is read with ``ast``.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ORCHESTRATION = ROOT / "engine" / "distributed"  # the one package that places work on Ray


def ray_imports(source: str) -> list[int]:
    """Lines of ``source`` that import ``ray`` or one of its modules."""

    def is_ray(name: str | None) -> bool:
        return name is not None and (name == "ray" or name.startswith("ray."))

    return sorted(
        node.lineno
        for node in ast.walk(ast.parse(source))
        if (isinstance(node, ast.Import) and any(is_ray(a.name) for a in node.names))
        or (isinstance(node, ast.ImportFrom) and node.level == 0 and is_ray(node.module))
    )


def test_no_engine_module_outside_distributed_imports_ray():
    found = [
        f"{path.relative_to(ROOT)}:{line}"
        for path in sorted((ROOT / "engine").rglob("*.py"))
        if ORCHESTRATION not in path.parents
        for line in ray_imports(path.read_text())
    ]
    assert not found, "Ray imported outside engine/distributed: " + ", ".join(found)


def test_the_check_sees_imports_inside_functions():
    source = "def f():\n    import ray\n    from ray.util import x\n    import rayon\n"
    assert ray_imports(source) == [2, 3]
