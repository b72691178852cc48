"""Partial cache folders of a killed build are removed by the next build of that cache; a live
build's folder never is.

Builders are real processes: a child that made its folder with ``make_tmp_folder`` and
exited (gone) or still waits (alive). Folders of another host and folders of older
versions (no owner record) go once nothing in them changed for ``STALE_TMP_S``.
"""

import json
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from engine.data.cache import META_FILE
from engine.data.ingest import ingest, plan_ingest
from engine.data.sources import stratified_split
from engine.data.text import MAX_LEN, VOCAB_SIZE
from engine.data.text_cache import KEY_CHARS as TEXT_KEY_CHARS
from engine.data.text_cache import cached_text_data
from engine.data.tmpdirs import OWNER_FILE, STALE_TMP_S, make_tmp_folder, remove_stale_tmp
from engine.data.tokens import KEY_CHARS, TOKENS_DIR, token_inputs, token_key
from engine.spec.sources import SourceConfig

ROOT = Path(__file__).resolve().parents[2]
BLOCK = 512  # samples per block of the digits cache
DIGITS = SourceConfig(source="sklearn_digits")
MAKE = (
    "import sys; from engine.data.tmpdirs import make_tmp_folder; "
    "tmp = make_tmp_folder(sys.argv[1], sys.argv[2]); (tmp / 'blocks').mkdir(); "
    "(tmp / 'blocks' / 'block=00000.npy').write_bytes(b'half a block'); "
    "print(tmp, flush=True); sys.stdin.read()"
)  # a builder: makes its partial folder, writes into it, then waits until stdin closes


class Builder:
    """A child process that made a partial folder (``.tmp``) and is alive until :meth:`exit`."""

    def __init__(self, root: Path, name: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", MAKE, str(root), name],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.tmp = Path(self.proc.stdout.readline().strip())
        assert self.tmp.is_dir(), self.proc.communicate()

    def exit(self) -> None:
        self.proc.communicate(timeout=60)  # closes stdin; waits, so the pid is gone


def _age(folder: Path, seconds: float) -> None:
    old = time.time() - seconds
    for path in [*folder.rglob("*"), folder]:
        os.utime(path, (old, old), follow_symlinks=False)


def _tmp_folders(root: Path) -> list[Path]:
    return sorted(root.glob(".*.tmp"))


def test_a_dead_builders_folder_is_removed_by_the_next_ingest(tmp_path):
    root, lines = tmp_path / "cache", []
    name = plan_ingest(DIGITS, block_size=BLOCK).folder_name
    builder = Builder(root, name)
    builder.exit()
    owner = json.loads((builder.tmp / OWNER_FILE).read_text())
    assert owner["pid"] == builder.proc.pid and owner["host"] == socket.gethostname()

    cache = ingest(DIGITS, root, block_size=BLOCK, log=lines.append)
    assert cache.num_samples == 1797 and (root / name / META_FILE).is_file()
    assert not builder.tmp.exists() and _tmp_folders(root) == []
    assert lines[0] == (
        f"[ingest] removed a stale partial cache {builder.tmp} "
        f"(builder pid {builder.proc.pid} on {socket.gethostname()} is gone)"
    )


def test_a_live_builders_folder_is_left_alone_until_it_is_gone(tmp_path):
    root, lines = tmp_path / "cache", []
    name = plan_ingest(DIGITS, block_size=BLOCK).folder_name
    builder = Builder(root, name)
    try:
        _age(builder.tmp, 2 * STALE_TMP_S)  # a live builder's folder is kept, however old
        cache = ingest(DIGITS, root, block_size=BLOCK, log=lines.append)
        assert cache.num_samples == 1797
        assert _tmp_folders(root) == [builder.tmp]
        assert (builder.tmp / "blocks" / "block=00000.npy").read_bytes() == b"half a block"
        assert not [line for line in lines if "stale" in line]
    finally:
        builder.exit()
    assert remove_stale_tmp(root, name, lines.append) == [builder.tmp]


def test_a_reused_pid_is_not_the_builder(tmp_path):
    root = tmp_path / "cache"
    tmp = make_tmp_folder(root, "c")  # this process: alive
    assert remove_stale_tmp(root, "c") == []
    owner = json.loads((tmp / OWNER_FILE).read_text())
    (tmp / OWNER_FILE).write_text(json.dumps({**owner, "pid_start": "1"}))  # started another time
    assert remove_stale_tmp(root, "c", lambda line: None) == [tmp]


def test_two_concurrent_ingests_of_a_source_both_succeed(tmp_path):
    root, results, errors = tmp_path / "cache", [], []

    def build() -> None:
        try:
            results.append(ingest(DIGITS, root, block_size=BLOCK, log=lambda line: None))
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=build) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert errors == [] and len(results) == 2
    assert results[0].path == results[1].path and results[0].num_samples == 1797
    assert _tmp_folders(root) == []


