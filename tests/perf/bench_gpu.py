"""GPU check and benchmark of the replica train loops (no Ray, no MLflow needed).

On one CUDA device, in one run, side by side with the same machine's CPUs:

- correctness: a packed ensemble (torch.func) against separate plain training loops
  on the GPU, per-replica final-epoch logits (TF32 off), and a checkpoint resume on
  the GPU (CUDA RNG state restored) against an uninterrupted run, bit for bit;
- seed-epochs per second for the digits recipe (each epoch followed by a prediction
  on all 1,797 samples): plain loop per replica and packed ensembles of growing R on
  the GPU, and the plain loop and packed ensemble on the CPUs;
- the fine-tune loop (``--finetune``): EfficientNet-Lite0 from its ImageNet weights,
  linear probe and full, at 64 and 224 px with AMP, images/s on the GPU and on the
  CPUs (:mod:`bench_finetune`'s loop, the build's own ``run_epochs``);
- the text tasks (``--text``): QA span readers and seq2seq encoder-decoders trained
  side by side on the GPU and on the CPUs (wall per epoch), and the per-sample
  reductions of the same CPU-trained models computed on both devices (max difference);
- packed BatchNorm CNNs (``--bn``): ``cnn_bn`` replicas on Fashion-MNIST packed under
  ``vmap`` for R = 8 ... 1024 (``--bn-packs``), float32 and bfloat16 autocast, one
  epoch each with the prediction on all 70,000 images, seed-epochs/s;
- the Ray placement path on the device (``--e2e``): ``hardbench run
  benchmarks/fashion-mnist.yaml`` with the packed BatchNorm replicas
  (``gpus_per_worker``), the evaluation pool (``gpus_per_actor``) and every evaluated
  model (``gpus``) on the GPU, 3 epochs; its stage times.

Writes ``<out>/gpu.json`` and ``<out>/gpu.md``. Not a test:

    python tests/perf/bench_gpu.py --out tests/perf/results
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from engine.spec import load_spec
from engine.tasks import load_data
from engine.training import train
from engine.training.packed import train_packed

ROOT = Path(__file__).resolve().parents[2]
DIGITS = ROOT / "benchmarks" / "digits.yaml"
FASHION = ROOT / "benchmarks" / "fashion-mnist.yaml"
BN_PACKS = (8, 64, 256, 1024)  # packed cnn_bn replicas per ensemble on the GPU
E2E_OVERRIDES = ["replicas.model=cnn_bn", "replicas.model_kwargs={}", "replicas.pack_size=all",
                 "replicas.pack_engine=vmap", "replicas.gpus_per_worker=1",
                 "replicas.cpus_per_worker=2", "replicas.epochs=3", "evaluate.gpus_per_actor=0.5",
                 "evaluate.cpus_per_actor=1"]  # fmt: skip
OVERRIDES = ["shards.grad_epochs=[]", "scores=[confusion,action]"]
PACK_SIZES = (5, 64, 256)  # replicas per packed ensemble on the GPU


def _plain(recipe, seeds, data, device) -> tuple[float, list[np.ndarray]]:
    tr = data.indices("train")
    last: list[np.ndarray] = []
    start = time.perf_counter()
    for seed in seeds:
        out = {}
        train(recipe.with_seed(seed), data.inputs[tr], data.labels[tr],
              num_classes=data.num_classes, x_score=data.inputs, device=device,
              on_epoch=lambda e, lg, g, out=out: out.__setitem__("lg", lg))  # fmt: skip
        last.append(out["lg"])
    return time.perf_counter() - start, last


def _packed(recipe, seeds, data, device) -> tuple[float, np.ndarray]:
    tr = data.indices("train")
    out = {}
    start = time.perf_counter()
    train_packed(recipe, seeds, data.inputs[tr], data.labels[tr], num_classes=data.num_classes,
                 x_score=data.inputs, device=device,
                 on_epoch=lambda e, lg: out.__setitem__("lg", lg))  # fmt: skip
    return time.perf_counter() - start, np.asarray(out["lg"])


def _resume_check(recipe, data, device) -> bool:
    """Train straight through, then resume from the mid-run checkpoint: same last logits?"""
    import copy

    tr = data.indices("train")
    args = (data.inputs[tr], data.labels[tr])
    kw = {"num_classes": data.num_classes, "x_score": data.inputs, "device": device}
    half = recipe.epochs // 2
    straight, ckpt = {}, {}

    def keep(e: int, state: dict) -> None:
        if e == half:
            ckpt["state"] = copy.deepcopy(state)  # the loop keeps updating live tensors

    train(recipe, *args, **kw, on_checkpoint=keep,
          on_epoch=lambda e, lg, g: straight.__setitem__(e, lg))  # fmt: skip
    resumed = {}
    train(recipe, *args, **kw, resume=ckpt["state"],
          on_epoch=lambda e, lg, g: resumed.__setitem__(e, lg))  # fmt: skip
    last = recipe.epochs - 1
    return bool(np.array_equal(resumed[last], straight[last]))


def finetune_checks(device: torch.device, sizes: tuple[int, ...] = (64, 224)) -> list[dict]:
    """Images/s of the fine-tune loop on ``device`` and on the CPUs (fewer images there)."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_finetune import loop_rate

    rows = []
    for size in sizes:
        for mode in ("linear_probe", "full"):
            gpu = loop_rate(mode, size, 4096, 64, device)
            cpu = loop_rate(mode, size, 256 if size > 64 else 1024, 64, torch.device("cpu"))
            rows.append({"mode": mode, "image_size": size, "device": round(gpu, 1),
                         "cpu": round(cpu, 1)})  # fmt: skip
            print(rows[-1], flush=True)
    return rows


