"""SCSA block speed: the default ``scsa.SCSA`` against the literal oracle, side by side.

The oracle (``tests/oracle.py``) computes step by step as the released code of Si et al.
(arXiv 2407.05128) does. For each of ResNet-50's four stage shapes this prints the median time
of an eval forward (``torch.no_grad``) and of a training forward + backward, for the oracle and
for the default block, and their ratio; the last row holds the geometric means. The two are
interleaved round by round (oracle, default, oracle, default, ...) so that drift of a shared
machine hits both alike. Both hold the same random weights; the script checks they agree.

    python benchmarks/block_speed.py            # 2 threads, float32, batch 8
    python benchmarks/block_speed.py --quick    # fewer rounds, for a smoke run
    python benchmarks/block_speed.py --device cuda --batch 64   # on a GPU (the plain path runs there)
    python benchmarks/block_speed.py --compile  # the default block under torch.compile(fullgraph=True)
    python benchmarks/block_speed.py --compile --compile-op off   # ... with its definition traced
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import scsa.attention
from oracle import OracleSCSA
from scsa import SCSA

STAGE_SHAPES = [(8, 64, 56, 56), (8, 128, 28, 28), (8, 256, 14, 14), (8, 512, 7, 7)]


def _sync() -> None:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def _timed(fn: Callable[[], object], inner: int) -> float:
    _sync()
    start = time.perf_counter()
    for _ in range(inner):
        fn()
    _sync()
    return (time.perf_counter() - start) / inner * 1e3


def interleaved(fns: list[Callable[[], object]], rounds: int, inner: int) -> list[float]:
    """Median ms per call of each function, timed in alternation after one warm-up round."""
    for fn in fns:
        fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(rounds):
        for t, fn in zip(times, fns):
            t.append(_timed(fn, inner))
    return [statistics.median(t) for t in times]


def _pair(shape: tuple[int, int, int, int]) -> tuple[torch.nn.Module, torch.nn.Module]:
    block = SCSA(shape[1])
    with torch.no_grad():  # non-trivial norm affines, so nothing hides behind an init value
        for p in block.parameters():
            p.copy_(torch.randn_like(p) * 0.5 + (1.0 if p.dim() == 1 else 0.0))
    oracle = OracleSCSA(shape[1])
    oracle.load_state_dict(block.state_dict())
    return block, oracle


def bench_shape(
    shape: tuple[int, int, int, int], rounds: int, device: str = "cpu", compile: bool = False
) -> dict[str, float]:
    block, oracle = (m.to(device) for m in _pair(shape))
    if compile:
        torch._dynamo.reset()  # each shape is a new block: no recompile limit across them
        block = torch.compile(block, fullgraph=True)
    x = torch.randn(shape, device=device)
    with torch.no_grad():
        ref = oracle(x)
        err = ((block(x) - ref).abs().max() / ref.abs().max()).item()
    assert err <= 1e-5, f"default block disagrees with the oracle at {shape}: {err:.2e}"
    # ~2M elements per timed call keeps each CPU sample > 1 ms; a GPU needs more calls per sample
    inner = max(1, int((2e6 if device == "cpu" else 2e8) // x.numel()))

    def eval_fn(m: torch.nn.Module) -> Callable[[], object]:
        def run() -> object:
            with torch.no_grad():
                return m(x)

        return run

    xg = x.clone().requires_grad_()
    grad = torch.randn(shape, device=device)

    def train_fn(m: torch.nn.Module) -> Callable[[], object]:
        def run() -> None:
            m(xg).backward(grad)

        return run

    e_o, e_d = interleaved([eval_fn(oracle.eval()), eval_fn(block.eval())], rounds, inner)
    t_o, t_d = interleaved([train_fn(oracle.train()), train_fn(block.train())], rounds, inner)
    return {"eval_oracle": e_o, "eval_default": e_d, "train_oracle": t_o, "train_default": t_d}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 rounds instead of 15")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--batch", type=int, default=8, help="batch size of every shape")
    parser.add_argument("--compile", action="store_true", help="time torch.compile(default block)")
    parser.add_argument(
        "--compile-op",
        choices=("on", "off"),
        default="on",
        help="with --compile: SCSA as one custom operator (the default), or its definition traced op by op",
    )
    args = parser.parse_args(argv)
    scsa.attention.set_compile_op(args.compile_op == "on")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rounds = 5 if args.quick else 15
    shapes = [(args.batch, *shape[1:]) for shape in STAGE_SHAPES]
    machine = platform.processor() or platform.machine()
    if args.device == "cuda":
        machine = torch.cuda.get_device_name()

    print(
        f"SCSA block{f' compiled (compile_op={args.compile_op})' if args.compile else ''}, float32, {args.device}, {args.threads} threads, "
        f"torch {torch.__version__}, "
        f"{machine}, median of {rounds} interleaved rounds\n"
    )
    print(
        "| shape (B, C, H, W) | eval oracle ms | eval default ms | eval speed-up "
        "| train oracle ms | train default ms | train speed-up |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    eval_ratios, train_ratios = [], []
    for shape in shapes:
        r = bench_shape(shape, rounds, args.device, args.compile)
        eval_ratios.append(r["eval_oracle"] / r["eval_default"])
        train_ratios.append(r["train_oracle"] / r["train_default"])
        print(
            f"| {shape} | {r['eval_oracle']:.2f} | {r['eval_default']:.2f} | {eval_ratios[-1]:.1f}x "
            f"| {r['train_oracle']:.2f} | {r['train_default']:.2f} | {train_ratios[-1]:.1f}x |",
            flush=True,
        )
    geo = lambda v: math.exp(sum(map(math.log, v)) / len(v))  # noqa: E731
    print(f"| geometric mean | | | **{geo(eval_ratios):.1f}x** | | | **{geo(train_ratios):.1f}x** |")


if __name__ == "__main__":
    main()
