"""torch.compile time of a whole backbone: plain ResNet against SCSA-ResNet (Si et al., arXiv 2407.05128).

Each model is compiled in a process of its own, with an empty inductor cache, so that neither gets
the other's warm compiler or cached kernels. There ``torch.compile(model, dynamic=...)`` is timed
call by call: the first call (capture + compile + run), each call that may recompile (batch 1, then
each further image size), and a warm call; torch.compile's counters give the graphs captured (a
recompilation is a capture after the first). ``--train`` times a training step (forward, backward)
instead of an eval forward under ``torch.no_grad``. Last line: the ratio of the SCSA model's total
compile time to the plain one's.

    python benchmarks/compile_time.py --quick        # resnet18, 32/48 px, the 'eager' backend: seconds
    python benchmarks/compile_time.py                # resnet50 vs scsa_resnet50, inductor, 64/96 px
    python benchmarks/compile_time.py --dynamic true --train
    python benchmarks/compile_time.py --compile-op off   # SCSA traced op by op, as before the custom op

Whole ResNet-50s under inductor take about a minute each on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from scsa._compat import compile_counters
from scsa.io import write_json


def _captures() -> int | None:
    counts = compile_counters()
    return None if counts is None else counts.get("stats.unique_graphs", 0)


def _step(model: torch.nn.Module, x: torch.Tensor, train: bool) -> float:
    start = time.perf_counter()
    if train:
        model(x).square().mean().backward()
    else:
        with torch.no_grad():
            model(x)
    return time.perf_counter() - start


def measure_one(args: argparse.Namespace, name: str) -> dict:
    import scsa

    scsa.attention.set_compile_op(args.compile_op == "on")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = scsa.create_model(name, num_classes=10).train(args.train)
    dynamic = {"auto": None, "true": True, "false": False}[args.dynamic]
    compiled = torch.compile(model, backend=args.backend, dynamic=dynamic)
    sizes = [int(s) for s in args.sizes.split(",")]
    calls = [("first call", args.batch, sizes[0]), ("batch 1", 1, sizes[0])]
    calls += [(f"size {s}", args.batch, s) for s in sizes[1:]]
    calls.append(("warm", args.batch, sizes[-1]))
    rows = []
    for label, b, s in calls:
        before = _captures()
        seconds = _step(compiled, torch.randn(b, 3, s, s), args.train)
        count = None if before is None else _captures() - before
        rows.append({"call": label, "seconds": round(seconds, 3), "captures": count})
    compile_s = sum(r["seconds"] for r in rows[:-1]) - (len(rows) - 1) * rows[-1]["seconds"]
    return {"model": name, "calls": rows, "compile_seconds": round(compile_s, 3)}


def _in_fresh_process(args: argparse.Namespace, name: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="scsa-compile-") as cache:
        env = dict(os.environ, TORCHINDUCTOR_CACHE_DIR=cache, TRITON_CACHE_DIR=cache)
        argv = [sys.executable, __file__, "--one", name, *_forwarded(args)]
        done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"compiling {name} failed (exit {done.returncode})")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _forwarded(args: argparse.Namespace) -> list[str]:
    out = ["--sizes", args.sizes, "--batch", str(args.batch), "--backend", args.backend]
    out += ["--dynamic", args.dynamic, "--compile-op", args.compile_op]
    if args.threads:
        out += ["--threads", str(args.threads)]
    return out + (["--train"] if args.train else [])


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
    parser.add_argument("--train", action="store_true", help="time training steps, not eval forwards")
    parser.add_argument(
        "--compile-op",
        choices=("on", "off"),
        default="on",
        help="SCSA as one custom operator (scsa.attention.set_compile_op), or traced op by op",
    )
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--quick", action="store_true", help="resnet18, 32/48 px, the 'eager' backend (capture only)"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # the measuring process
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure_one(args, args.one)))
        return
    if args.quick:
        args.arch, args.sizes, args.backend = "resnet18", "32,48", "eager"
    results = [_in_fresh_process(args, n) for n in (args.arch, f"scsa_{args.arch}")]
    threads = args.threads or torch.get_num_threads()
    print(
        f"torch {torch.__version__}, backend={args.backend}, dynamic={args.dynamic}, "
        f"{'train' if args.train else 'eval'}, compile_op={args.compile_op}, threads={threads}, "
        f"batch={args.batch}, sizes={args.sizes}"
    )
    print(f"{'call':<12}" + "".join(f"{r['model']:>26}" for r in results))
    for i, row in enumerate(results[0]["calls"]):
        cells = []
        for c in (r["calls"][i] for r in results):
            count = "" if c["captures"] is None else f" ({c['captures']} capt.)"
            cells.append(f"{c['seconds']:>12.2f} s{count:>12}")
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
