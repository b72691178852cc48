"""No task switch outside the task plugins (DESIGN.md, "Run lifecycle and tasks").

Every module of ``engine/`` and ``jobs/`` outside ``engine/tasks/`` is parsed with
``ast``; a comparison of a task's name (``spec.task.name``, ``self.spec.task.name``,
or a local name bound to one) against a string literal, or a ``match`` on it with a
string case, is a task switch: what differs per task belongs to the task's plugin or
its registry entry (``engine/tasks/``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PLUGINS = ROOT / "engine" / "tasks"  # where a task may ask which task it is


def _is_task_name(node: ast.expr) -> bool:
    """``<anything>.task.name``."""
    return (
        isinstance(node, ast.Attribute)
        and node.attr == "name"
        and isinstance(node.value, ast.Attribute)
        and node.value.attr == "task"
    )


def _is_string_literal(node: ast.expr) -> bool:
    """A str constant, or a tuple/list/set holding one."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return any(_is_string_literal(e) for e in node.elts)
    return False


FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)  # each binds its own names


def _own_nodes(scope: ast.AST) -> tuple[list[ast.AST], list[ast.AST]]:
    """The nodes of ``scope`` outside the functions nested in it, and those functions."""
    own, nested, todo = [], [], list(ast.iter_child_nodes(scope))
    while todo:
        node = todo.pop()
        if isinstance(node, FUNCTIONS):
            nested.append(node)
        else:
            own.append(node)
            todo.extend(ast.iter_child_nodes(node))
    return own, nested


def task_switches(source: str) -> list[int]:
    """Lines of ``source`` that compare a task's name with a string literal.

    A name bound to ``<...>.task.name`` (``name = spec.task.name``) counts as the task's
    name in its function and in the functions nested there (closures); so does a
    ``match`` on it with a string case.
    """
    lines: set[int] = set()

    def visit(scope: ast.AST, outer: frozenset[str]) -> None:
        own, nested = _own_nodes(scope)
        bound = {
            target.id
            for node in own
            if isinstance(node, ast.Assign)
            for target in node.targets
            if isinstance(target, ast.Name)
        }
        aliases = (outer - bound) | {
            target.id
            for node in own
            if isinstance(node, ast.Assign) and _is_task_name(node.value)
            for target in node.targets
            if isinstance(target, ast.Name)
        }

        def names_task(expr: ast.expr) -> bool:
            return _is_task_name(expr) or (isinstance(expr, ast.Name) and expr.id in aliases)

        for node in own:
            if isinstance(node, ast.Compare):
                sides = [node.left, *node.comparators]
                if any(names_task(s) for s in sides) and any(_is_string_literal(s) for s in sides):
                    lines.add(node.lineno)
            elif isinstance(node, ast.Match) and names_task(node.subject):
                if any(
                    isinstance(case.pattern, ast.MatchValue)
                    and _is_string_literal(case.pattern.value)
                    for case in node.cases
                ):
                    lines.add(node.lineno)
        for func in nested:
            args = {a.arg for a in ast.walk(func.args) if isinstance(a, ast.arg)}
            visit(func, frozenset(aliases - args))

    visit(ast.parse(source), frozenset())
    return sorted(lines)


def _modules() -> list[Path]:
    files = [*(ROOT / "engine").rglob("*.py"), *(ROOT / "jobs").rglob("*.py")]
    return sorted(f for f in files if PLUGINS not in f.parents)


def test_no_module_outside_the_task_plugins_switches_on_the_task():
    found = [
        f"{path.relative_to(ROOT)}:{line}: {path.read_text().splitlines()[line - 1].strip()}"
        for path in _modules()
        for line in task_switches(path.read_text())
    ]
    assert not found, (
        "task switches outside engine/tasks/ (move the per-task piece into the task's "
        "plugin or its TaskInfo):\n" + "\n".join(found)
    )


@pytest.mark.parametrize(
    ("source", "lines"),
    [
        ('if spec.task.name == "qa":\n    pass\n', [1]),
        ('ok = self.spec.task.name != "classification"\n', [1]),
        ('def f(spec):\n    name = spec.task.name\n    return name in ("qa", "seq2seq")\n', [3]),
        ('match spec.task.name:\n    case "qa":\n        pass\n', [1]),
        ('x = spec.task.name\ny = f"{spec.task.name} run"\nz = spec.data.source == "table"\n', []),
        ('def f(spec, name):\n    return name == "qa"\n', []),  # not bound to the task here
        ('name = spec.task.name\ndef f(name):\n    return name == "qa"\n', []),  # a parameter
    ],
)
def test_the_check_finds_what_is_a_task_switch_and_only_that(source, lines):
    assert task_switches(source) == lines


def test_the_check_finds_the_switches_the_text_placement_used_to_have():
    old = (
        "def _ensemble_writer(run_dir, spec, data):\n"
        "    name = spec.task.name\n"
        '    if name == "qa":\n'
        "        labels = data.start\n"
        "    def write(epoch, red, attempt):\n"
        '        if name != "qa":\n'
        "            red = dict(red)\n"
        "    return write\n"
        "def train_text_model(spec):\n"
        '    qa = spec.task.name == "qa"\n'
    )
    assert task_switches(old) == [3, 6, 10]  # line 6: the outer function's alias, in a closure
