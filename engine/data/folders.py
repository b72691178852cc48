"""The ``imagefolder`` source: ``DIR/<class>/<image>``, or a flat folder of unlabelled images.

Class names are the sorted names of the folders directly under ``DIR``; a folder may
nest deeper (every image below ``DIR/cat`` is a ``cat``). A ``DIR`` holding images
and no class folders is an unlabelled pool. Keys are paths relative to ``DIR``, so
the same files give the same sample ids on any machine, in any listing order. Hidden
files (``.DS_Store``) are not samples; any other non-image file is bad input.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from engine.data.errors import BadInputError
from engine.data.paths import IMAGE_SUFFIXES, data_root, inside
from engine.data.registry import Item, Listing, SourceInfo, register_source
from engine.spec.sources import SourceConfig


def _walk(root: Path, on_bad: str, skipped: list[tuple[str, str]]) -> list[tuple[str, os.DirEntry]]:
    """``(key, entry)`` of every non-hidden file below ``root``, sorted by key.

    Symlinks (to folders or files) are followed when they stay inside ``root``; one
    that leads outside it, that loops or that points nowhere is bad input: an error
    naming it, or with ``on_bad: skip`` left out and added to ``skipped``. A folder
    reached twice (a symlink to a folder above it) is listed once. Only symlinks need
    resolving, so listing costs one ``scandir`` entry per file.
    """
    out, seen = [], set()
    stack = [""]
    while stack:
        rel = stack.pop()
        folder = root / rel if rel else root
        real = os.path.realpath(folder)
        if real in seen:  # a symlink back to a folder already listed
            continue
        seen.add(real)
        with os.scandir(folder) as entries:
            for e in entries:
                if e.name.startswith("."):
                    continue
                key = f"{rel}/{e.name}" if rel else e.name
                try:
                    if e.is_symlink():
                        _check_link(root, key)
                    is_dir, is_file = e.is_dir(), e.is_file()
                except BadInputError as exc:  # named by its full path; listed by its key
                    if on_bad != "skip":
                        raise
                    skipped.append((key, exc.reason))
                    continue
                if is_dir:
                    stack.append(key)
                elif is_file:
                    out.append((key, e))
    out.sort(key=lambda pair: pair[0])
    return out


def _check_link(root: Path, key: str) -> None:
    """Refuse a symlink that loops, dangles or leads outside ``root``.

    Raises:
        BadInputError: Naming the link (its path under ``root``) and what is wrong.
    """
    path = root / key
    try:
        os.stat(path)  # follows the link: ELOOP for a cycle, ENOENT for a dangling link
    except OSError as exc:
        what = "loops" if exc.errno == errno.ELOOP else f"cannot be followed ({exc.strerror})"
        raise BadInputError(str(path), f"symlink {what}") from None
    try:
        inside(root, key, str(path))
    except OSError as exc:
        raise BadInputError(str(path), f"symlink cannot be resolved ({exc.strerror})") from None


def list_image_folder(config: SourceConfig) -> Listing:
    """List ``config.path`` as class folders (labelled) or a flat folder (unlabelled).

    Raises:
        BadInputError: When the folder is missing or empty, mixes top-level images with
            class folders, holds a non-image file (``on_bad: error``), or a symlink
            leads outside it.
    """
    root = data_root(config.path, "imagefolder")
    if not root.is_dir():
        raise BadInputError(str(root), "imagefolder needs a folder")
    top = sorted(p for p in root.iterdir() if not p.name.startswith("."))
    class_dirs = [p for p in top if p.is_dir()]
    top_files = [p for p in top if p.is_file()]
    if class_dirs and top_files:
        raise BadInputError(
            str(root),
            f"holds both class folders ({class_dirs[0].name}, ...) and images at its top "
            f"({top_files[0].name}, ...): use one layout",
        )
    labelled = bool(class_dirs)
    items, skipped = [], []
    for key, entry in _walk(root, config.on_bad, skipped):
        stem, dot, ext = entry.name.rpartition(".")
        suffix = dot + ext if stem else ""  # os.path.splitext's suffix, at a third of its cost
        if suffix.lower() not in IMAGE_SUFFIXES:
            reason = f"not an image file (suffix {suffix or 'none'!r})"
            if config.on_bad == "skip":
                skipped.append((key, reason))
                continue
            raise BadInputError(str(root / key), reason)
        st = entry.stat()
        label = key.split("/", 1)[0] if labelled else None
        items.append(Item(key=key, label=label, split=None, where=key, size=st.st_size,
                          mtime_ns=st.st_mtime_ns))  # fmt: skip
    left_out = {key for key, _ in skipped}  # a skipped class folder (a bad symlink) is no class
    names = [p.name for p in class_dirs if p.name not in left_out] if labelled else None
    return Listing(items=items, kind="image", class_names=names, skipped=skipped,
                   class_names_from=f"the class folders of {root}")  # fmt: skip


def read_image_files(config: SourceConfig, items: list[Item]) -> list[object]:
    """The encoded bytes of each item's file, or the :class:`BadInputError` it raised."""
    root = Path(config.path)
    out: list[object] = []
    for item in items:
        try:
            out.append((root / str(item.where)).read_bytes())
        except OSError as exc:
            out.append(BadInputError(str(root / str(item.where)), f"unreadable: {exc.strerror}"))
    return out


register_source(
    SourceInfo(
        name="imagefolder",
        description="DIR/<class>/<image> (PNG, JPEG, WebP, ...), or a flat folder: unlabelled",
        list_items=list_image_folder,
        read_items=read_image_files,
    )
)
