"""The ``imagefolder`` source: ``DIR/<class>/<image>``, or a flat folder of unlabelled images.

Class names are the sorted names of the folders directly under ``DIR``; a folder may
nest deeper (every image below ``DIR/cat`` is a ``cat``). A ``DIR`` holding images
and no class folders is an unlabelled pool. Keys are paths relative to ``DIR``, so
the same files give the same sample ids on any machine, in any listing order. Hidden
files (``.DS_Store``) are not samples; any other non-image file is bad input.
"""

from __future__ import annotations

import os
from pathlib import Path

from engine.data.paths import IMAGE_SUFFIXES, data_root, inside
from engine.data.registry import (
    BadInputError,
    Item,
    Listing,
    SourceConfig,
    SourceInfo,
    register_source,
)


def _walk(root: Path) -> list[tuple[str, os.DirEntry]]:
    """``(key, entry)`` of every non-hidden file below ``root``, sorted by key.

    Symlinks (to folders or files) are followed when they stay inside ``root`` and
    refused otherwise; only symlinks need resolving, so listing costs one ``scandir``
    entry per file.
    """
    out, seen = [], set()
    stack = [""]
    while stack:
        rel = stack.pop()
        folder = root / rel if rel else root
        real = os.path.realpath(folder)
        if real in seen:  # a symlink cycle
            continue
        seen.add(real)
        with os.scandir(folder) as entries:
            for e in entries:
                if e.name.startswith("."):
                    continue
                key = f"{rel}/{e.name}" if rel else e.name
                if e.is_symlink():
                    inside(root, key, key)
                if e.is_dir():
                    stack.append(key)
                elif e.is_file():
                    out.append((key, e))
    out.sort(key=lambda pair: pair[0])
    return out


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
    for key, entry in _walk(root):
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
    names = [p.name for p in class_dirs] if labelled else None
    return Listing(items=items, kind="image", class_names=names, skipped=skipped)


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
