"""What an attention block costs a detector's training step: Faster R-CNN on ResNet-50-FPN (torchvision's
detector, ``scsa.tasks.detection.build_detector``) with SCSA (Si et al., arXiv 2407.05128) and other zoo
blocks, against the plain backbone, measured side by side in one run.

Per block: median training-step time (forward + losses + backward + SGD step on a fixed batch of random
images with a few boxes each; the models are timed in alternation, round by round) and the step's peak
memory: ``torch.cuda.max_memory_allocated`` on a GPU; on the CPU the peak of the running sum of the CPU
allocator's events over one step (``torch.profiler``, ``profile_memory=True``) plus what lives across steps
(parameters, buffers, momentum). Ratios are against ``none`` (the plain ResNet-50-FPN).

    python benchmarks/detection_step.py                                    # 800 px, batch 2, 2 threads
    python benchmarks/detection_step.py --size 320 --batch 1 --rounds 3 --attentions none,scsa   # small
    python benchmarks/detection_step.py --device cuda --size 1333 --batch 2
"""

from __future__ import annotations

import argparse
import gc
import platform
import statistics
import time

import torch

from scsa.tasks.detection.model import build_detector


def _batch(n: int, size: int, device: torch.device):
    g = torch.Generator().manual_seed(0)
    images = [torch.rand(3, size, size, generator=g).to(device) for _ in range(n)]
    targets = []
    for _ in range(n):
        xy = torch.rand(4, 2, generator=g) * size * 0.6
        wh = torch.rand(4, 2, generator=g) * size * 0.3 + 16
        boxes = torch.cat([xy, xy + wh], 1).clamp(max=size)
        targets.append(
            {"boxes": boxes.to(device), "labels": torch.randint(1, 91, (4,), generator=g).to(device)}
        )
    return images, targets


def _step(model, optimizer, images, targets) -> None:
    loss = sum(model(images, targets).values())
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def peak_bytes(model, optimizer, images, targets, device: torch.device) -> int:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        _step(model, optimizer, images, targets)
        return torch.cuda.max_memory_allocated()
    with torch.profiler.profile(
        activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True
    ) as prof:
        _step(model, optimizer, images, targets)
    events = sorted(
        (e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"),
        key=lambda e: e.start_ns(),
    )
    live = peak = 0
    for e in events:
        live += e.nbytes()
        peak = max(peak, live)
    kept = [*model.parameters(), *model.buffers()]
    kept += [v for s in optimizer.state.values() for v in s.values() if torch.is_tensor(v)]
    return peak + sum(t.numel() * t.element_size() for t in kept)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--attentions", default="none,scsa,se,eca,cbam", help="comma-separated; 'none' is the base"
    )
    p.add_argument("--backbone", default="resnet50")
    p.add_argument("--size", type=int, default=800, help="square image side (min_size = max_size = size)")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--rounds", type=int, default=5, help="timed steps per model (after one warm-up)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    names = [a.strip() for a in args.attentions.split(",") if a.strip()]
    if "none" not in names:
        names.insert(0, "none")
    images, targets = _batch(args.batch, args.size, device)
    models, optims = [], []
    for name in names:
        torch.manual_seed(0)
        m = (
            build_detector(
                "fasterrcnn", args.backbone, name, num_classes=91, min_size=args.size, max_size=args.size
            )
            .to(device)
            .train()
        )
        models.append(m)
        optims.append(torch.optim.SGD([q for q in m.parameters() if q.requires_grad], lr=1e-3, momentum=0.9))
    for m, o in zip(models, optims):  # warm-up: momentum buffers exist from here on
        _step(m, o, images, targets)
    times: list[list[float]] = [[] for _ in names]
    for _ in range(args.rounds):
        for i, (m, o) in enumerate(zip(models, optims)):
            _sync(device)
            start = time.perf_counter()
            _step(m, o, images, targets)
            _sync(device)
            times[i].append(time.perf_counter() - start)
    peaks = [peak_bytes(m, o, images, targets, device) for m, o in zip(models, optims)]
    base_t, base_m = statistics.median(times[0]), peaks[0]
    print(
        f"Faster R-CNN {args.backbone}-FPN, {args.size}x{args.size}, batch {args.batch}, {device}, "
        f"{args.threads} threads, torch {torch.__version__}, {platform.processor() or platform.machine()}"
    )
    print("| attention | params (M) | step (ms, median) | step ratio | peak memory (MB) | memory ratio |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, m, t, peak in zip(names, models, times, peaks):
        med = statistics.median(t)
        params = sum(q.numel() for q in m.parameters()) / 1e6
        print(
            f"| {name} | {params:.2f} | {1000 * med:.0f} | {med / base_t:.3f} | {peak / 2**20:.0f} | "
            f"{peak / base_m:.3f} |"
        )


if __name__ == "__main__":
    main()