def text_checks(device: torch.device, limit: int = 1500) -> list[dict]:
    """Train both text tasks' side-by-side loops on ``device`` and on the CPUs."""
    import copy

    from engine.data.qa import load_quoref
    from engine.data.seq2seq import load_qasc_fusion
    from engine.spec.model_recipes import TextRecipe
    from engine.training.qa import span_log_probs, train_readers
    from engine.training.seq2seq import reduce_epoch, train_seq2seq

    recipe = TextRecipe(dim=64, layers=2, heads=2, epochs=2, batch_size=32, lr=1e-3)
    rows = []
    for task, data, fit in (
        ("qa", load_quoref(limit=limit), train_readers),
        ("seq2seq", load_qasc_fusion(limit=limit), train_seq2seq),
    ):
        walls = {}
        for dev in (device, torch.device("cpu")):
            start = time.perf_counter()
            models = fit(data, recipe, [0, 1, 2], on_epoch=lambda *a: None, device=dev)
            walls[dev.type] = time.perf_counter() - start
        # The same (CPU-trained) models, reduced on the CPU and on the device.
        moved = [copy.deepcopy(m).to(device) for m in models]
        if task == "qa":
            cpu = np.stack([np.stack(span_log_probs(m, data)) for m in models])
            dev_ = np.stack([np.stack(span_log_probs(m, data, device)) for m in moved])
            finite = np.isfinite(cpu)
            assert np.array_equal(finite, np.isfinite(dev_))
            diff = float(np.max(np.abs(cpu[finite] - dev_[finite])))
        else:
            cpu, dev_ = reduce_epoch(models, data), reduce_epoch(moved, data, device)
            diff = max(float(np.max(np.abs(cpu[k] - dev_[k]))) for k in ("mean_entropy", "loss"))
        rows.append({
            "task": task, "samples": len(data), "replicas": 3, "epochs": recipe.epochs,
            "wall_s_device": round(walls[device.type], 2), "wall_s_cpu": round(walls["cpu"], 2),
            "speedup": round(walls["cpu"] / walls[device.type], 2), "max_abs_diff": diff,
        })  # fmt: skip
        print(rows[-1], flush=True)
    return rows


