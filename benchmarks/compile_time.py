"""torch.compile time of a whole backbone: plain ResNet against SCSA-ResNet (Si et al., arXiv 2407.05128).

For each model this compiles ``torch.compile(model, dynamic=...)`` afresh (``torch.compiler.reset()``)
and times, in eval under ``torch.no_grad``: the first call (capture + compile + run), each call that
may recompile (batch 1, then each further image size), and a warm call; and it counts the frames
torch.compile captured (a recompilation is a capture after the first). Last line: the ratio of the
SCSA model's total compile time to the plain one's.

    python benchmarks/compile_time.py --quick        # resnet18, 32 px, the 'eager' backend: seconds
    python benchmarks/compile_time.py                # resnet50 vs scsa_resnet50, inductor, 64/96 px
    python benchmarks/compile_time.py --arch resnet50 --sizes 224,160,288 --dynamic true

Whole ResNet-50s under inductor take many minutes on a small CPU; run those on a machine of your own.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

import scsa
from scsa._compat import compile_counters
from scsa.io import write_json


def _captures() -> int | None:
    counts = compile_counters()
    return None if counts is None else counts.get("stats.unique_graphs", 0)


def _timed_call(model: torch.nn.Module, x: torch.Tensor) -> float:
    start = time.perf_counter()
    with torch.no_grad():
        model(x)
    return time.perf_counter() - start


def measure(name: str, sizes: list[int], batch: int, backend: str, dynamic: bool | None) -> dict:
    torch.manual_seed(0)
    model = scsa.create_model(name, num_classes=10).eval()
    torch.compiler.reset()
    compiled = torch.compile(model, backend=backend, dynamic=dynamic)
    calls = [("first call", batch, sizes[0]), ("batch 1", 1, sizes[0])]
    calls += [(f"size {s}", batch, s) for s in sizes[1:]]
    calls.append(("warm", batch, sizes[-1]))
    rows = []
    for label, b, s in calls:
        before = _captures()
        seconds = _timed_call(compiled, torch.randn(b, 3, s, s))
        after = _captures()
        rows.append(
            {
                "call": label,
                "seconds": round(seconds, 3),
                "captures": None if before is None else after - before,
            }
        )
    compile_s = sum(r["seconds"] for r in rows[:-1]) - (len(rows) - 1) * rows[-1]["seconds"]
    return {"model": name, "calls": rows, "compile_seconds": round(compile_s, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="resnet50", help="plain backbone; its scsa_ twin is compared")
    parser.add_argument(
        "--sizes", default="64,96", help="image sizes: the first compiles, each next may recompile"
    )
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument(
        "--backend", default="inductor", help="torch.compile backend (inductor, aot_eager, eager)"
    )
    parser.add_argument("--dynamic", choices=("auto", "true", "false"), default="auto")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--quick", action="store_true", help="resnet18, 32/48 px, the 'eager' backend (capture only)"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    if args.quick:
        args.arch, args.sizes, args.backend = "resnet18", "32,48", "eager"
    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = [int(s) for s in args.sizes.split(",")]
    dynamic = {"auto": None, "true": True, "false": False}[args.dynamic]
    results = [measure(n, sizes, args.batch, args.backend, dynamic) for n in (args.arch, f"scsa_{args.arch}")]
    print(
        f"torch {torch.__version__}, backend={args.backend}, dynamic={args.dynamic}, "
        f"threads={torch.get_num_threads()}, batch={args.batch}, sizes={sizes}"
    )
    print(f"{'call':<12}" + "".join(f"{r['model']:>26}" for r in results))
    for i, row in enumerate(results[0]["calls"]):
        cells = []
        for r in results:
            c = r["calls"][i]
            cap = "" if c["captures"] is None else f" ({c['captures']} capt.)"
            cells.append(f"{c['seconds']:>12.2f} s{cap:>12}")
        print(f"{row['call']:<12}" + "".join(f"{c:>26}" for c in cells))
    plain, ours = results[0]["compile_seconds"], results[1]["compile_seconds"]
    ratio = ours / plain if plain > 0 else float("nan")
    print(
        f"compile time (all calls but the warm one, less warm run time): {plain:.2f} s vs {ours:.2f} s, "
        f"ratio {ratio:.2f}x"
    )
    if args.json:
        write_json(
            args.json, {"results": results, "ratio": ratio, "args": vars(args) | {"json": str(args.json)}}
        )


if __name__ == "__main__":
    main()
