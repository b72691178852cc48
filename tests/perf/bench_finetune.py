"""Fine-tuning throughput of EfficientNet-Lite0 against the machine's FLOP floor, in one run.

For each mode (linear probe, full) at each image size, the real fine-tune loop
(:func:`engine.training.finetune.run_epochs`, pretrained weights, head reset to 10
classes, AdamW) trains on synthetic 28x28 grey images resized as Fashion-MNIST would
be; side by side, the same process measures

- the FLOPs of one training step per image: the forward pass counted by
  ``torch.utils.flop_counter`` (0.77 GFLOPs at 224 px, EfficientNet-Lite0's published
  0.39 GMACs), times 3 for full fine-tuning (backward = 2x forward; the counter's own
  backward count is wrong for depthwise convolutions, up to 40x too high) and times
  1 for a linear probe (the head's backward is 25k FLOPs), and
- the machine's float32 matmul rate (a 2048^3 ``torch.mm``, best of 5),

so the floor is ``matmul FLOP/s / FLOPs per image`` images/s: what the loop would reach
if every FLOP ran at the matmul rate (depthwise convolutions never do). Not a test:

    python tests/perf/bench_finetune.py --threads 2 --sizes 32 64
    python tests/perf/bench_finetune.py --device cuda     # on a lent GPU (AMP on)
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from engine.evaluation.predictor import FORWARD_BATCH as PREDICT_BATCH
from engine.spec.finetune import FinetuneOptions
from engine.training.finetune import (
    build_model,
    finetune_preprocess,
    freeze_backbone,
    make_loop,
    run_epochs,
    transform,
)

RESULTS = Path(__file__).resolve().parent / "results"
MODEL = "efficientnet_lite0"
MATMUL_N = 2048  # side of the matmul that measures the machine's float32 rate


def matmul_flops(device: torch.device, repeats: int = 5) -> float:
    """Best float32 matmul FLOP/s of ``repeats`` (2 N^3 FLOPs each)."""
    a = torch.randn(MATMUL_N, MATMUL_N, device=device)
    b = torch.randn(MATMUL_N, MATMUL_N, device=device)
    best = float("inf")
    for _ in range(repeats + 1):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        torch.mm(a, b)
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return 2 * MATMUL_N**3 / best


BACKWARD_FACTOR = 3  # forward + backward (activations and weights) of a full step, in forwards


def step_flops(mode: str, size: int) -> float:
    """FLOPs per image of one training step: the counted forward, x3 when every weight learns."""
    from torch.utils.flop_counter import FlopCounterMode

    model = build_model(MODEL, num_classes=10, input_shape=(1, 28, 28), weights=None,
                        model_kwargs={}, seed=0).eval()  # fmt: skip
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.randn(2, 3, size, size))
    forward = counter.get_total_flops() / 2
    return forward * (BACKWARD_FACTOR if mode == "full" else 1)


def loop_rate(mode: str, size: int, n: int, batch: int, device: torch.device) -> float:
    """Images/s of the fine-tune loop (the second of two epochs: the first warms up)."""
    rng = np.random.default_rng(0)
    inputs = rng.random((n, 1, 28, 28), dtype=np.float32)
    labels = rng.integers(0, 10, n)
    opts = FinetuneOptions(mode=mode, epochs=2, batch_size=batch, lr=1e-3, image_size=size)
    model = build_model(MODEL, num_classes=10, input_shape=(1, 28, 28), weights="pretrained",
                        model_kwargs={}, seed=0).to(device)  # fmt: skip
    trainable = (freeze_backbone(model, MODEL) if mode == "linear_probe"
                 else list(model.parameters()))  # fmt: skip
    loop = make_loop(model, trainable, opts, n // batch, device, 0, 0)
    rates = []
    run_epochs(model, model, MODEL, inputs, labels, opts, loop, seed=0, rank=0, world=1,
               device=device, on_epoch=lambda e, m, s: rates.append(m["images_per_s"]))  # fmt: skip
    return rates[-1]


def predict_rate(size: int, n: int, device: torch.device) -> float:
    """Images/s of evaluation (forward only, the fine-tuned transform)."""
    model = build_model(MODEL, num_classes=10, input_shape=(1, 28, 28), weights=None,
                        model_kwargs={}, seed=0).to(device).eval()  # fmt: skip
    x = np.random.default_rng(0).random((n, 1, 28, 28), dtype=np.float32)
    pre = finetune_preprocess(MODEL, size)
    with torch.no_grad():
        model(transform(x[:64], pre, device))
        start = time.perf_counter()
        for s in range(0, n, PREDICT_BATCH):
            model(transform(x[s : s + PREDICT_BATCH], pre, device))
        if device.type == "cuda":
            torch.cuda.synchronize()
    return n / (time.perf_counter() - start)


def main() -> None:
    """Run the benchmark; write ``results/finetune[_cuda].{json,md}``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--n", type=int, default=1024, help="images per epoch")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    peak = matmul_flops(device)
    rows = []
    for size in args.sizes:
        for mode in ("linear_probe", "full"):
            flops = step_flops(mode, size)
            rate = loop_rate(mode, size, args.n, args.batch, device)
            floor = peak / flops
            rows.append({"mode": mode, "image_size": size, "images_per_s": round(rate, 1),
                         "gflops_per_image": round(flops / 1e9, 4),
                         "floor_images_per_s": round(floor, 1),
                         "share_of_floor": round(rate / floor, 3)})  # fmt: skip
            print(rows[-1], flush=True)
        rows.append({"mode": "predict", "image_size": size,
                     "images_per_s": round(predict_rate(size, args.n, device), 1)})  # fmt: skip
        print(rows[-1], flush=True)
    where = f"{args.threads} CPU threads" if device.type == "cpu" else torch.cuda.get_device_name()
    out = {"device": where, "matmul_gflops": round(peak / 1e9, 1), "batch": args.batch,
           "n": args.n, "rows": rows}  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "finetune" if device.type == "cpu" else f"finetune_{device.type}"
    (args.out / f"{stem}.json").write_text(json.dumps(out, indent=2))
    md = [
        f"# Fine-tuning EfficientNet-Lite0 ({where}, float32 matmul {peak / 1e9:.0f} GFLOP/s)",
        "",
        f"`python tests/perf/bench_finetune.py --threads {args.threads} --sizes "
        f"{' '.join(map(str, args.sizes))}` (batch {args.batch}, all in one run)",
        "",
        "| mode | image size | images/s | GFLOPs / image (step) | FLOP floor images/s | share |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r["mode"] == "predict":
            md.append(f"| predict (eval) | {r['image_size']} | {r['images_per_s']:,.0f} | | | |")
        else:
            md.append(f"| {r['mode']} | {r['image_size']} | {r['images_per_s']:,.0f} | "
                      f"{r['gflops_per_image']} | {r['floor_images_per_s']:,.0f} | "
                      f"{r['share_of_floor']:.2f} |")  # fmt: skip
    (args.out / f"{stem}.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
