"""What SCSA costs a segmentation network: UPerNet on SCSA-ResNet-50 against UPerNet on ResNet-50.

SCSA is Si et al., arXiv 2407.05128 (their ADE20K table uses UPerNet-R50). Both models come from
``scsa.tasks.segmentation.build_segmenter`` (smp's UPerNet, auxiliary FCN head, the same decoder
width) and differ only by the attention blocks in the encoder.

Training step: random images and labels, cross-entropy (+0.4 × the auxiliary head's), backward,
SGD momentum 0.9. The two models are timed in alternation, round by round, and the medians are
compared, so a load change on a shared machine hits both alike.

Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` over one step; elsewhere the estimate of
:func:`scsa.tools.profile.measure_train_step` (the distinct storages autograd saves for backward,
plus parameters, gradients and optimizer state; no temporaries), the same for both models.

    python benchmarks/segmentation_step.py                       # 512 px, batch 2, CPU
    python benchmarks/segmentation_step.py --size 128 --batch 2 --rounds 3 --backbone resnet18
    python benchmarks/segmentation_step.py --device cuda --size 512 --batch 16
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch
import torch.nn.functional as F

from scsa.tasks.segmentation.model import build_segmenter
from scsa.tools.profile import count_params, measure_train_step


def _step(model, opt, x, y) -> None:
    opt.zero_grad(set_to_none=True)
    logits, aux = model.forward_train(x)
    loss = F.cross_entropy(logits, y)
    if aux is not None:
        loss = loss + 0.4 * F.cross_entropy(aux, y)
    loss.backward()
    opt.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--attention", default="scsa", help="compared with the plain backbone")
    parser.add_argument("--size", type=int, default=512, help="square crop (ADE20K: 512)")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--classes", type=int, default=150)
    parser.add_argument("--decoder-channels", type=int, default=512, help="MMSegmentation's UPerNet: 512")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dev = torch.device(args.device)
    names = ("none", args.attention)
    models = {
        a: build_segmenter(
            "upernet",
            args.backbone,
            a,
            num_classes=args.classes,
            aux_head=True,
            decoder_channels=args.decoder_channels,
        )
        .to(dev)
        .train()
        for a in names
    }
    x = torch.randn(args.batch, 3, args.size, args.size, device=dev)
    y = torch.randint(0, args.classes, (args.batch, args.size, args.size), device=dev)
    opts = {a: torch.optim.SGD(m.parameters(), lr=1e-4, momentum=0.9) for a, m in models.items()}
    for a in names:  # warm-up
        _step(models[a], opts[a], x, y)
    times: dict[str, list[float]] = {a: [] for a in names}
    for _ in range(args.rounds):
        for a in names:
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            start = time.perf_counter()
            _step(models[a], opts[a], x, y)
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            times[a].append(time.perf_counter() - start)
    rows = {}
    for a in names:
        mem = measure_train_step(
            models[a], batch_size=args.batch, image_size=args.size, steps=1, warmup=0, device=dev
        )
        rows[a] = {
            "params_m": count_params(models[a]) / 1e6,
            "step_s_median": statistics.median(times[a]),
            "step_s_all": times[a],
            "peak_memory_mb": mem["peak_memory_bytes"] / 2**20,
            "memory_method": mem["memory_method"],
        }
    base, other = rows["none"], rows[args.attention]
    setting = (
        f"UPerNet (+aux FCN, decoder {args.decoder_channels}) on {args.backbone}, {args.size}x{args.size}, batch "
        f"{args.batch}, {args.classes} classes, {args.device} ({platform.processor() or platform.machine()}, "
        f"{args.threads} threads), median of {args.rounds} alternated rounds"
    )
    print(setting)
    print(f"| | {args.backbone} | {args.attention}_{args.backbone} | ratio |")
    print("|---|---:|---:|---:|")
    print(
        f"| params (M) | {base['params_m']:.2f} | {other['params_m']:.2f} | {other['params_m'] / base['params_m']:.3f} |"
    )
    print(
        f"| train step (s) | {base['step_s_median']:.3f} | {other['step_s_median']:.3f} | "
        f"{other['step_s_median'] / base['step_s_median']:.2f} |"
    )
    print(
        f"| peak memory (MB, {base['memory_method']}) | {base['peak_memory_mb']:.0f} | {other['peak_memory_mb']:.0f} | "
        f"{other['peak_memory_mb'] / base['peak_memory_mb']:.2f} |"
    )
    print(json.dumps({"setting": setting, "rows": rows}))


if __name__ == "__main__":
    main()
