"""``scsa explain cam|erf|maps|ssim``: the pictures and tables of :mod:`scsa.explain` for checkpoints.

Every command takes one or more ``-c CKPT`` (checkpoints of ``scsa classify train``; several are
shown side by side), writes PNGs and CSV/JSON tables into ``-o DIR`` and prints the table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from scsa.cli import common

app = typer.Typer(
    name="explain",
    help="Grad-CAM, effective receptive fields, SCSA's gates, SSIM of feature maps.",
    no_args_is_help=True,
)

Ckpts = Annotated[list[str], typer.Option("--checkpoint", "-c", help="Checkpoint (repeat for side by side).")]
Out = Annotated[str, typer.Option("--out", "-o", help="Output folder.")]
Data = Annotated[str, typer.Option("--data", "-d", help="mnist5k, an image folder (DIR[/split]) or a file.")]
Split = Annotated[str, typer.Option(help="Split of the data: val or train.")]
Size = Annotated[int | None, typer.Option("--size", min=8, help="Resize images to this (square).")]
Device = Annotated[str, typer.Option(help="cpu, cuda, cuda:1, or auto.")]
Images = Annotated[list[str] | None, typer.Argument(help="Images or folders of images (or use --data).")]
DataOpt = Annotated[str | None, typer.Option("--data", "-d", help="Instead of images: mnist5k or a folder.")]
Count = Annotated[int | None, typer.Option("-n", min=1, help="With --data: the first N images (4).")]
Canvas = Annotated[
    int | None, typer.Option(min=8, help="Put each image in a corner of a blank canvas this large.")
]


def _models(checkpoints: list[str], device: str) -> list:

    from scsa.explain import resolve

    device = _device(device)
    out = []
    for c in checkpoints:
        ex = resolve(c)
        ex.model.to(device)
        out.append(ex)
    names = [ex.name for ex in out]
    for i, ex in enumerate(out):  # two runs of one architecture: tell them apart by their folders
        if names.count(ex.name) > 1:
            ex.name = f"{ex.name} [{Path(checkpoints[i]).resolve().parent.parent.name}]"
    return out


def _device(device: str) -> str:
    import torch

    return ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device


def _is_detection(checkpoint: str) -> bool:
    """Whether ``checkpoint`` is one of ``scsa detect train`` (its stored task), read without building it."""
    import torch

    path = Path(checkpoint)
    if not path.is_file():
        return False
    ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    info = ckpt.get("scsa") if isinstance(ckpt, dict) else None
    return isinstance(info, dict) and info.get("task") == "detect"


def _write_tables(out: Path, stem: str, rows: list[dict]) -> None:
    from scsa.io import write_csv, write_json

    write_csv(out / f"{stem}.csv", rows)
    write_json(out / f"{stem}.json", rows)


def _print_table(rows: list[dict]) -> None:
    if not rows:
        return
    keys = list(rows[0])
    cells = [[str(r.get(k, "")) for k in keys] for r in rows]
    widths = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(keys)]
    typer.echo("  ".join(k.ljust(w) for k, w in zip(keys, widths)))
    for c in cells:
        typer.echo("  ".join(v.ljust(w) for v, w in zip(c, widths)))


def _sources(
    images: list[str] | None, data: str | None, n: int | None, split: str, canvas: int | None
) -> list[tuple[str, object]]:
    """``(label, image)`` pairs: the files of ``images``, else the first ``n`` images of ``data``;
    with ``canvas``, each put in a corner (in turn) of a blank canvas of that size."""
    from scsa.explain._data import image_files, load_images, on_canvas
    from scsa.explain._model import load_image

    if images and data:
        raise ValueError("give images or --data, not both")
    if images:
        items: list[tuple[str, object]] = [(str(p), p) for item in images for p in image_files(item)]
    elif data:
        batch = load_images(data, n or 4, split=split)
        items = [(f"{data}:{split}:{i}", t) for i, t in enumerate(batch)]
    else:
        raise ValueError("give one or more images or folders, or --data")
    if canvas:
        items = [(label, on_canvas(load_image(im), canvas, i)[0]) for i, (label, im) in enumerate(items)]
    return items


def _stem(label: str) -> str:
    return Path(label).stem if ":" not in label else label.replace(":", "_")


@app.command()
def cam(
    checkpoint: Ckpts,
    images: Images = None,
    data: DataOpt = None,
    n: Count = None,
    split: Split = "val",
    canvas: Canvas = None,
    out: Out = "runs/explain",
    method: Annotated[str, typer.Option("--method", help="gradcam, gradcam++, eigencam, ...")] = "gradcam",
    layer: Annotated[
        str | None, typer.Option(help="Stage index or module path (default: last stage).")
    ] = None,
    target: Annotated[int | None, typer.Option(help="Class index (default: the predicted one).")] = None,
    size: Size = None,
    device: Device = "cpu",
) -> None:
    """Class activation maps: one grid, rows = images, columns = models."""
    from scsa.explain import cam_grid_results, plots

    try:
        sources = _sources(images, data, n, split, canvas)
        lay: str | int | None = int(layer) if layer is not None and layer.lstrip("-").isdigit() else layer
        detectors = [c for c in checkpoint if _is_detection(c)]
        models = _models([c for c in checkpoint if c not in detectors], device)
        pictures = [im for _, im in sources]
        grid = (
            cam_grid_results(models, pictures, target, lay, method, size) if models else [[] for _ in sources]
        )
        for c in detectors:  # detection checkpoints: Eigen-CAM on the backbone with its FPN
            from scsa.explain._checkpoints import load_detector
            from scsa.explain.detection import explain_detection

            det_method = method if method.lower() in ("eigencam", "kpcacam") else "eigencam"
            det, info = load_detector(c, _device(device))
            m = info.get("model", {})
            name = f"{m.get('detector', 'detector')} {m.get('backbone', '')}+{m.get('attention', 'none')}"
            for row, im in zip(grid, pictures):
                row.append(explain_detection(det, im, name, list(info.get("classes") or []), det_method))
    except (ValueError, TypeError) as err:
        raise common.fail(err) from err
    o = Path(out)
    first = grid[0][0]
    fig = plots.cam_figure(grid, title=f"{first.method} at {first.layer}")
    png = plots.save_figure(fig, o / f"cam_{first.method}.png")
    rows = [
        {
            "image": label,
            "model": r.model_name,
            "method": r.method,
            "layer": r.layer,
            "class": r.class_name,
            "score": round(r.score, 4),
        }
        for (label, _), row in zip(sources, grid)
        for r in row
    ]
    _write_tables(o, "cam", rows)
    _print_table(rows)
    typer.echo(f"wrote {png}")


@app.command()
def erf(
    checkpoint: Ckpts,
    data: Data = "mnist5k",
    stages: Annotated[str, typer.Option(help="Comma-separated stage indices.")] = "2,3,4",
    n: Annotated[int, typer.Option("-n", min=1, help="Number of images.")] = 300,
    split: Split = "val",
    size: Size = None,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", min=1, help="Images per backward.")] = 16,
    out: Out = "runs/explain",
    device: Device = "cpu",
) -> None:
    """Effective receptive fields per stage, models side by side, and RepLKNet's ratio table."""
    from scsa.explain import erf as erf_fn
    from scsa.explain import erf_table, plots

    try:
        stage_list = [int(s) for s in stages.split(",") if s.strip()]
    except ValueError as err:
        raise common.fail(ValueError(f"--stages must be comma-separated integers, got {stages!r}")) from err
    try:
        models = _models(checkpoint, device)
        results = [
            erf_fn(ex, data, stage_list, n=n, size=size, batch_size=batch_size, split=split) for ex in models
        ]
    except (ValueError, TypeError) as err:
        raise common.fail(err) from err
    o = Path(out)
    r0 = results[0]
    png = plots.save_figure(
        plots.erf_figure(results, title=f"ERF, log10(1+x), {r0.images} images at {r0.size[0]}x{r0.size[1]}"),
        o / "erf.png",
    )
    rows = erf_table(results)
    _write_tables(o, "erf", rows)
    _print_table(rows)
    typer.echo(f"wrote {png}")


