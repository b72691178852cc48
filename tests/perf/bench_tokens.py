"""Token cache benchmark: what a worker's load of a text table costs, tokenizing in memory vs opening the cache.

Writes a JSONL table of N review snippets (default 200,000: the sentiment corpus's
12,752 snippets, each repeated with a numbered suffix, so the vocabulary is real and
every text distinct), ingests it once, then measures side by side in one run:

- what every process did before the token cache: learn the vocabulary from the
  training texts and encode all N texts into an int64 (N, 48) array (time and bytes,
  per process: the driver, each replica worker, each evaluation actor);
- building the token cache once in this process, and on the Ray Data pool of a local
  cluster of ``--cpus`` CPUs (texts/s);
- what a process does now: open the token cache (its memory maps) and gather one
  batch of 64 rows, and a full pass over all N rows in batches of 512.

The ids of every path are checked equal. Not a test: run it by hand or with
``make bench``.

    python tests/perf/bench_tokens.py --n 200000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
BLOCK = 4096  # the sentiment benchmark's block size


def write_table(path: Path, n: int) -> None:
    """``n`` distinct snippets with fresh/rotten labels as JSONL."""
    from engine.data.text import SENTIMENT_CLASSES, read_sentiment_corpus

    texts, labels = read_sentiment_corpus()
    with path.open("w") as f:
        for i in range(n):
            j = i % len(texts)
            text = texts[j] if i < len(texts) else f"{texts[j]} (take {i // len(texts)})"
            f.write(json.dumps({"text": text, "label": SENTIMENT_CLASSES[labels[j]]}) + "\n")


def main() -> None:
    """Run the benchmark and write ``results/tokens.{json,md}``."""
    from engine.data.ingest import ingest
    from engine.data.sources import stratified_split
    from engine.data.text import encode, train_tokenizer
    from engine.data.tokens import token_inputs
    from engine.distributed.cluster import ray_session
    from engine.distributed.ingest import ray_map_chunks
    from engine.spec.sources import SourceConfig

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--cpus", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hb-tokens-"))
    quiet = lambda line: None  # noqa: E731
    try:
        write_table(work / "t.jsonl", args.n)
        cfg = SourceConfig(source="table", path=str(work / "t.jsonl"), text_column="text")
        cache = ingest(cfg, work / "cache", block_size=BLOCK, log=quiet)
        split = stratified_split(cache.labels(), 0.3, 0)
        texts = cache.texts()

        t = time.perf_counter()
        tok = train_tokenizer([x for x, s in zip(texts, split, strict=True) if s == "train"])
        in_memory = encode(tok, texts)
        memory_s = time.perf_counter() - t

        t = time.perf_counter()
        local = token_inputs(cache, split, log=quiet)
        local_s = time.perf_counter() - t
        folder = local.cache_dir
        shutil.rmtree(folder)
        with ray_session(args.cpus):  # the cluster's start is not tokenizing time
            # Another split first, so the pool's workers are warm for the one measured.
            warm = stratified_split(cache.labels(), 0.3, 1)
            token_inputs(cache, warm, map_chunks=ray_map_chunks, log=quiet)
            t = time.perf_counter()
            remote = token_inputs(cache, split, map_chunks=ray_map_chunks, log=quiet)
            ray_s = time.perf_counter() - t
        assert remote.cache_dir == folder

        t = time.perf_counter()
        opened = token_inputs(cache, split, log=quiet)
        batch = opened[np.sort(np.random.default_rng(0).choice(args.n, 64, replace=False))]
        open_s = time.perf_counter() - t
        t = time.perf_counter()
        full = np.concatenate([opened[s : s + 512] for s in range(0, args.n, 512)])
        pass_s = time.perf_counter() - t
        np.testing.assert_array_equal(full, in_memory)
        assert batch.dtype == np.int64
        disk = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out = {
        "n": args.n, "cpus": args.cpus, "block_size": BLOCK,
        "in_memory_seconds_per_process": round(memory_s, 2),
        "in_memory_mib_per_process": round(in_memory.nbytes / 2**20, 1),
        "cache_build_local_seconds": round(local_s, 2),
        "cache_build_local_texts_per_s": round(args.n / local_s),
        "cache_build_ray_seconds": round(ray_s, 2),
        "cache_build_ray_texts_per_s": round(args.n / ray_s),
        "open_and_one_batch_seconds": round(open_s, 4),
        "full_pass_seconds": round(pass_s, 3),
        "cache_mib_on_disk": round(disk / 2**20, 1),
        "ids_equal": True,
    }  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "tokens.json").write_text(json.dumps(out, indent=2))
    md = [
        f"# Token cache: a JSONL table of {args.n:,} review snippets, {args.cpus} CPUs",
        "",
        "`python tests/perf/bench_tokens.py` (all in one run; ids equal on every path)",
        "",
        "| what | seconds | texts/s | memory per process |",
        "|---|---|---|---|",
        f"| before: each process learns the vocabulary and encodes all texts | {memory_s:.2f} | "
        f"{args.n / memory_s:,.0f} | {in_memory.nbytes / 2**20:,.1f} MiB int64 |",
        f"| token cache built once, in process | {local_s:.2f} | {args.n / local_s:,.0f} | |",
        f"| token cache built once, Ray Data pool ({args.cpus} CPUs, workers warm) | {ray_s:.2f} | "
        f"{args.n / ray_s:,.0f} | |",
        f"| now: each process opens the cache and gathers a batch of 64 | {open_s:.4f} | | "
        "memory maps (page cache, shared) |",
        f"| a full pass over all rows in batches of 512 | {pass_s:.3f} | {args.n / pass_s:,.0f} | |",
        "",
        f"Token cache on disk: {disk / 2**20:,.1f} MiB (uint16).",
    ]
    (RESULTS / "tokens.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
