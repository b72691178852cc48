"""Training benchmark: packed seed ensembles vs one Ray Train worker per replica vs a plain loop.

All on this machine, in one run, side by side:

- seed-epochs per second for the digits recipe (R replicas x E epochs of the MLP,
  each epoch followed by a prediction on all 1,797 samples): a plain single-process
  PyTorch loop per replica, the packed ensemble in one process, and through
  ``train_replicas`` on a local Ray cluster with one Ray Train worker per replica and
  with one packed worker (both write their shards);
- the floor: the recipe's FLOPs per seed-epoch (counted by torch's
  ``FlopCounterMode``) over this machine's fp32 matmul rate measured here;
- bytes per (sample, epoch, replica) on disk for each shard mode;
- end-to-end ``hardbench run`` stage times for the digits spec, unpacked and packed.

Writes ``results/training.json`` and ``results/training.md``. Not a test:

    python tests/perf/bench_training.py            # or: make bench
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import torch

from engine.data import load_dataset
from engine.distributed.cluster import ray_session
from engine.distributed.replicas import train_replicas
from engine.lifecycle import run_benchmark
from engine.models import create_model
from engine.spec import load_spec
from engine.training import train
from engine.training.packed import train_packed

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parents[2]
DIGITS = ROOT / "benchmarks" / "digits.yaml"
NO_VOG = [
    "shards.grad_epochs=[]",
    "scores=[confusion,action,aum,forgetting,confidence,variability,correctness]",
]  # the packed modes record no input gradients


def matmul_gflops(threads: int, n: int = 1024, repeats: int = 20) -> float:
    """Best fp32 matmul rate (GFLOP/s) with ``threads`` torch threads."""
    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def flops_per_seed_epoch(spec, data) -> float:
    """FLOPs of one replica-epoch: every training step plus the prediction on all samples."""
    from torch.utils.flop_counter import FlopCounterMode

    recipe = spec.replicas.recipe
    model = create_model(recipe.model, num_classes=data.num_classes,
                         input_shape=data.input_shape, **recipe.model_kwargs)  # fmt: skip
    n_train = len(data.indices("train"))
    x = torch.as_tensor(data.inputs[: recipe.batch_size])
    y = torch.as_tensor(data.labels[: recipe.batch_size])
    with FlopCounterMode(display=False) as step:
        torch.nn.functional.cross_entropy(model(x), y).backward()
    with FlopCounterMode(display=False) as pred, torch.no_grad():
        model(torch.as_tensor(data.inputs))
    return step.get_total_flops() * n_train / recipe.batch_size + pred.get_total_flops()


def time_plain(spec, data, threads: int) -> float:
    """Seconds for R separate single-process training loops (predicting every epoch)."""
    torch.set_num_threads(threads)
    tr = data.indices("train")
    start = time.perf_counter()
    for seed in spec.replicas.seeds():
        train(spec.replicas.recipe.with_seed(seed), data.inputs[tr], data.labels[tr],
              num_classes=data.num_classes, x_score=data.inputs,
              on_epoch=lambda e, lg, g: None)  # fmt: skip
    return time.perf_counter() - start


def time_packed(spec, data, threads: int) -> float:
    """Seconds for one packed ensemble of all R replicas in this process."""
    torch.set_num_threads(threads)
    tr = data.indices("train")
    start = time.perf_counter()
    train_packed(spec.replicas.recipe, spec.replicas.seeds(), data.inputs[tr], data.labels[tr],
                 num_classes=data.num_classes, x_score=data.inputs,
                 on_epoch=lambda e, lg: None)  # fmt: skip
    return time.perf_counter() - start


def ray_train(spec, work: Path, name: str) -> dict:
    """``train_replicas`` into a fresh run directory; wall time and shard bytes."""
    run_dir = work / name
    run_dir.mkdir(parents=True)
    start = time.perf_counter()
    info = train_replicas(run_dir, spec, log=lambda line: None)
    wall = time.perf_counter() - start
    rows = [json.loads(p.read_text())["rows"] for p in run_dir.glob("preds/**/_manifest.json")]
    train_s = sum(r["seconds"] for rs in rows for r in rs)  # worker time from start to last epoch
    nbytes = sum(p.stat().st_size for p in run_dir.glob("preds/**/*.parquet"))
    return {"wall_s": wall, "workers": info["workers"], "bytes": nbytes,
            "worker_epoch_s": train_s}  # fmt: skip


def top_k_confusion_error(
    k_classes: int = 1000, r: int = 3, e: int = 5, n: int = 2000, tops=(5, 10, 20, 50)
) -> list[dict]:
    """Confusion-score error of top-k shards on synthetic ImageNet-like predictions.

    Logits are Gaussian with a per-sample temperature chosen so the mean top-1
    probability is about 0.75 (a trained ResNet-50's on ImageNet is near that); each
    replica adds its own noise. The error is measured against the exact confusion and
    set beside Audenaert's bound (T log(K-1) + h(T), T = mean tail mass).
    """
    import numpy as np
    from scipy.stats import spearmanr

    from engine.scores import confusion
    from engine.shards.writer import top_k_of

    rng = np.random.default_rng(0)
    base = rng.normal(size=(1, 1, n, k_classes))
    temp = rng.uniform(3.5, 12.0, size=(1, 1, n, 1))
    logits = (base + 0.5 * rng.normal(size=(r, e, n, k_classes))) * temp
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    exact = confusion(probs)
    out = []
    for top in tops:
        vals, idx = top_k_of(probs.reshape(-1, k_classes), top)
        rest = np.clip(1 - vals.sum(1), 0, None)
        rebuilt = np.repeat((rest / (k_classes - top))[:, None], k_classes, axis=1)
        np.put_along_axis(rebuilt, idx.astype(np.int64), vals, axis=1)
        approx = confusion(rebuilt.reshape(probs.shape))
        err = np.abs(approx - exact)
        t = rest.reshape(r, e, n).mean(0)
        h = -(t * np.log(np.maximum(t, 1e-300))) - (1 - t) * np.log(np.maximum(1 - t, 1e-300))
        bound = (t * np.log(k_classes - 1) + h).mean(0)
        out.append({
            "top_k": top,
            "mean_top1": round(float(probs.max(-1).mean()), 3),
            "mean_tail_mass": round(float(rest.mean()), 4),
            "max_abs_error": round(float(err.max()), 4),
            "mean_abs_error": round(float(err.mean()), 4),
            "mean_bound": round(float(bound.mean()), 4),
            "error_over_ln_k": round(float(err.mean() / np.log(k_classes)), 5),
            "spearman_vs_exact": round(float(spearmanr(approx, exact).statistic), 4),
            "top10pct_overlap": round(float(len(np.intersect1d(
                np.argsort(-approx)[: n // 10], np.argsort(-exact)[: n // 10])) / (n // 10)), 3),
            # float16 values + int32 classes, then sample_id 8, loss/label/margin/pred/sumsq 4 each
            "bytes_per_sample_epoch_replica": top * 2 + top * 4 + 28,
        })  # fmt: skip
        print(f"top-k {out[-1]}", flush=True)
    return out


def main() -> None:
    """Run everything and write results/training.{json,md}."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-e2e", action="store_true", help="skip the end-to-end runs")
    args = parser.parse_args()
    cpus = os.cpu_count() or 1
    spec = load_spec(DIGITS)
    data = load_dataset(spec.data.source, heldout_fraction=spec.data.heldout_fraction,
                        split_seed=spec.data.split_seed)  # fmt: skip
    r, e, n = spec.replicas.count, spec.replicas.recipe.epochs, len(data.labels)
    seed_epochs = r * e
    print(
        f"digits recipe: R={r} replicas x E={e} epochs of {spec.replicas.recipe.model}", flush=True
    )

    gflops = matmul_gflops(cpus)
    flops = flops_per_seed_epoch(spec, data)
    floor = gflops * 1e9 / flops
    print(f"matmul {gflops:.1f} GFLOP/s on {cpus} threads; {flops / 1e6:.1f} MFLOP per "
          f"seed-epoch -> floor {floor:.0f} seed-epochs/s", flush=True)  # fmt: skip

    topk = top_k_confusion_error()
    rows = []
    plain = time_plain(spec, data, cpus)
    rows.append(("plain PyTorch loop per replica (1 process)", plain))
    packed = time_packed(spec, data, cpus)
    rows.append(("packed ensemble, torch.func (1 process)", packed))
    work = Path(tempfile.mkdtemp(prefix="hardbench-train-bench-"))
    modes = {}
    try:
        with ray_session(num_cpus=cpus):
            unpacked = load_spec(DIGITS, ["replicas.num_workers=auto", "replicas.cpus_per_worker=1",
                                          "shards.probs_dtype=float16", *NO_VOG])  # fmt: skip
            res = ray_train(unpacked, work, "unpacked")
            rows.append(
                (f"Ray Train, one worker per replica ({res['workers']} workers)", res["wall_s"])
            )
            modes["full, float16, one worker per replica"] = res["bytes"]
            one_pack = [f"replicas.cpus_per_worker={cpus}", "replicas.pack_size=all", *NO_VOG]
            res = ray_train(
                load_spec(DIGITS, [*one_pack, "shards.probs_dtype=float16"]), work, "packed"
            )
            rows.append(("Ray task, one packed ensemble (all replicas)", res["wall_s"]))
            modes["full, float16, packed"] = res["bytes"]
            for mode, extra in (("full, float32", ["shards.probs_dtype=float32"]),
                                ("mean (packed, float16)", ["shards.mode=mean"]),
                                ("reduced (packed)", ["shards.mode=reduced"])):  # fmt: skip
                res = ray_train(load_spec(DIGITS, [*one_pack, *extra]), work, mode.split()[0] + "x")
                modes[mode] = res["bytes"]
            print(f"Ray runs done: {rows[2:]}", flush=True)
        e2e = {}
        if not args.skip_e2e:
            for label, overrides in (("digits (unpacked, default spec)", []),
                                     ("digits packed, reduced shards", [*one_pack, "shards.mode=reduced"])):  # fmt: skip
                result = run_benchmark(load_spec(DIGITS, overrides), runs_dir=work / "e2e",
                                       log=lambda line: None)  # fmt: skip
                e2e[label] = result.timings
                print(f"e2e {label}: {result.timings}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    speed = [{"method": m, "wall_s": round(w, 2), "seed_epochs_per_s": round(seed_epochs / w, 2)}
             for m, w in rows]  # fmt: skip
    base = {s["method"]: s["seed_epochs_per_s"] for s in speed}
    per_replica_worker = next(v for k, v in base.items() if k.startswith("Ray Train, one worker"))
    packed_worker = base["Ray task, one packed ensemble (all replicas)"]
    full16 = modes["full, float16, one worker per replica"]
    bytes_rows = [{"mode": m, "bytes": b, "bytes_per_sample_epoch_replica": round(b / (n * e * r), 2),
                   "vs_full_float16": round(full16 / b, 2)} for m, b in modes.items()]  # fmt: skip
    result = {
        "machine": {
            "cpus": cpus,
            "platform": platform.platform(),
            "matmul_gflops": round(gflops, 1),
        },
        "recipe": {
            "replicas": r,
            "epochs": e,
            "model": spec.replicas.recipe.model,
            "samples": n,
            "mflop_per_seed_epoch": round(flops / 1e6, 2),
            "floor_seed_epochs_per_s": round(floor, 1),
        },
        "speed": speed,
        "packed_vs_one_worker_per_replica": round(packed_worker / per_replica_worker, 2),
        "shard_bytes": bytes_rows,
        "top_k_confusion_error_k1000": topk,
        "end_to_end_s": e2e,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "training.json").write_text(json.dumps(result, indent=2))
    lines = [
        f"Digits recipe: R={r} x E={e} = {seed_epochs} seed-epochs of a {spec.replicas.recipe.model} "
        f"({flops / 1e6:.1f} MFLOP per seed-epoch incl. the prediction on {n:,} samples); "
        f"{cpus} CPUs, fp32 matmul {gflops:.1f} GFLOP/s measured in the same run -> floor "
        f"{floor:,.0f} seed-epochs/s.",
        "",
        "| method | wall (s) | seed-epochs/s | share of the FLOP floor |",
        "|---|---|---|---|",
        *[
            f"| {s['method']} | {s['wall_s']} | {s['seed_epochs_per_s']} | "
            f"{s['seed_epochs_per_s'] / floor:.2%} |"
            for s in speed
        ],
        "",
        f"Packed ensemble (one Ray task) vs one Ray Train worker per replica: "
        f"{result['packed_vs_one_worker_per_replica']}x (both walls include start-up "
        "and the shard writes).",
        "",
        "| shard mode | bytes on disk | bytes per (sample, epoch, replica) | full float16 / this |",
        "|---|---|---|---|",
        *[
            f"| {b['mode']} | {b['bytes']:,} | {b['bytes_per_sample_epoch_replica']} | "
            f"{b['vs_full_float16']}x |"
            for b in bytes_rows
        ],
    ]
    lines += [
        "",
        "Top-k shards at K=1000 (synthetic ImageNet-like predictions, R=3, E=5, N=2,000; "
        f"mean top-1 probability {topk[0]['mean_top1']}): confusion error vs exact, ln K = 6.91.",
        "",
        "| k | bytes per (sample, epoch, replica) | mean tail mass | mean abs error | max abs error "
        "| mean bound | Spearman vs exact | top-10% overlap |",
        "|---|---|---|---|---|---|---|---|",
        *[
            f"| {t['top_k']} | {t['bytes_per_sample_epoch_replica']} (full float16: {2 * 1000 + 24:,}) | "
            f"{t['mean_tail_mass']} | {t['mean_abs_error']} | {t['max_abs_error']} | {t['mean_bound']} "
            f"| {t['spearman_vs_exact']} | {t['top10pct_overlap']} |"
            for t in topk
        ],
    ]
    if e2e:
        stages = list(dict.fromkeys(k for t in e2e.values() for k in t))
        lines += ["", "| `hardbench run` stage (s) | " + " | ".join(e2e) + " |",
                  "|---|" + "---|" * len(e2e),
                  *[f"| {s} | " + " | ".join(str(t.get(s, "")) for t in e2e.values()) + " |"
                    for s in stages]]  # fmt: skip
    (RESULTS / "training.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