@pytest.mark.parametrize("owner", ["older version", "another host"])
def test_a_folder_that_cannot_be_checked_goes_once_unchanged_for_a_day(tmp_path, owner):
    root, name, lines = tmp_path / "cache", "digits-0123", []
    tmp = root / f".{name}.0badcafe.tmp"
    (tmp / "blocks").mkdir(parents=True)
    (tmp / "blocks" / "block=00000.npy").write_bytes(b"partial")
    if owner == "another host":
        record = {"host": "some-other-host", "pid": 4242, "pid_start": "99", "created": 0}
        (tmp / OWNER_FILE).write_text(json.dumps(record))
    _age(tmp, STALE_TMP_S - 3600)
    (tmp / "blocks" / "block=00000.npy").touch()  # written just now, deep in the folder
    assert remove_stale_tmp(root, name, lines.append) == []
    _age(tmp, STALE_TMP_S - 3600)
    assert remove_stale_tmp(root, name, lines.append) == []
    _age(tmp, STALE_TMP_S + 2 * 3600)
    # nothing that is not one of this cache's partial folders is touched
    others = [root / name, root / f".{name}x.0badcafe.tmp", root / f".{name}.0badcafe.tmp.d"]
    for path in others:
        path.mkdir()
        _age(path, 2 * STALE_TMP_S)
    (root / f".{name}.1badcafe.tmp").symlink_to(root / name)
    assert remove_stale_tmp(root, name, lines.append) == [tmp]
    why = (
        "no owner record (an older version)"
        if owner == "older version"
        else "builder pid 4242 on some-other-host, another host"
    )
    assert lines == [
        f"[ingest] removed a stale partial cache {tmp} ({why}, changed nothing for 26 h)"
    ]
    assert all(p.exists() for p in others) and (root / f".{name}.1badcafe.tmp").is_symlink()


@dataclass
class Toy:
    """A tokenized-table stand-in: one array field, one list field, one scalar."""

    ids: np.ndarray
    words: list
    name: str

    def __len__(self) -> int:
        return len(self.ids)


def test_the_text_and_token_caches_remove_a_dead_builders_folder(tmp_path):
    key, lines = "ab" * 32, []
    root = tmp_path / "text"
    builder = Builder(root, f"qa-{key[:TEXT_KEY_CHARS]}")
    builder.exit()
    toy = Toy(np.arange(5), ["a", "b"], "toy")
    data, folder = cached_text_data(Toy, "qa", key, root, lambda: toy, log=lines.append)
    assert list(data.ids) == list(range(5)) and data.words == ["a", "b"]
    assert folder == root / f"qa-{key[:TEXT_KEY_CHARS]}" and (folder / META_FILE).is_file()
    assert not builder.tmp.exists() and _tmp_folders(root) == []
    assert lines[0].startswith(f"[tokens] removed a stale partial cache {builder.tmp} (builder")

    texts = [f"{w} film number {i}" for i in range(40) for w in ("good", "bad")][:60]
    table = tmp_path / "reviews.jsonl"
    table.write_text("\n".join(json.dumps({"t": t, "y": int(t.startswith("good"))}) for t in texts))
    source = SourceConfig(source="table", path=str(table), text_column="t", label_column="y")
    cache = ingest(source, tmp_path / "cache", block_size=16, log=lambda line: None)
    split = stratified_split(cache.labels(), 0.3, 0)
    train = np.asarray(split) == "train"
    name = token_key(cache.fingerprint, train, max_len=MAX_LEN, vocab_size=VOCAB_SIZE)[:KEY_CHARS]
    builder = Builder(cache.path / TOKENS_DIR, name)
    builder.exit()
    lines.clear()
    ids = token_inputs(cache, split, log=lines.append)
    assert ids.shape == (60, MAX_LEN) and ids.cache_dir.name == name
    assert not builder.tmp.exists() and _tmp_folders(cache.path / TOKENS_DIR) == []
    assert lines[0].startswith(f"[tokens] removed a stale partial cache {builder.tmp} (builder")
