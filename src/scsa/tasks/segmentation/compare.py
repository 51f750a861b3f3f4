"""One decoder and backbone with each attention block: params, GFLOPs, FPS, mIoU, mAcc, aAcc.

The segmentation counterpart of SCSA's (arXiv 2407.05128) attention comparison. Every block trains
with the same recipe, data and seeds; the table gives mean ± std over seeds and a verdict that
refuses to rank gaps within twice the noise (:func:`scsa.engine.report.verdicts`: with one seed
every verdict is ``n/a``, since the spread between seeds is then unknown). GFLOPs are multiply-
accumulates of one forward pass at the crop size (:func:`scsa.tools.profile.count_flops`), FPS is
eval throughput at the crop size on the chosen device.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["compare_attentions"]

_METRICS = ("miou", "macc", "aacc")


def _profile(
    decoder: str, backbone: str, attention: str, num_classes: int, crop: int, batch: int, rec
) -> dict:
    import torch

    from scsa.tasks.segmentation.model import build_segmenter
    from scsa.tools.profile import count_flops, count_params, measure_throughput

    model = build_segmenter(
        decoder, backbone, attention, num_classes=num_classes, decoder_channels=rec.decoder_channels
    )
    with torch.no_grad():
        flops = count_flops(model, (1, 3, crop, crop))
        fps = measure_throughput(model, batch_size=batch, image_size=crop, warmup=2, iters=5)
    return {"params_m": count_params(model) / 1e6, "gflops": flops / 1e9, "fps": fps}


def compare_attentions(
    out_dir: str | Path,
    attentions: Sequence[str] = ("none", "se", "cbam", "eca", "scsa"),
    seeds: int = 1,
    throughput_batch: int = 8,
    **train_kwargs: Any,
) -> list[dict]:
    """Train ``train_kwargs`` (of :func:`scsa.tasks.segmentation.run.train`) once per attention and seed
    into ``out_dir/<attention>/seed<k>``; write ``compare.md``, ``compare.csv``, ``compare.json`` and
    ``compare.png`` (mIoU against GFLOPs) into ``out_dir``; return the rows."""
    from scsa.engine import TrainerOptions
    from scsa.engine.plots import plot_tradeoff
    from scsa.engine.report import format_mean_std, markdown_table, mean_std, verdicts
    from scsa.io import write_csv, write_json, write_text
    from scsa.tasks.segmentation.recipes import SegRecipe, get_recipe
    from scsa.tasks.segmentation.run import train

    out = Path(out_dir)
    options = train_kwargs.pop("options", None) or TrainerOptions(progress=False)
    recipe = train_kwargs.pop("recipe", "small")
    rec = recipe if isinstance(recipe, SegRecipe) else get_recipe(recipe)
    if train_kwargs.get("recipe_overrides"):
        rec = dataclasses.replace(
            rec, **{k: v for k, v in train_kwargs.pop("recipe_overrides").items() if v is not None}
        )
    decoder = train_kwargs.get("decoder", "upernet")
    backbone = train_kwargs.get("backbone", "resnet18")
    rows = []
    runs: dict[str, list[dict]] = {}
    for attention in attentions:
        results = []
        for seed in range(seeds):
            opts = dataclasses.replace(options, seed=seed)
            result = train(
                out / attention / f"seed{seed}",
                attention=attention,
                recipe=rec,
                options=opts,
                title=f"{decoder} {attention}_{backbone}, seed {seed}",
                **train_kwargs,
            )
            results.append(result)
        num_classes = len(results[0].module.classes)
        val_images = results[0].summary["data"]["val_size"]
        prof = _profile(decoder, backbone, attention, num_classes, rec.crop_size[0], throughput_batch, rec)
        row: dict[str, Any] = {"attention": attention, "seeds": seeds, "val_images": val_images, **prof}
        for key in _METRICS:
            # percentages in the table (as papers print them); the run folders keep fractions
            mean, std = mean_std([100.0 * r.best[key] for r in results])
            row[f"{key}_mean"], row[f"{key}_std"] = mean, std
        row["wall_time_s"] = sum(r.wall_time_s for r in results)
        rows.append(row)
        runs[attention] = [
            {"seed": s, "out_dir": str(r.out_dir), **{k: r.best[k] for k in _METRICS}}
            for s, r in enumerate(results)
        ]
    # mIoU is not a proportion of independent pixels: no binomial floor, the seeds' spread only
    verdict = verdicts(rows, key="miou", n_key=None)
    for row, v in zip(rows, verdict):
        row["verdict"] = v
    head = ["attention", "params (M)", "GFLOPs", "FPS", "mIoU %", "mAcc %", "aAcc %", "verdict"]
    table = markdown_table(
        head,
        [
            [
                r["attention"],
                f"{r['params_m']:.2f}",
                f"{r['gflops']:.3f}",
                f"{r['fps']:.1f}",
                *(format_mean_std(r[f"{k}_mean"], r[f"{k}_std"]) for k in _METRICS),
                r["verdict"],
            ]
            for r in rows
        ],
    )
    note = (
        f"{decoder} on {backbone}, recipe {rec.name} ({rec.iterations} iterations, batch {rec.batch_size}), "
        f"{seeds} seed(s), best validation of each run; GFLOPs (MACs) and FPS at {rec.crop_size[0]}x"
        f"{rec.crop_size[1]}. "
        + (
            "One seed: the spread between seeds is unknown, so no block is ranked (verdict n/a)."
            if seeds < 2
            else "Verdict: a gap counts only beyond twice the combined std over seeds."
        )
    )
    write_text(out / "compare.md", table + "\n\n" + note + "\n")
    write_csv(out / "compare.csv", rows)
    write_json(out / "compare.json", {"rows": rows, "runs": runs, "note": note, "recipe": rec.to_dict()})
    plot_tradeoff(rows, out / "compare.png", x="gflops", y="miou_mean", label="attention", y_std="miou_std",
                  xlabel="GFLOPs (MACs)", ylabel="mIoU %", title=f"{decoder} {backbone}: mIoU vs GFLOPs")  # fmt: skip
    return rows