def bn_checks(device: torch.device, packs: list[int]) -> list[dict]:
    """Seed-epochs/s of packed ``cnn_bn`` replicas on Fashion-MNIST, float32 and bfloat16."""
    from engine.data.cache import take_rows

    if not Path("/usr/share/datasets/fashion-mnist").is_dir():
        print("--bn: Fashion-MNIST is not installed (make datasets); skipped", flush=True)
        return []
    spec = load_spec(FASHION, ["replicas.model=cnn_bn", "replicas.model_kwargs={}",
                               "replicas.epochs=1"])  # fmt: skip
    data = load_data(spec, log=lambda line: None)
    recipe, tr = spec.replicas.recipe, data.indices("train")
    x_train, y_train = take_rows(data.inputs, tr), data.labels[tr]
    rows = []
    for dtype in (None, torch.bfloat16):
        for r in packs:
            start = time.perf_counter()
            train_packed(recipe, list(range(r)), x_train, y_train, num_classes=10,
                         x_score=data.inputs, device=device, engine="vmap", autocast=dtype,
                         on_epoch=lambda e, lg: None)  # fmt: skip
            torch.cuda.synchronize(device) if device.type == "cuda" else None
            wall = time.perf_counter() - start
            rows.append({"replicas": r, "precision": "bf16 autocast" if dtype else "fp32",
                         "wall_s": round(wall, 2), "seed_epochs_per_s": round(r / wall, 2)})  # fmt: skip
            print(rows[-1], flush=True)
    return rows


def e2e_check() -> dict:
    """``hardbench run`` of the Fashion-MNIST spec with its work placed on the GPU."""
    import tempfile

    from engine.lifecycle import run_benchmark

    spec = load_spec(FASHION, [*E2E_OVERRIDES, *[f"evaluate.models[{i}].gpus=0.25"
                                                for i in range(4)]])  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="hardbench-gpu-e2e-") as runs:
        result = run_benchmark(spec, runs_dir=Path(runs), log=print)
    print(f"e2e stages: {result.timings}", flush=True)
    return {"overrides": E2E_OVERRIDES, "stages": result.timings}


