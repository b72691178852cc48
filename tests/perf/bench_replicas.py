"""Replica-engine benchmark: a BatchNorm CNN's seed replicas on Fashion-MNIST, six ways.

All on this machine, in one run, side by side (R replicas x E epochs of the
Fashion-MNIST spec's replica, every epoch followed by a prediction on all 70,000
images, as a run records them):

- seed-epochs per second of: a plain PyTorch loop per replica in one process; Ray
  Tune with one trial per seed (what a user would write by hand: each trial trains
  one seed and predicts every epoch); the packed ensemble in one process; one Ray
  Train worker per replica (``train_replicas``, unpacked, writing its shards); the
  packs as Ray tasks (``train_replicas``, ``pack_size: all``, writing its shards);
- the FLOP floor: the replica's FLOPs per seed-epoch (torch's ``FlopCounterMode``,
  split into convolutions and the rest) over the conv and matmul rates measured here;
- optionally (``--e2e``) ``hardbench run benchmarks/fashion-mnist.yaml`` stage by
  stage: ingest cold, then cached, and the overhead shares of the way to the split
  files.

Writes ``results/replicas.json`` and ``results/replicas.md``. Not a test:

    python tests/perf/bench_replicas.py --e2e          # or: make bench
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
from bench_training import matmul_gflops  # tests/perf is this script's sys.path[0]

from engine.data.cache import take_rows
from engine.distributed.cluster import ray_session
from engine.distributed.ingest import load_run_data
from engine.distributed.replicas import train_replicas
from engine.lifecycle import run_benchmark
from engine.models import create_model
from engine.spec import BenchmarkSpec, load_spec
from engine.training import train
from engine.training.packed import train_packed

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parents[2]
FASHION = ROOT / "benchmarks" / "fashion-mnist.yaml"
CONV_OPS = ("convolution", "convolution_backward")  # FlopCounterMode's names for conv work
BUILD_STAGES = ("ray_init", "ingest", "train_replicas", "score", "build")  # run -> split files


def conv_gflops(threads: int, repeats: int = 5) -> float:
    """Best fp32 3x3 convolution rate (GFLOP/s): 64 -> 64 channels on 64 28x28 maps."""
    torch.set_num_threads(threads)
    x, w = torch.randn(64, 64, 28, 28), torch.randn(64, 64, 3, 3)
    torch.nn.functional.conv2d(x, w, padding=1)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        torch.nn.functional.conv2d(x, w, padding=1)
        best = min(best, time.perf_counter() - t)
    return 2 * 64 * 64 * 9 * 64 * 28 * 28 / best / 1e9


def flops_per_seed_epoch(spec: BenchmarkSpec, data) -> tuple[float, float]:
    """(convolution FLOPs, other FLOPs) of one replica-epoch: the steps and the prediction."""
    from torch.utils.flop_counter import FlopCounterMode

    recipe = spec.replicas.recipe
    model = create_model(recipe.model, num_classes=data.num_classes,
                         input_shape=data.input_shape, **recipe.model_kwargs)  # fmt: skip
    n_train, n_all = len(data.indices("train")), len(data.labels)
    x = torch.as_tensor(data.inputs[: recipe.batch_size])
    y = torch.as_tensor(data.labels[: recipe.batch_size])
    with FlopCounterMode(display=False) as step:
        torch.nn.functional.cross_entropy(model(x), y).backward()
    with FlopCounterMode(display=False) as pred, torch.no_grad():
        model.eval()
        model(x)
    conv = other = 0.0
    for counter, per_batch in ((step, n_train / recipe.batch_size), (pred, n_all / len(x))):
        for op, n in counter.get_flop_counts()["Global"].items():
            if str(op).split(".")[-1] in CONV_OPS:  # e.g. aten.convolution
                conv += n * per_batch
            else:
                other += n * per_batch
    return conv, other


def time_plain(spec: BenchmarkSpec, data, threads: int) -> float:
    """Seconds for R separate single-process training loops (predicting every epoch)."""
    torch.set_num_threads(threads)
    tr = data.indices("train")
    x_train, y_train = take_rows(data.inputs, tr), data.labels[tr]
    start = time.perf_counter()
    for seed in spec.replicas.seeds():
        train(spec.replicas.recipe.with_seed(seed), x_train, y_train,
              num_classes=data.num_classes, x_score=data.inputs,
              on_epoch=lambda e, lg, g: None)  # fmt: skip
    return time.perf_counter() - start


def time_packed(spec: BenchmarkSpec, data, threads: int, engine: str) -> float:
    """Seconds for one packed ensemble of all R replicas in this process."""
    torch.set_num_threads(threads)
    tr = data.indices("train")
    start = time.perf_counter()
    train_packed(spec.replicas.recipe, spec.replicas.seeds(), take_rows(data.inputs, tr),
                 data.labels[tr], num_classes=data.num_classes, x_score=data.inputs,
                 on_epoch=lambda e, lg: None, engine=engine)  # fmt: skip
    return time.perf_counter() - start


def _tune_trial(config: dict) -> None:
    """One Tune trial: one seed trained by hand, predicting every sample after each epoch."""
    from ray import tune

    spec = load_spec(config["spec"], config["overrides"])
    data = load_run_data(spec, config["run_dir"], log=lambda line: None)
    torch.set_num_threads(1)
    tr = data.indices("train")
    train(spec.replicas.recipe.with_seed(config["seed"]), take_rows(data.inputs, tr),
          data.labels[tr], num_classes=data.num_classes, x_score=data.inputs,
          on_epoch=lambda e, lg, g: tune.report({"epoch": e, "mean_logit": float(lg.mean())}))  # fmt: skip


def time_tune(spec: BenchmarkSpec, overrides: list[str], run_dir: Path, cpus: int,
              work: Path) -> float:  # fmt: skip
    """Seconds for Ray Tune to run one trial per seed (1 CPU each, ``cpus`` at a time)."""
    from ray import tune

    start = time.perf_counter()
    tuner = tune.Tuner(
        tune.with_resources(_tune_trial, {"cpu": 1}),
        param_space={
            "seed": tune.grid_search(spec.replicas.seeds()),
            "spec": str(FASHION),
            "overrides": overrides,
            "run_dir": str(run_dir),
        },
        tune_config=tune.TuneConfig(max_concurrent_trials=cpus),
        run_config=tune.RunConfig(storage_path=str(work / "tune"), name="seeds"),
    )
    results = tuner.fit()
    wall = time.perf_counter() - start
    if results.errors:
        raise RuntimeError(f"Tune trials failed: {results.errors[0]}")
    return wall


def time_ray_train(spec: BenchmarkSpec, run_dir: Path) -> tuple[float, int]:
    """``train_replicas`` into ``run_dir`` (its dataset cache already there): wall, workers."""
    start = time.perf_counter()
    info = train_replicas(run_dir, spec, log=lambda line: None)
    return time.perf_counter() - start, info["workers"]


def end_to_end(work: Path) -> dict:
    """``hardbench run`` of the Fashion-MNIST spec with a cold cache, then the cached ingest."""
    runs = work / "e2e"
    cold = run_benchmark(load_spec(FASHION), runs_dir=runs, log=lambda line: None).timings
    print(f"e2e cold: {cold}", flush=True)
    again = run_benchmark(load_spec(FASHION, ["replicas.epochs=1", "replicas.count=2",
                                              "evaluate.models=[]"]),
                          runs_dir=runs, log=lambda line: None).timings  # fmt: skip
    stages = {"ingest_cold": cold["ingest"], "ingest_cached": again["ingest"]}
    stages |= {k: v for k, v in cold.items() if k != "ingest"}
    to_splits = sum(cold[s] for s in BUILD_STAGES if s != "ingest") + again["ingest"]
    return {
        "stages": stages,
        "to_split_files_s": round(to_splits, 3),
        "scoring_share_of_build": round(cold["score"] / to_splits, 4),
        "overhead_share_of_hard_benchmark": round(1 - cold["train_replicas"] / to_splits, 4),
    }


def main() -> None:
    """Run everything and write results/replicas.{json,md}."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--model", default=None, help="replica model (default: the spec's)")
    parser.add_argument("--e2e", action="store_true", help="also time hardbench run, by stage")
    args = parser.parse_args()
    cpus = os.cpu_count() or 1
    overrides = [f"replicas.count={args.replicas}", f"replicas.epochs={args.epochs}",
                 "replicas.cpus_per_worker=1", "replicas.num_workers=auto"]  # fmt: skip
    if args.model:
        overrides += [f"replicas.model={args.model}", "replicas.model_kwargs={}"]
    spec = load_spec(FASHION, overrides)
    work = Path(tempfile.mkdtemp(prefix="hardbench-replica-bench-"))
    rows, e2e = [], None
    try:
        with ray_session(num_cpus=cpus):
            run_dir = work / "run"
            run_dir.mkdir()
            data = load_run_data(spec, run_dir, log=lambda line: None)  # ingests once
            r, e, n = spec.replicas.count, spec.replicas.recipe.epochs, len(data.labels)
            conv, other = flops_per_seed_epoch(spec, data)
            conv_rate, mm_rate = conv_gflops(cpus), matmul_gflops(cpus)
            floor_s = conv / (conv_rate * 1e9) + other / (mm_rate * 1e9)
            print(f"{spec.replicas.recipe.model}: {conv / 1e9:.2f} GFLOP conv + {other / 1e9:.2f} "
                  f"other per seed-epoch; conv {conv_rate:.0f}, matmul {mm_rate:.0f} GFLOP/s "
                  f"-> floor {1 / floor_s:.2f} seed-epochs/s", flush=True)  # fmt: skip
            rows.append(
                ("plain PyTorch loop per replica (1 process)", time_plain(spec, data, cpus))
            )
            for engine in ("vmap", "loop"):
                rows.append((f"packed ensemble, {engine} engine (1 process)",
                             time_packed(spec, data, cpus, engine)))  # fmt: skip
            print(rows, flush=True)
            rows.append((f"Ray Tune, one trial per seed ({cpus} at a time)",
                         time_tune(spec, overrides, run_dir, cpus, work)))  # fmt: skip
            one_pack = ["replicas.pack_size=all", f"replicas.cpus_per_worker={cpus}",
                        "replicas.num_workers=1"]  # fmt: skip
            for label, extra in (("Ray Train, one worker per replica", []),
                                 ("Ray Train, one worker per replica, Ray Data prediction",
                                  ["shards.predict=ray_data"]),
                                 ("Ray task, one packed ensemble, vmap engine",
                                  [*one_pack, "replicas.pack_engine=vmap"]),
                                 ("Ray task, one packed ensemble, loop engine",
                                  [*one_pack, "replicas.pack_engine=loop"])):  # fmt: skip
                each = work / label.replace(",", "").replace(" ", "_")
                each.mkdir()
                shutil.copy(run_dir / "dataset.json", each / "dataset.json")
                wall, workers = time_ray_train(load_spec(FASHION, [*overrides, *extra]), each)
                rows.append((f"{label} ({workers} workers)", wall))
                print(rows[-1], flush=True)
        if args.e2e:
            e2e = end_to_end(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    seed_epochs = r * e
    floor = 1 / floor_s
    speed = [{"method": m, "wall_s": round(w, 2), "seed_epochs_per_s": round(seed_epochs / w, 3),
              "floor_share": round(seed_epochs / w / floor, 4)} for m, w in rows]  # fmt: skip
    by = {s["method"].split(" (")[0]: s["seed_epochs_per_s"] for s in speed}
    packed_task = max(by["Ray task, one packed ensemble, vmap engine"],
                      by["Ray task, one packed ensemble, loop engine"])  # fmt: skip
    packed_local = max(by["packed ensemble, vmap engine"], by["packed ensemble, loop engine"])
    result = {
        "machine": {
            "cpus": cpus,
            "platform": platform.platform(),
            "torch": torch.__version__,
            "conv_gflops": round(conv_rate, 1),
            "matmul_gflops": round(mm_rate, 1),
        },
        "recipe": {
            "replicas": r,
            "epochs": e,
            "model": spec.replicas.recipe.model,
            "model_kwargs": spec.replicas.recipe.model_kwargs,
            "samples": n,
            "gflop_per_seed_epoch": round((conv + other) / 1e9, 3),
            "conv_share_of_flops": round(conv / (conv + other), 3),
            "floor_seed_epochs_per_s": round(floor, 2),
        },
        "speed": speed,
        "packed_bn_vs_one_worker_per_replica": round(
            packed_task / by["Ray Train, one worker per replica"], 2
        ),
        "packed_bn_vs_plain_loop": round(packed_local / by["plain PyTorch loop per replica"], 2),
        "packed_bn_vmap_vs_plain_loop": round(
            by["packed ensemble, vmap engine"] / by["plain PyTorch loop per replica"], 2
        ),
        "packed_bn_floor_share": round(packed_local / floor, 4),
        "packed_bn_vs_tune": round(packed_task / by["Ray Tune, one trial per seed"], 2),
        "ray_data_vs_inline_prediction": round(
            by["Ray Train, one worker per replica, Ray Data prediction"]
            / by["Ray Train, one worker per replica"],
            2,
        ),
    }
    if e2e:
        result.update(e2e)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "replicas.json").write_text(json.dumps(result, indent=2))
    lines = [
        f"Fashion-MNIST: R={r} x E={e} = {seed_epochs} seed-epochs of "
        f"{spec.replicas.recipe.model} {spec.replicas.recipe.model_kwargs} (BatchNorm), each "
        f"epoch predicting all {n:,} images; {(conv + other) / 1e9:.2f} GFLOP per seed-epoch "
        f"({conv / (conv + other):.0%} convolutions); {cpus} CPUs, conv {conv_rate:.0f} and "
        f"matmul {mm_rate:.0f} GFLOP/s measured in the same run -> floor {floor:.2f} "
        "seed-epochs/s.",
        "",
        "| method | wall (s) | seed-epochs/s | share of the FLOP floor |",
        "|---|---|---|---|",
        *[
            f"| {s['method']} | {s['wall_s']} | {s['seed_epochs_per_s']} | {s['floor_share']:.2%} |"
            for s in speed
        ],
        "",
        *[
            f"- `{k}`: {result[k]}"
            for k in (
                "packed_bn_vs_one_worker_per_replica",
                "packed_bn_vs_plain_loop",
                "packed_bn_vmap_vs_plain_loop",
                "packed_bn_floor_share",
                "packed_bn_vs_tune",
                "ray_data_vs_inline_prediction",
            )
        ],
    ]
    if e2e:
        total = sum(v for k, v in e2e["stages"].items() if k not in ("total", "ingest_cold"))
        lines += ["", "| `hardbench run benchmarks/fashion-mnist.yaml` stage | seconds | share |",
                  "|---|---|---|",
                  *[f"| {k} | {v} | {'' if k in ('total', 'ingest_cold') else f'{v / total:.1%}'} |"
                    for k, v in e2e["stages"].items()],
                  "", f"- `scoring_share_of_build`: {e2e['scoring_share_of_build']}",
                  f"- `overhead_share_of_hard_benchmark`: {e2e['overhead_share_of_hard_benchmark']} "
                  "(everything but replica training from `hardbench run` to the split files, "
                  "cache warm)"]  # fmt: skip
    (RESULTS / "replicas.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