@app.command()
def maps(
    checkpoint: Ckpts,
    images: Images = None,
    data: DataOpt = None,
    n: Count = None,
    split: Split = "val",
    canvas: Canvas = None,
    out: Out = "runs/explain",
    blocks: Annotated[str | None, typer.Option(help="Comma-separated block names (default: all).")] = None,
    attention: Annotated[
        bool, typer.Option("--attention/--no-attention", help="Also the C×C matrix.")
    ] = False,
    size: Size = None,
    device: Device = "cpu",
) -> None:
    """SCSA's spatial gate a_h⊗a_w over the image and its channel gate, per block (one PNG per image)."""
    from scsa.explain import maps as maps_fn
    from scsa.explain import plots

    o = Path(out)
    rows = []
    written = []
    try:
        sources = _sources(images, data, n, split, canvas)
        models = _models(checkpoint, device)
        block_list = [b.strip() for b in blocks.split(",")] if blocks else None
        for mi, ex in enumerate(models):
            for label, im in sources:
                fig, records = maps_fn(ex, im, blocks=block_list, attention=attention, size=size)
                tag = f"_{mi}" if len(models) > 1 else ""
                written.append(plots.save_figure(fig, o / f"maps_{_stem(label)}{tag}.png"))
                for name, rec in records.items():
                    row = {"model": ex.name, "image": label, "block": name}
                    if "spatial" in rec:
                        row.update(
                            channels=int(rec["a_h"].shape[1]),
                            map=f"{rec['a_h'].shape[2]}x{rec['a_w'].shape[3]}",
                            spatial_min=round(float(rec["spatial"].min()), 4),
                            spatial_max=round(float(rec["spatial"].max()), 4),
                        )
                    if "channel_gate" in rec:
                        g = rec["channel_gate"].float()
                        row.update(
                            gate_mean=round(float(g.mean()), 4),
                            gate_min=round(float(g.min()), 4),
                            gate_max=round(float(g.max()), 4),
                        )
                    rows.append(row)
    except (ValueError, TypeError) as err:
        raise common.fail(err) from err
    _write_tables(o, "maps", rows)
    _print_table(rows)
    for w in written:
        typer.echo(f"wrote {w}")