def main() -> None:
    """Run the checks and timings; write gpu.json and gpu.md under --out."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "perf" / "results")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--text", action="store_true", help="also time the text tasks")
    parser.add_argument("--finetune", action="store_true", help="also time fine-tuning")
    parser.add_argument("--packs", type=int, nargs="+", default=list(PACK_SIZES),
                        help="replicas per packed ensemble to time on the device")  # fmt: skip
    parser.add_argument("--bn", action="store_true", help="also time packed cnn_bn replicas")
    parser.add_argument("--bn-packs", type=int, nargs="+", default=list(BN_PACKS))
    parser.add_argument("--e2e", action="store_true", help="also run Fashion-MNIST on the GPU")
    args = parser.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    spec = load_spec(DIGITS, OVERRIDES)
    recipe, data = spec.replicas.recipe, load_data(spec)
    seeds5 = [recipe.seed + r for r in range(5)]
    dev = torch.device(args.device)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor()

    _packed(recipe, seeds5[:2], data, dev)  # warm-up: CUDA context, kernels
    _, plain_logits = _plain(recipe, seeds5[:3], data, dev)
    _, packed_logits = _packed(recipe, seeds5[:3], data, dev)
    max_diff = float(np.max(np.abs(packed_logits - np.stack(plain_logits))))
    resume_ok = _resume_check(recipe, data, dev)
    print(f"packed vs plain on {name}: max |logit diff| {max_diff:.2e}; resume bit-identical: "
          f"{resume_ok}", flush=True)  # fmt: skip

    rows = []
    epochs = recipe.epochs

    def add(method: str, device: str, r: int, wall: float) -> None:
        rows.append({"method": method, "device": device, "replicas": r, "wall_s": round(wall, 3),
                     "seed_epochs_per_s": round(r * epochs / wall, 1)})  # fmt: skip
        print(rows[-1], flush=True)

    add("plain loop per replica", name, 5, _plain(recipe, seeds5, data, dev)[0])
    for r in args.packs:
        add("packed ensemble", name, r, _packed(recipe, [recipe.seed + i for i in range(r)],
                                                data, dev)[0])  # fmt: skip
    torch.set_num_threads(os.cpu_count() or 1)
    cpu = f"CPU ({os.cpu_count()} threads)"
    add("plain loop per replica", cpu, 5, _plain(recipe, seeds5, data, "cpu")[0])
    add("packed ensemble", cpu, 5, _packed(recipe, seeds5, data, "cpu")[0])
    text = text_checks(dev) if args.text else []
    finetune = finetune_checks(dev) if args.finetune else []
    bn = bn_checks(dev, args.bn_packs) if args.bn else []
    e2e = e2e_check() if args.e2e else {}
    result = {
        "device": name,
        "torch": torch.__version__,
        "recipe": {"model": recipe.model, "epochs": epochs, "batch_size": recipe.batch_size},
        "packed_vs_plain_max_abs_logit_diff": max_diff,
        "resume_bit_identical": resume_ok,
        "rows": rows,
        "text": text,
        "finetune": finetune,
        "packed_batchnorm": bn,
        "end_to_end": e2e,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu.json").write_text(json.dumps(result, indent=2))
    lines = [
        f"Digits recipe ({recipe.model}, {epochs} epochs, batch {recipe.batch_size}, each epoch "
        f"followed by a prediction on 1,797 samples) on {name} (torch {torch.__version__}), with "
        f"the same machine's CPUs for reference. Packed vs separate plain loops on the GPU (3 "
        f"replicas, TF32 off): max |final logit difference| {max_diff:.1e}; checkpoint resume on "
        f"the GPU equal bit for bit to an uninterrupted run: {resume_ok}.",
        "",
        "| method | device | replicas | wall (s) | seed-epochs/s |",
        "|---|---|---|---|---|",
        *[
            f"| {r['method']} | {r['device']} | {r['replicas']} | {r['wall_s']} | "
            f"{r['seed_epochs_per_s']} |"
            for r in rows
        ],
    ]
    if text:
        lines += [
            "",
            f"Text tasks ({text[0]['samples']} samples, 3 replicas side by side, "
            f"{text[0]['epochs']} epochs, dim 64, 2 layers; each epoch followed by the "
            "per-sample reductions on all samples):",
            "",
            f"| task | wall on {name} (s) | wall on {cpu} (s) | speed-up | max abs difference "
            "of the same models' outputs, device vs CPU |",
            "|---|---|---|---|---|",
            *[
                f"| {r['task']} | {r['wall_s_device']} | {r['wall_s_cpu']} | {r['speedup']}x | "
                f"{r['max_abs_diff']:.1e} |"
                for r in text
            ],
        ]
    if finetune:
        lines += [
            "",
            f"Fine-tuning EfficientNet-Lite0 (ImageNet weights, batch 64, AMP on {name}):",
            "",
            f"| mode | image size | images/s on {name} | images/s on {cpu} |",
            "|---|---|---|---|",
            *[f"| {r['mode']} | {r['image_size']} | {r['device']:,.0f} | {r['cpu']:,.0f} |"
              for r in finetune],
        ]  # fmt: skip
    if bn:
        lines += ["", f"Packed `cnn_bn` replicas (BatchNorm, vmap engine) on Fashion-MNIST on "
                  f"{name}: one epoch over 60,000 images and a prediction on all 70,000:", "",
                  "| replicas | precision | wall (s) | seed-epochs/s |", "|---|---|---|---|",
                  *[f"| {r['replicas']} | {r['precision']} | {r['wall_s']} | "
                    f"{r['seed_epochs_per_s']} |" for r in bn]]  # fmt: skip
    if e2e:
        lines += ["", f"`hardbench run benchmarks/fashion-mnist.yaml` on {name} "
                  f"({' '.join('--set ' + o for o in E2E_OVERRIDES)}, evaluated models and the "
                  "evaluation pool on the GPU):", "", "| stage | seconds |", "|---|---|",
                  *[f"| {k} | {v} |" for k, v in e2e["stages"].items()]]  # fmt: skip
    (args.out / "gpu.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
