"""Why packed BatchNorm CNN replicas do not beat a plain loop on these CPUs.

Side by side in one run, for the Fashion-MNIST replica (``strided_cnn``, width 8)
at R replicas x batch 128 on 28x28 images:

- one training step of all R replicas: a loop of separate models (eager, then
  channels-last, then ``torch.compile``), and one network holding the R replicas
  as grouped convolutions (Packed-Ensembles: ``groups=R``; BatchNorm over R*C
  channels is per-replica BatchNorm; the head a grouped 1x1 convolution);
- each convolution layer alone (forward + backward at the step's shapes), separate
  and grouped, as GFLOP/s against the rate of a 64 -> 64 channel 3x3 convolution
  measured in the same run (the FLOP floor of ``bench_replicas.py``).

Writes ``results/pack_kernels.json`` and ``results/pack_kernels.md``. Not a test:

    python tests/perf/bench_pack_kernels.py
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from collections.abc import Callable
from pathlib import Path

import torch
from bench_replicas import conv_gflops  # tests/perf is this script's sys.path[0]
from torch import nn

from engine.models import create_model

RESULTS = Path(__file__).resolve().parent / "results"


def ms_per_call(fn: Callable[[], object], repeats: int, warmup: int = 5) -> float:
    """Best-of-3 mean milliseconds per call of ``fn`` over ``repeats`` calls."""
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
        best = min(best, (time.perf_counter() - start) / repeats)
    return best * 1e3


class GroupedStridedNet(nn.Module):
    """R ``strided_cnn`` replicas as one network of grouped convolutions.

    Input (B, R, 28, 28): replica r's own batch in channel r. Output (B, R, classes).
    """

    def __init__(self, replicas: int, width: int, num_classes: int, side: int = 28) -> None:
        super().__init__()
        r, w = replicas, width
        self.replicas, self.num_classes = r, num_classes
        self.features = nn.Sequential(
            nn.Conv2d(r, r * w, 5, stride=2, padding=2, bias=False, groups=r),
            nn.BatchNorm2d(r * w),
            nn.ReLU(inplace=True),
            nn.Conv2d(r * w, r * 2 * w, 3, stride=2, padding=1, bias=False, groups=r),
            nn.BatchNorm2d(r * 2 * w),
            nn.ReLU(inplace=True),
        )
        out = math.ceil(math.ceil(side / 2) / 2)
        self.head = nn.Conv2d(r * 2 * w * out * out, r * num_classes, 1, groups=r)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x)
        b = h.shape[0]
        h = h.reshape(b, self.replicas, -1).reshape(b, -1, 1, 1)
        return self.head(h).reshape(b, self.replicas, self.num_classes)


def step_timings(replicas: int, batch: int, width: int, repeats: int) -> dict[str, float]:
    """Milliseconds per training step of all replicas, four ways."""
    torch.manual_seed(0)
    xs = [torch.randn(batch, 1, 28, 28) for _ in range(replicas)]
    ys = [torch.randint(0, 10, (batch,)) for _ in range(replicas)]
    loss_fn = nn.CrossEntropyLoss()

    def make_loop(channels_last: bool, compiled: bool) -> Callable[[], None]:
        models = [
            create_model("strided_cnn", num_classes=10, input_shape=(1, 28, 28), width=width)
            for _ in range(replicas)
        ]
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        models = [m.to(memory_format=fmt) for m in models]
        opts = [torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9) for m in models]
        calls = [torch.compile(m) if compiled else m for m in models]
        inputs = [x.contiguous(memory_format=fmt) for x in xs]

        def step() -> None:
            for call, opt, x, y in zip(calls, opts, inputs, ys, strict=True):
                opt.zero_grad(set_to_none=True)
                loss_fn(call(x), y).backward()
                opt.step()

        return step

    grouped = GroupedStridedNet(replicas, width, 10)
    g_opt = torch.optim.SGD(grouped.parameters(), lr=0.05, momentum=0.9)
    g_x, g_y = torch.cat(xs, 1), torch.stack(ys, 1)

    def grouped_step() -> None:
        g_opt.zero_grad(set_to_none=True)
        out = grouped(g_x)
        (loss_fn(out.reshape(-1, 10), g_y.reshape(-1)) * replicas).backward()
        g_opt.step()

    out = {
        "loop_eager": ms_per_call(make_loop(False, False), repeats),
        "loop_channels_last": ms_per_call(make_loop(True, False), repeats),
        "grouped_conv": ms_per_call(grouped_step, repeats),
    }
    compiled = make_loop(False, True)
    start = time.perf_counter()
    compiled()
    out["loop_compiled_first_step_s"] = time.perf_counter() - start
    out["loop_compiled"] = ms_per_call(compiled, repeats)
    return out


def layer_rates(replicas: int, batch: int, width: int, repeats: int) -> list[dict]:
    """GFLOP/s of each convolution, forward + backward, separate (x R) and grouped."""
    layers = [("conv1 5x5/2", 1, width, 5, 28), ("conv2 3x3/2", width, 2 * width, 3, 14)]
    rows = []
    for name, cin, cout, k, side in layers:
        out_side = -(-side // 2)
        passes = 2 if cin == 1 else 3  # forward, weight grad, input grad (not for the image)
        flops = passes * 2 * batch * cout * cin * k * k * out_side * out_side * replicas
        rates = {}
        for kind, groups in (("separate", 1), ("grouped", replicas)):
            n_conv = replicas if groups == 1 else 1
            per = replicas // n_conv
            conv = nn.Conv2d(cin * per, cout * per, k, 2, k // 2, bias=False, groups=groups)
            x = torch.randn(batch, conv.in_channels, side, side, requires_grad=cin > 1)

            def run(conv: nn.Conv2d = conv, x: torch.Tensor = x, n: int = n_conv) -> None:
                for _ in range(n):
                    conv(x).sum().backward()

            rates[kind] = flops / ms_per_call(run, repeats) / 1e6
        rows.append({"layer": name, "cin": cin, "cout": cout, **rates})
    return rows


def main() -> None:
    """Measure and write ``pack_kernels.json`` / ``pack_kernels.md``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, default=4)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--width", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    threads = torch.get_num_threads()
    floor = conv_gflops(threads)
    steps = step_timings(args.replicas, args.batch, args.width, args.repeats)
    layers = layer_rates(args.replicas, args.batch, args.width, args.repeats)
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {threads} threads",
        "torch": torch.__version__,
        "replicas": args.replicas,
        "batch": args.batch,
        "width": args.width,
        "conv_floor_gflops": floor,
        "step_ms": steps,
        "grouped_vs_loop": steps["loop_eager"] / steps["grouped_conv"],
        "compiled_vs_loop": steps["loop_eager"] / steps["loop_compiled"],
        "channels_last_vs_loop": steps["loop_eager"] / steps["loop_channels_last"],
        "layers": [
            {
                **row,
                "separate_share": row["separate"] / floor,
                "grouped_share": row["grouped"] / floor,
            }
            for row in layers
        ],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "pack_kernels.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        f"strided_cnn width {args.width}, {args.replicas} replicas x batch {args.batch}, 28x28; "
        f"{result['machine']}, torch {result['torch']}; 64->64 3x3 conv rate "
        f"{floor:.0f} GFLOP/s.",
        "",
        "| one training step of all replicas | ms | vs loop |",
        "|---|---|---|",
    ]
    for key in ("loop_eager", "loop_channels_last", "loop_compiled", "grouped_conv"):
        lines.append(f"| {key} | {steps[key]:.2f} | {steps['loop_eager'] / steps[key]:.2f} |")
    lines += [
        f"\n`torch.compile` first step: {steps['loop_compiled_first_step_s']:.1f} s.\n",
        "| layer (fwd + bwd) | separate GFLOP/s | grouped GFLOP/s | share of the conv floor |",
        "|---|---|---|---|",
    ]
    for row in result["layers"]:
        lines.append(
            f"| {row['layer']} ({row['cin']}->{row['cout']}) | {row['separate']:.1f} | "
            f"{row['grouped']:.1f} | {row['separate_share']:.1%} / {row['grouped_share']:.1%} |"
        )
    (args.out / "pack_kernels.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