@app.command()
def ssim(
    checkpoint: Ckpts,
    data: Data = "mnist5k",
    stage: Annotated[int, typer.Option(help="Stage index (1 = layer1).")] = 1,
    n: Annotated[int | None, typer.Option("-n", min=1, help="Number of images (default: all).")] = None,
    split: Split = "val",
    size: Size = None,
    show: Annotated[int, typer.Option(min=1, help="Images in the feature-map picture.")] = 6,
    out: Out = "runs/explain",
    device: Device = "cpu",
) -> None:
    """Mean SSIM between the input and a stage's upsampled channel-mean feature map, per model."""
    from scsa.explain import feature_map, load_images, plots, ssim_table

    try:
        models = _models(checkpoint, device)
        batch = load_images(data, n, split=split, size=size)
        rows = ssim_table(models, batch, stage=stage)
        few = batch[:show]
        fmaps = [feature_map(ex, few, stage)[:, 0].numpy() for ex in models]
    except (ValueError, TypeError) as err:
        raise common.fail(err) from err
    o = Path(out)
    fig = plots.feature_maps_figure(few.permute(0, 2, 3, 1).numpy(), fmaps, [r["model"] for r in rows], rows)
    png = plots.save_figure(fig, o / "ssim.png")
    _write_tables(o, "ssim", rows)
    _print_table(rows)
    typer.echo(f"wrote {png}")
