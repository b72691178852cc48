"""Paths a source may read: never outside its data root, never written."""

from __future__ import annotations

import os
from pathlib import Path

from engine.data.errors import BadInputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")  # read


def data_root(path: str | None, what: str) -> Path:
    """The folder or file ``data.path`` names, which must exist.

    Raises:
        BadInputError: When ``path`` is unset or does not exist.
    """
    if not path:
        raise BadInputError("data.path", f"the {what} source needs data.path")
    p = Path(path)
    if not p.exists():
        raise BadInputError(str(p), "does not exist")
    return p


def inside(root: Path, relative: str, key: str) -> Path:
    """``root / relative``, refused when it leaves ``root``.

    A path is refused when it is absolute, climbs out with ``..``, or resolves (through
    a symlink anywhere on the way) to a file outside ``root``.

    Args:
        root: The data root (a table's folder, an image folder).
        relative: The path as the source spells it.
        key: The row or sample, named in the error.

    Raises:
        BadInputError: Naming ``key`` and the path.
    """
    rel = Path(relative)
    if rel.is_absolute() or relative.startswith(("/", "\\")):
        raise BadInputError(key, f"path {relative!r} is absolute; paths must stay inside {root}")
    real_root = Path(os.path.realpath(root))
    target = Path(os.path.realpath(root / rel))
    if target != real_root and real_root not in target.parents:
        raise BadInputError(key, f"path {relative!r} leads outside the data root {root}")
    return root / rel


def stat_file(path: Path) -> tuple[int, int]:
    """``(size, mtime_ns)`` of ``path``, for the fingerprint."""
    st = path.stat()
    return st.st_size, st.st_mtime_ns
