"""Run outputs on any pyarrow filesystem: a local path or a URI (s3://, gs://, hdfs://, file://).

A run works in its run directory (local, or a volume every node mounts); when an
output URI is given, the driver mirrors the run directory to ``<uri>/<run_id>/``
after every stage and when the run ends, failed or not. Only files that changed
since the last mirror are uploaded, and ``run.json`` goes last, so a reader of the
destination never sees a status that its files do not back. ``hardbench run
--resume <uri>/<run_id>`` downloads a mirrored run and continues it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs

from engine.layout import RAY_TRAIN_DIR, RUN_FILE

SYNC_STATE = ".hardbench-sync.json"  # in the run dir: what was uploaded, by size and mtime
SKIP_DIRS = (RAY_TRAIN_DIR,)  # Ray Train's own bookkeeping: not an output
LAST = RUN_FILE  # uploaded after everything else
CHUNK = 8 << 20  # bytes per read/write when copying


class StorageError(ValueError):
    """An output location that cannot be used (unknown scheme, run already there)."""


@dataclass(frozen=True)
class Location:
    """A directory on a pyarrow filesystem."""

    fs: pafs.FileSystem
    path: str
    uri: str

    def child(self, *parts: str) -> Location:
        """A location below this one."""
        path = "/".join([self.path.rstrip("/"), *parts])
        return Location(self.fs, path, "/".join([self.uri.rstrip("/"), *parts]))

    def exists(self) -> bool:
        """Whether anything is at this path."""
        return self.fs.get_file_info(self.path).type != pafs.FileType.NotFound


def is_uri(value: str | os.PathLike) -> bool:
    """Whether ``value`` names a filesystem by scheme (``s3://...``) rather than a local path."""
    return "://" in str(value)


def resolve(target: str | os.PathLike | Location) -> Location:
    """A :class:`Location` for a local path or any URI pyarrow understands.

    Raises:
        StorageError: For a URI pyarrow cannot open (unknown scheme, missing support).
    """
    if isinstance(target, Location):
        return target
    text = str(target)
    if not is_uri(text):
        path = str(Path(text).expanduser().resolve())
        return Location(pafs.LocalFileSystem(), path, path)
    try:
        fs, path = pafs.FileSystem.from_uri(text)
    except (pa.ArrowInvalid, ValueError, OSError) as exc:
        raise StorageError(f"cannot open output {text!r}: {exc}") from None
    return Location(fs, path, text)


def _copy(src_fs: pafs.FileSystem, src: str, dst_fs: pafs.FileSystem, dst: str) -> None:
    with src_fs.open_input_stream(src) as fin, dst_fs.open_output_stream(dst) as fout:
        while chunk := fin.read(CHUNK):
            fout.write(chunk)


def _local_files(run_dir: Path) -> list[Path]:
    files = []
    for path in sorted(run_dir.rglob("*")):
        rel = path.relative_to(run_dir)
        if (
            not path.is_file()
            or rel.parts[0] in SKIP_DIRS
            or path.name == SYNC_STATE
            or path.name.startswith(".")  # temp files of writes in progress
        ):
            continue
        files.append(path)
    return files


def check_new_destination(run_id: str, output: str | Location) -> Location:
    """The run's destination ``<output>/<run_id>``; refuses one that already holds a run."""
    dest = resolve(output).child(run_id)
    if dest.child(LAST).exists():
        raise StorageError(f"{dest.uri} already holds a run; outputs are never overwritten")
    return dest


def mirror_run(
    run_dir: Path | str, dest: str | Location, *, log: Callable[[str], None] | None = None
) -> dict:
    """Upload the files of ``run_dir`` that changed since the last mirror to ``dest``.

    Args:
        run_dir: The local run directory.
        dest: The run's destination directory (``<output>/<run_id>``).
        log: Told one line per mirror.

    Returns:
        ``{"uploaded": files, "bytes": bytes uploaded, "unchanged": files skipped}``.
    """
    run_dir = Path(run_dir)
    dest = resolve(dest)
    state_path = run_dir / SYNC_STATE
    state = json.loads(state_path.read_text()) if state_path.exists() else {}
    files = _local_files(run_dir)
    files.sort(key=lambda p: p.relative_to(run_dir).as_posix() == LAST)  # run.json last
    local = pafs.LocalFileSystem()
    uploaded, nbytes = 0, 0
    made: set[str] = set()
    for path in files:
        rel = path.relative_to(run_dir).as_posix()
        st = path.stat()
        stamp = [st.st_size, st.st_mtime_ns]
        if state.get(rel) == stamp:
            continue
        target = dest.child(rel)
        parent = target.path.rsplit("/", 1)[0]
        if parent not in made:
            dest.fs.create_dir(parent, recursive=True)
            made.add(parent)
        _copy(local, str(path), dest.fs, target.path)
        state[rel] = stamp
        uploaded += 1
        nbytes += st.st_size
    tmp = state_path.with_name(f".{SYNC_STATE}.tmp")
    tmp.write_text(json.dumps(state))
    tmp.replace(state_path)
    out = {"uploaded": uploaded, "bytes": nbytes, "unchanged": len(files) - uploaded}
    if log is not None and uploaded:
        log(f"[output] {uploaded} files ({nbytes / 1e6:.1f} MB) -> {dest.uri}")
    return out


def download_run(src: str | Location, runs_dir: Path | str) -> Path:
    """Copy a mirrored run from ``src`` into ``runs_dir/<name>`` (for ``--resume``).

    Raises:
        StorageError: If ``src`` holds no run, or the local directory already exists.
    """
    src = resolve(src)
    if not src.child(LAST).exists():
        raise StorageError(f"{src.uri} holds no run ({LAST} missing)")
    local = Path(runs_dir).expanduser().resolve() / src.path.rstrip("/").rsplit("/", 1)[-1]
    if local.exists():
        raise StorageError(f"{local} exists; resume it directly or move it away")
    selector = pafs.FileSelector(src.path, recursive=True)
    lfs = pafs.LocalFileSystem()
    for info in src.fs.get_file_info(selector):
        if info.type != pafs.FileType.File:
            continue
        rel = info.path[len(src.path.rstrip("/")) + 1 :]
        target = local / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        _copy(src.fs, info.path, lfs, str(target))
    return local
