"""The build's evaluation pool against predicting in one process, side by side, in one run.

On the real Fashion-MNIST package (70,000 28x28 images from the dataset cache), the
first three evaluated models of ``benchmarks/fashion-mnist.yaml`` (small_cnn, cnn_32,
strided_cnn_32) and an EfficientNet-Lite0 folder as a fine-tune writes it (ImageNet
weights, head reset to 10 classes, 32 px transform) predict every sample

- in this process, one model at a time, through the same predictor and the same
  torch threads as the cluster's CPUs (what the build did before the pool),
- on the Ray Data pool (:func:`engine.distributed.evaluation.predict_samples`) with
  one actor of 1 CPU, and with ``actors: auto`` at 0.5 CPU per actor (2 actors on 2
  CPUs), every model in the same actors,
- on one pool per model (to show what one pool for all of them saves),

and the pool's logits are checked against the in-process ones. Not a test:

    python tests/perf/bench_eval_pool.py            # about 5 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from engine.tasks import load_data

ROOT = Path(__file__).resolve().parents[2]
RESULTS = Path(__file__).resolve().parent / "results"
SPEC = ROOT / "benchmarks" / "fashion-mnist.yaml"
EFFNET = "effnet_lite0_32px"


def model_folders(run_dir: Path, spec: object, data: object) -> dict[str, Path]:
    """Saved folders of the spec's evaluated models (their initial weights) and EfficientNet."""
    from engine.layout import MODELS_DIR
    from engine.models import create_model
    from engine.training.finetune import build_model, finetune_preprocess
    from engine.training.model_folder import save_model_folder

    folders = {}
    for entry in [*spec.evaluate.models[:3], None]:
        if entry is None:  # an EfficientNet-Lite0 as a fine-tune saves it
            from engine.spec import parse_spec

            raw = spec.to_dict()
            raw["evaluate"]["models"] = [{"name": EFFNET, "model": "efficientnet_lite0",
                                          "weights": "pretrained",
                                          "finetune": {"mode": "full", "image_size": 32}}]  # fmt: skip
            entry = parse_spec(raw).evaluate.models[0]
            net = build_model("efficientnet_lite0", num_classes=10, input_shape=None,
                              weights="pretrained", model_kwargs={}, seed=0)  # fmt: skip
            extra = {"preprocess": asdict(finetune_preprocess("efficientnet_lite0", 32))}
        else:
            net = create_model(entry.recipe.model, num_classes=10, input_shape=data.input_shape,
                               **entry.recipe.model_kwargs)  # fmt: skip
            extra = None
        save_model_folder(run_dir, entry, net, data, [], extra=extra)
        folders[entry.name] = run_dir / MODELS_DIR / entry.name
    return folders


def in_process(data: object, folder: Path) -> tuple[np.ndarray, float]:
    """One model's logits predicted in this process in blocks of 1,024; seconds."""
    from engine.evaluation.predictor import SplitPredictor

    start = time.perf_counter()
    predictor = SplitPredictor(model_dir=str(folder), input_shape=data.input_shape,
                               cache_dir=str(data.inputs.cache_dir), device="cpu")  # fmt: skip
    out = []
    for s in range(0, len(data.labels), 1024):
        batch = {"sample_id": np.arange(s, min(s + 1024, len(data.labels)))}
        out.append(predictor.logits(batch, predictor.stored_inputs(batch)))
    return np.concatenate(out), time.perf_counter() - start


def main() -> None:
    """Run the benchmark; write ``results/eval_pool.{json,md}``."""
    import ray
    import ray.data

    from engine.distributed.evaluation import predict_samples
    from engine.spec import load_spec

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(args.cpus)
    spec = load_spec(SPEC)
    with tempfile.TemporaryDirectory(prefix="hb-evalpool-") as tmp:
        run_dir = Path(tmp)
        data = load_data(spec, run_dir, lambda line: None)
        n = len(data.labels)
        folders = model_folders(run_dir, spec, data)
        rows = []
        reference = {}
        total = 0.0
        for name, folder in folders.items():
            reference[name], took = in_process(data, folder)
            total += took
            rows.append({"how": "in process", "models": name, "seconds": round(took, 2),
                         "samples_per_s": round(n / took)})  # fmt: skip
            print(rows[-1], flush=True)
        rows.append({"how": "in process", "models": "all, one after another",
                     "seconds": round(total, 2), "samples_per_s": round(n / total)})  # fmt: skip
        ray.init(address="local", num_cpus=args.cpus, include_dashboard=False,
                 log_to_driver=False)  # fmt: skip
        ray.data.DataContext.get_current().enable_progress_bars = False
        worst = 0.0
        try:
            for label, kwargs in (("pool, 1 actor x 1 CPU", {"actors": 1, "cpus_per_actor": 1.0}),
                                  ("pool, auto (0.5 CPU per actor)",
                                   {"actors": "auto", "cpus_per_actor": 0.5})):  # fmt: skip
                for f in folders.values():
                    (f / "predictions.parquet").unlink(missing_ok=True)
                start = time.perf_counter()
                got = predict_samples(data, folders, block_size=spec.shards.block_size,
                                      log=lambda line: None, **kwargs)  # fmt: skip
                took = time.perf_counter() - start
                worst = max(worst, *(float(np.abs(got[k] - reference[k]).max()) for k in got))
                rows.append({"how": label, "models": "all, one pool", "seconds": round(took, 2),
                             "samples_per_s": round(n / took)})  # fmt: skip
                print(rows[-1], flush=True)
            start = time.perf_counter()
            for name, f in folders.items():
                f.joinpath("predictions.parquet").unlink(missing_ok=True)
                predict_samples(data, {name: f}, actors="auto", cpus_per_actor=0.5,
                                block_size=spec.shards.block_size, log=lambda line: None)  # fmt: skip
            took = time.perf_counter() - start
            rows.append({"how": "pool, auto (0.5 CPU per actor)", "models": "one pool per model",
                         "seconds": round(took, 2), "samples_per_s": round(n / took)})  # fmt: skip
            print(rows[-1], flush=True)
        finally:
            ray.shutdown()
    out = {"cpus": args.cpus, "samples": n, "models": list(folders),
           "max_abs_logit_difference": worst, "rows": rows}  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "eval_pool.json").write_text(json.dumps(out, indent=2))
    md = [
        f"# Evaluation pool vs in-process prediction ({args.cpus} CPUs, Fashion-MNIST, "
        f"{n:,} samples)",
        "",
        f"`python tests/perf/bench_eval_pool.py --cpus {args.cpus}` (all in one run). Models: "
        f"{', '.join(folders)}. Max |pool logit - in-process logit|: {worst:.1e}.",
        "",
        "| how | models | seconds | samples/s (all models) |",
        "|---|---|---|---|",
        *(f"| {r['how']} | {r['models']} | {r['seconds']} | {r['samples_per_s']:,} |"
          for r in rows),
    ]  # fmt: skip
    (args.out / "eval_pool.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
