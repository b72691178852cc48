"""The benchmark specs that ship with hardbench, found by name wherever hardbench is installed.

``benchmarks/<name>.yaml`` is packaged as the ``benchmarks`` package (``pyproject.toml``),
so ``include: fashion-mnist`` and ``--recipe images`` find the same files from an
editable checkout and from an installed wheel, whatever the working directory.
"""

from __future__ import annotations

import difflib
import importlib
from pathlib import Path

from engine.spec.common import SpecError

SHIPPED_PACKAGE = "benchmarks"  # the package that holds the shipped specs
SHIPPED_MARKER = "hardbench"  # its SHIPPED_BY: tells it from another package of that name
SPEC_SUFFIX = ".yaml"  # a shipped spec is <name>.yaml


def is_benchmark_name(text: str) -> bool:
    """Whether ``text`` names a shipped benchmark rather than a file: no slash, no suffix."""
    return bool(text) and "/" not in text and "\\" not in text and not Path(text).suffix


def shipped_dir() -> Path:
    """The folder of the shipped specs.

    Raises:
        SpecError: When the ``benchmarks`` package is missing or is not hardbench's.
    """
    try:
        package = importlib.import_module(SHIPPED_PACKAGE)
    except ImportError:
        raise SpecError(
            f"the shipped benchmarks (package {SHIPPED_PACKAGE!r}) are not installed: "
            "reinstall hardbench (make install)"
        ) from None
    where = list(getattr(package, "__path__", []))
    if getattr(package, "SHIPPED_BY", None) != SHIPPED_MARKER or not where:
        raise SpecError(
            f"the package {SHIPPED_PACKAGE!r} found at {where or package} is not hardbench's "
            "shipped benchmarks (another package of that name comes first on sys.path)"
        )
    return Path(where[0])


def list_benchmarks() -> list[str]:
    """Names of the shipped specs, sorted."""
    return sorted(p.stem for p in shipped_dir().glob(f"*{SPEC_SUFFIX}"))


def benchmark_path(name: str) -> Path:
    """The file of the shipped spec ``name``.

    Raises:
        SpecError: For a name no shipped spec has (with close matches and every name).
    """
    path = shipped_dir() / f"{name}{SPEC_SUFFIX}"
    if not path.is_file():
        names = list_benchmarks()
        close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise SpecError(
            f"no shipped benchmark {name!r}{hint}; shipped: {', '.join(names)} "
            "(hardbench benchmarks describes them; a file is named by its path, e.g. my.yaml)"
        )
    return path


def shipped_hint(include: str) -> str:
    """One sentence for include errors: shipped specs are included by name, and which exist.

    Args:
        include: What the spec wrote; when its file name is a shipped spec's, the
            sentence names that spec.
    """
    try:
        names = list_benchmarks()
    except SpecError as exc:
        return str(exc)
    stem = Path(include).stem
    example = stem if stem in names else "NAME"
    return (
        f"a shipped benchmark is included by its name (include: {example}) from anywhere; "
        f"shipped: {', '.join(names)}"
    )
