"""What SCSA costs a whole network: SCSA-ResNet-50 against plain ResNet-50 on CPU.

SCSA is Si et al., arXiv 2407.05128; both models come from ``scsa.models.create_model``
(``"scsa_resnet50"`` and ``"resnet50"``), so they differ only by the attention blocks.

Eval latency: batch 8, 224×224, ``torch.no_grad``, eval mode; the two models are timed in
alternation, round by round, and the medians are compared.

Training peak memory: batch 16, one SGD (momentum 0.9) step of cross-entropy on random data,
measured two ways, each the same for both models:

* allocator peak: ``torch.profiler`` with ``profile_memory=True`` records every allocation and
  free of PyTorch's CPU allocator (activations, gradients, workspaces, optimizer temporaries).
  The running sum of those events over one step, after a warm-up step and ``zero_grad``, peaks at
  the step's extra memory; adding what lives across steps (parameters, buffers, momentum) gives the
  step's peak. This is what the allocator really held, with no allocator slack or Python heap;
* activations: the distinct storages autograd keeps for the backward at the end of the forward
  (``torch.autograd.graph.saved_tensors_hooks``), parameters excluded: the part attention can add.

    python benchmarks/model_overhead.py           # 2 threads
    python benchmarks/model_overhead.py --quick   # fewer timing rounds
"""

from __future__ import annotations

import argparse
import gc
import platform
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from scsa.models import create_model


def eval_latency(models: list[nn.Module], batch: int, rounds: int) -> list[float]:
    """Median ms of a no-grad eval forward for each model, timed in alternation."""
    x = torch.randn(batch, 3, 224, 224)
    times: list[list[float]] = [[] for _ in models]
    with torch.no_grad():
        for m in models:
            m.eval()
            m(x)  # warm-up
        for _ in range(rounds):
            for t, m in zip(times, models):
                start = time.perf_counter()
                m(x)
                t.append((time.perf_counter() - start) * 1e3)
    return [statistics.median(t) for t in times]


def _persistent_bytes(model: nn.Module, optimizer: torch.optim.Optimizer) -> int:
    tensors = [*model.parameters(), *model.buffers()]
    tensors += [v for state in optimizer.state.values() for v in state.values() if torch.is_tensor(v)]
    return sum(t.numel() * t.element_size() for t in tensors)


def train_peak_bytes(model: nn.Module, batch: int) -> tuple[int, int]:
    """(allocator peak of one training step, bytes of saved activations), see the module docstring."""
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, 3, 224, 224)
    target = torch.randint(0, 1000, (batch,))

    def step() -> None:
        F.cross_entropy(model(x), target).backward()
        optimizer.step()

    step()  # warm-up: the momentum buffers exist from here on, as in any later step
    optimizer.zero_grad(set_to_none=True)
    gc.collect()
    activities = [torch.profiler.ProfilerActivity.CPU]
    with torch.profiler.profile(activities=activities, profile_memory=True) as prof:
        step()
    events = sorted(
        (e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"),
        key=lambda e: e.start_ns(),
    )
    live = peak = 0
    for e in events:
        live += e.nbytes()
        peak = max(peak, live)
    optimizer.zero_grad(set_to_none=True)

    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = F.cross_entropy(model(x), target)
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    activations = sum(n for ptr, n in storages.items() if ptr not in params)
    del loss
    return peak + _persistent_bytes(model, optimizer), activations


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 timing rounds instead of 15")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    plain, scsa = create_model("resnet50"), create_model("scsa_resnet50")

    ms_plain, ms_scsa = eval_latency([plain, scsa], batch=8, rounds=5 if args.quick else 15)
    (peak_plain, act_plain), (peak_scsa, act_scsa) = train_peak_bytes(plain, 16), train_peak_bytes(scsa, 16)

    mib = 2.0**20
    print(
        f"SCSA-ResNet-50 vs ResNet-50, float32, {args.threads} threads, torch {torch.__version__}, "
        f"{platform.processor() or platform.machine()}\n"
    )
    print("| measure | ResNet-50 | SCSA-ResNet-50 | ratio |")
    print("| --- | ---: | ---: | ---: |")
    print(
        f"| eval latency, batch 8, 224² (ms) | {ms_plain:.1f} | {ms_scsa:.1f} | **{ms_scsa / ms_plain:.3f}** |"
    )
    print(
        f"| training step peak, batch 16 (MiB) | {peak_plain / mib:.0f} | {peak_scsa / mib:.0f} "
        f"| **{peak_scsa / peak_plain:.3f}** |"
    )
    print(
        f"| saved activations, batch 16 (MiB) | {act_plain / mib:.0f} | {act_scsa / mib:.0f} "
        f"| {act_scsa / act_plain:.3f} |"
    )


if __name__ == "__main__":
    main()
