"""Training-step time of YOLO11n-SCSA against YOLO11n, side by side (needs the yolo extra).

Both models are built from their YAMLs (``yolo11n.yaml`` and scsa's ``yolo11n-scsa.yaml``, or
``--variant c2scsa``/``neck``) with the same number of classes; each step is ultralytics' own loss on
one random batch (images and a few boxes per image), backward and an SGD step. The two models are
interleaved step by step so that drift of a shared machine hits both alike; the script prints the
median step time of each and their ratio.

    python benchmarks/yolo_step.py                       # 2 threads, batch 8, 64 px, 10 timed steps
    python benchmarks/yolo_step.py --imgsz 320 --batch 16 --steps 20
    python benchmarks/yolo_step.py --device cuda --imgsz 640 --batch 32
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch


def _batch(n: int, imgsz: int, nc: int, device: torch.device, gen: torch.Generator) -> dict:
    boxes_per_image = 3
    m = n * boxes_per_image
    xy = torch.rand(m, 2, generator=gen) * 0.6 + 0.2
    wh = torch.rand(m, 2, generator=gen) * 0.2 + 0.05
    return {
        "img": torch.rand(n, 3, imgsz, imgsz, generator=gen).to(device),
        "batch_idx": torch.arange(n).repeat_interleave(boxes_per_image).float().to(device),
        "cls": torch.randint(0, nc, (m, 1), generator=gen).float().to(device),
        "bboxes": torch.cat([xy, wh], 1).to(device),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="scsa", choices=["scsa", "scsa-neck", "c2scsa"])
    parser.add_argument("--imgsz", type=int, default=64)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10, help="Timed steps per model.")
    parser.add_argument("--warmup", type=int, default=2, help="Untimed steps per model first.")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--nc", type=int, default=10)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    import scsa.integrations.ultralytics as su  # first: it sets ultralytics' offline environment

    su.register()
    from ultralytics.cfg import get_cfg
    from ultralytics.nn.tasks import DetectionModel

    device = torch.device(args.device)
    name = {"scsa": "yolo11n-scsa", "scsa-neck": "yolo11n-scsa-neck", "c2scsa": "yolo11n-c2scsa"}[
        args.variant
    ]
    models = {"YOLO11n": "yolo11n.yaml", name: str(su.model_yaml(name))}
    built, optims = {}, {}
    for label, cfg in models.items():
        torch.manual_seed(0)
        model = DetectionModel(cfg, nc=args.nc, verbose=False).to(device).train()
        model.args = get_cfg()  # the loss reads its box/cls/dfl gains from here
        built[label] = model
        optims[label] = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    gen = torch.Generator().manual_seed(0)
    batch = _batch(args.batch, args.imgsz, args.nc, device, gen)
    times: dict[str, list[float]] = {label: [] for label in built}

    def step(label: str) -> float:
        model, opt = built[label], optims[label]
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        loss, _ = model.loss(batch)
        opt.zero_grad(set_to_none=True)
        loss.sum().backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    for i in range(args.warmup + args.steps):
        for label in built:
            dt = step(label)
            if i >= args.warmup:
                times[label].append(dt)

    print(
        f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, {args.threads} threads, "
        f"device {args.device}, batch {args.batch}, imgsz {args.imgsz}, {args.steps} steps (median)"
    )
    print("| model | params | train step (ms) |")
    print("|---|---|---|")
    med = {}
    for label, model in built.items():
        med[label] = statistics.median(times[label]) * 1e3
        print(f"| {label} | {sum(p.numel() for p in model.parameters()):,} | {med[label]:.1f} |")
    base, other = med["YOLO11n"], med[name]
    print(f"\nratio {name} / YOLO11n: {other / base:.2f}")


if __name__ == "__main__":
    main()
