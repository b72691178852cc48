"""The job entrypoints' dependency check (jobs/_deps.py) and cluster/requirements.txt."""

import ast
import importlib.metadata
import pkgutil
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import jobs
from engine.cli.common import EXIT_BAD_INPUT
from engine.distributed.jobs import read_runtime_env
from jobs import _deps as deps

ROOT = Path(__file__).resolve().parents[1]
REQUIREMENTS = ROOT / "cluster" / "requirements.txt"
ENTRYPOINTS = sorted(
    m.name for m in pkgutil.iter_modules(jobs.__path__) if not m.name.startswith("_")
)


def _pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib")
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _distribution(requirement: str) -> str:
    """``ray[default]==2.60.0`` -> ``ray``, normalised as PyPI does (PEP 503)."""
    name = re.match(r"[A-Za-z0-9._-]+", requirement).group(0)
    return re.sub(r"[-_.]+", "-", name).lower()


def test_entrypoints_are_found():
    assert {"build_benchmark", "score_run", "evaluate_model"} <= set(ENTRYPOINTS)


@pytest.mark.parametrize("module", ENTRYPOINTS)
def test_an_entrypoint_on_a_python_without_the_dependencies_says_so_in_one_line(module):
    # -S: this interpreter without its site-packages, i.e. only the standard library.
    proc = subprocess.run(
        [sys.executable, "-S", "-m", f"jobs.{module}", "tests/fixtures/tiny.yaml"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == deps.EXIT_MISSING_DEPENDENCIES == 2, proc.stderr
    assert proc.stdout == ""
    (line,) = proc.stderr.splitlines()  # one line, no trace
    version = ".".join(map(str, sys.version_info[:3]))
    assert line.startswith(f"hardbench: the cluster's Python ({sys.executable}, {version}) ")
    missing = line.split(" cannot import ")[1].split(": install")[0].split(", ")
    assert missing == [modules[0] for modules in deps.DEPENDENCIES.values()]
    assert "nodes' environment" in line and "--runtime-env cluster/requirements.txt" in line


def test_only_absent_modules_are_named(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "hb_stray").mkdir()  # a folder named like a package is not the package
    line = deps.check({"json": ("json",), "a": ("hb_no_such_module",), "b": ("hb_stray",)})
    assert "cannot import hb_no_such_module, hb_stray: install" in line
    assert "json" not in line.split(": install")[0]


def test_a_present_but_broken_package_is_named_with_its_error(tmp_path, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "hb_broken").mkdir()
    (tmp_path / "hb_broken" / "__init__.py").write_text(
        textwrap.dedent("""\
            import sys
            sys.stderr.write("A module compiled against NumPy 1.x cannot run in NumPy 2\\n")
            raise ImportError("libhb.so.1: cannot open shared object file\\nsecond line")
        """)
    )
    line = deps.check({"json": ("json", "json.decoder"), "hb-broken": ("hb_broken",)})
    assert (
        "cannot import hb_broken (ImportError: libhb.so.1: cannot open shared object file):" in line
    )
    assert "second line" not in line
    assert capsys.readouterr().err == ""  # the import's warning is held back: one line stays one


def test_a_clean_check_returns_none_and_replays_what_imports_printed(tmp_path, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "hb_noisy.py").write_text(
        "import sys\nsys.stderr.write('hb_noisy says hello\\n')\n"
    )
    try:
        assert deps.check({"json": ("json",), "hb-noisy": ("hb_noisy",)}) is None
    finally:
        sys.modules.pop("hb_noisy", None)
    assert capsys.readouterr().err == "hb_noisy says hello\n"


def test_an_older_python_is_refused(monkeypatch):
    monkeypatch.setattr(deps, "MIN_PYTHON", (99, 0))
    line = deps.check({"json": ("json",)})
    assert "is older than hardbench's 99.0: install Python 99.0+ with hardbench's" in line
    assert "cannot import" not in line


def test_this_environment_passes_the_real_check(capsys):
    assert deps.check() is None  # the virtualenv has every dependency, importable


@pytest.mark.parametrize(
    "path", ["jobs/__init__.py", "jobs/_deps.py", *(f"jobs/{m}.py" for m in ENTRYPOINTS)]
)
def test_what_runs_before_the_check_parses_on_python_3_7(path):
    # An old interpreter must reach the check to say it is too old, not a SyntaxError.
    ast.parse((ROOT / path).read_text(), filename=path, feature_version=(3, 7))


def test_the_refusal_exit_code_is_the_cli_bad_input_code():
    assert deps.EXIT_MISSING_DEPENDENCIES == EXIT_BAD_INPUT


def test_checked_dependencies_are_pyprojects():
    project = _pyproject()["project"]
    wanted = {_distribution(r) for r in project["dependencies"]}
    assert {_distribution(d) for d in deps.DEPENDENCIES} == wanted
    owners = importlib.metadata.packages_distributions()  # import name -> distributions
    for dist, modules in deps.DEPENDENCIES.items():
        assert dist in {_distribution(d) for d in owners.get(modules[0], [])}, (dist, modules)
    minimum = re.fullmatch(r">=\s*(\d+)\.(\d+)", project["requires-python"].strip())
    assert tuple(map(int, minimum.groups())) == deps.MIN_PYTHON


def test_cluster_requirements_are_pyprojects_pins():
    pins = _pyproject()["project"]["dependencies"]
    expected = "\n".join(pins)
    assert read_runtime_env(REQUIREMENTS) == {"pip": pins}, (
        f"{REQUIREMENTS.relative_to(ROOT)} differs from pyproject.toml's dependencies: "
        f"keep its comment header and make its requirement lines:\n{expected}"
    )
    assert (ROOT / deps.REQUIREMENTS_FILE) == REQUIREMENTS
