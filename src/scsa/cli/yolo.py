"""``scsa yolo train|val|predict|compare``: SCSA and the zoo in ultralytics YOLO models, offline.

Needs the ``yolo`` extra (ultralytics, AGPL-3.0); imported inside the commands, so ``scsa --help``
neither needs nor loads it. ultralytics trains with its own trainer; these commands pick the model
(base YAML + zoo block + place), the data (default: mnistdet exported in YOLO format) and the
offline settings, and ``compare`` puts the unmodified model and each variant side by side.
"""

from __future__ import annotations

import math
import statistics
import time
from pathlib import Path
from typing import Any

import typer

from scsa.cli import common

app = typer.Typer(
    help="YOLO (ultralytics) with SCSA and the zoo: train, val, predict, compare.", no_args_is_help=True
)

_MODEL = "Model"
_DATA = "Data"
_TRAIN = "Training"
METRICS = {
    "mAP50-95": "metrics/mAP50-95(B)",
    "mAP50": "metrics/mAP50(B)",
    "precision": "metrics/precision(B)",
    "recall": "metrics/recall(B)",
}
QUICK = {"model": "yolo11n", "imgsz": 64, "epochs": 5, "batch": 16, "n_train": 200, "n_val": 50, "workers": 0}
# with 5 epochs, ultralytics' 3 warm-up epochs and mosaic (4 images in one 64 px tile) leave nothing to learn
QUICK_ARGS = {"mosaic": 0.0, "warmup_epochs": 1.0}


MODEL_OPTIONS = (
    common.opt(
        "model", str, "yolo11n", "--model", "-m", help="yolo11n, yolov8s, ... or a YAML.", panel=_MODEL
    ),
    common.opt("where", str, "backbone", help="backbone, p3, p4, p5, neck or c2psa.", panel=_MODEL),
    common.opt(
        "weights", str | None, None, help="Local .pt to start from (none: random init).", panel=_MODEL
    ),
)
DATA_OPTIONS = (
    common.opt(
        "data", str, "mnistdet", "--data", "-d", help="data.yaml, or mnistdet (exported).", panel=_DATA
    ),
    common.opt("data_size", int, 96, help="mnistdet image size (>= 96).", panel=_DATA, min=96),
    common.opt("n_train", int, 400, help="mnistdet training images.", panel=_DATA, min=1),
    common.opt("n_val", int, 100, help="mnistdet validation images.", panel=_DATA, min=1),
)
TRAIN_OPTIONS = (
    common.opt("epochs", int, 10, help="Epochs.", panel=_TRAIN, min=1),
    common.opt("imgsz", int, 96, help="Training image size (multiple of 32).", panel=_TRAIN, min=32),
    common.opt("batch", int, 16, help="Batch size.", panel=_TRAIN, min=1),
    common.opt("device", str, "cpu", help="cpu, 0, 0,1, ...", panel=_TRAIN),
    common.opt("workers", int, 0, help="Data loader workers.", panel=_TRAIN, min=0),
    common.opt("plots", bool, False, "--plots/--no-plots", help="ultralytics' plots.", panel=_TRAIN),
    common.opt("quick", bool, False, "--quick", help=f"Small settings: {QUICK}, {QUICK_ARGS}.", panel=_TRAIN),
    common.opt(
        "arg",
        list[str] | None,
        None,
        help="Any ultralytics train argument, key=value (repeatable).",
        panel=_TRAIN,
    ),
)


def _apply_quick(opts: common.Options) -> dict[str, Any]:
    """The options, with --quick's settings where an option was not given, and --arg parsed."""
    import yaml

    values = dict(opts)
    extra: dict[str, Any] = {}
    if values.get("quick"):
        values.update({k: v for k, v in QUICK.items() if k not in opts.given})
        extra.update(QUICK_ARGS)
    for item in values.pop("arg", None) or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"--arg {item!r}: expected key=value, e.g. --arg mosaic=0")
        extra[key.strip()] = yaml.safe_load(value)
    values["extra"] = extra
    return values


def _data_yaml(o: dict[str, Any], out: Path) -> str:
    if o["data"] != "mnistdet":
        if not Path(o["data"]).is_file():
            raise FileNotFoundError(f"--data {o['data']!r}: no such file (a data.yaml, or 'mnistdet')")
        return str(Path(o["data"]).resolve())
    from scsa.tasks.detection.data import export_mnistdet

    folder = out / "data" / f"mnistdet-{o['data_size']}-{o['n_train']}-{o['n_val']}"
    if (folder / "data.yaml").is_file():
        return str(folder / "data.yaml")
    return str(
        export_mnistdet(folder, fmt="yolo", image_size=o["data_size"], n_train=o["n_train"], n_val=o["n_val"])
    )


def _train_one(
    o: dict[str, Any], data: str, attention: str, seed: int, out: Path, name: str
) -> dict[str, Any]:
    from scsa.integrations import ultralytics as su

    yolo = su.build_model(o["model"], attention, where=o["where"], weights=o["weights"])
    t0 = time.perf_counter()
    yolo.train(
        **su.offline_train_args(
            device=o["device"],
            data=data,
            epochs=o["epochs"],
            imgsz=o["imgsz"],
            batch=o["batch"],
            workers=o["workers"],
            plots=o["plots"],
            seed=seed,
            deterministic=True,
            project=str(out),
            name=name,
            exist_ok=True,
            verbose=False,
            pretrained=o["weights"] is not None,
            **o["extra"],
        )
    )
    wall = time.perf_counter() - t0
    trainer = yolo.trainer
    row: dict[str, Any] = {
        "attention": attention,
        "where": o["where"] if attention != "none" else "-",
        "seed": seed,
    }
    row.update(su.measure(trainer.best if Path(trainer.best).is_file() else yolo, o["imgsz"]))
    row.update({k: float(trainer.metrics.get(v, math.nan)) for k, v in METRICS.items()})
    row.update({"train_s": round(wall, 1), "best": str(trainer.best)})
    return row


@app.command()
@common.with_options(
    common.run_options("runs/yolo", resume=False), MODEL_OPTIONS, DATA_OPTIONS, TRAIN_OPTIONS
)
def train(
    attention: str = typer.Option("scsa", "--attention", "-a", help="Zoo block, or none."),
    *,
    opts: common.Options,
) -> None:
    """Train one model offline (ultralytics' trainer); prints its metrics and best.pt."""
    try:
        o = _apply_quick(opts)
        out = Path(o["out_dir"])
        row = _train_one(o, _data_yaml(o, out), attention, o["seed"], out, f"{attention}-seed{o['seed']}")
    except (ValueError, FileNotFoundError) as err:
        raise common.fail(err) from err
    from scsa.io import write_json

    write_json(Path(row["best"]).parent.parent / "scsa_summary.json", row)
    typer.echo(" ".join(f"{k}={_fmt(v)}" for k, v in row.items()))


@app.command()
def val(
    weights: str = typer.Argument(..., help="A best.pt / last.pt."),
    data: str = typer.Option(..., "--data", "-d", help="data.yaml."),
    imgsz: int = typer.Option(96, help="Image size."),
    device: str = typer.Option("cpu", help="cpu, 0, ..."),
) -> None:
    """Validate a checkpoint: mAP50-95, mAP50, precision, recall."""
    from ultralytics import YOLO

    from scsa.integrations import ultralytics as su

    if not Path(weights).is_file():
        raise common.fail(FileNotFoundError(f"{weights!r}: no such file"))
    metrics = YOLO(weights).val(data=data, imgsz=imgsz, device=device, plots=False, verbose=False, workers=0)
    typer.echo(" ".join(f"{k}={metrics.results_dict[v]:.4f}" for k, v in METRICS.items()))
    typer.echo(f"params={su.measure(weights, imgsz)['params']}")


@app.command()
def predict(
    weights: str = typer.Argument(..., help="A best.pt / last.pt."),
    source: str = typer.Option(..., "--source", "-s", help="Image, folder or glob."),
    imgsz: int = typer.Option(96, help="Image size."),
    conf: float = typer.Option(0.25, help="Confidence threshold."),
    out: str = typer.Option("runs/yolo/predict", "--out", "-o", help="Folder for the drawn images."),
    device: str = typer.Option("cpu", help="cpu, 0, ..."),
) -> None:
    """Detect objects; saves the drawn images and prints the boxes per image."""
    from ultralytics import YOLO

    import scsa.integrations.ultralytics  # noqa: F401  (registers the layers the checkpoint names)

    if not Path(weights).is_file():
        raise common.fail(FileNotFoundError(f"{weights!r}: no such file"))
    results = YOLO(weights).predict(
        source,
        imgsz=imgsz,
        conf=conf,
        device=device,
        save=True,
        project=out,
        name=".",
        exist_ok=True,
        verbose=False,
    )
    for r in results:
        boxes = [f"{r.names[int(c)]}:{s:.2f}" for c, s in zip(r.boxes.cls.tolist(), r.boxes.conf.tolist())]
        typer.echo(f"{Path(r.path).name}: {len(boxes)} boxes {' '.join(boxes)}")
    typer.echo(f"drawn images in {Path(out).resolve()}")


@app.command()
@common.with_options(
    common.run_options("runs/yolo-compare", resume=False, seed=False),
    MODEL_OPTIONS,
    DATA_OPTIONS,
    TRAIN_OPTIONS,
)
def compare(
    attentions: str = typer.Option(
        "none,scsa,cbam,eca", "--attentions", "-a", help="Comma list; none = unmodified."
    ),
    seeds: str = typer.Option("0", help="Comma list of seeds; each variant trains once per seed."),
    *,
    opts: common.Options,
) -> None:
    """Train the unmodified model and each variant with the same settings and seeds; table + plot."""
    try:
        o = _apply_quick(opts)
        names = [a.strip().lower() for a in attentions.split(",") if a.strip()]
        seed_list = [int(s) for s in seeds.split(",") if s.strip()]
        if "none" not in names:
            names.insert(0, "none")
        out = Path(o["out_dir"])
        data = _data_yaml(o, out)
        rows = []
        for seed in seed_list:
            for a in names:
                typer.echo(f"training {a} (seed {seed}) ...", err=True)
                rows.append(_train_one(o, data, a, seed, out / "runs", f"{a}-seed{seed}"))
    except (ValueError, FileNotFoundError) as err:
        raise common.fail(err) from err
    table = summarize(rows, names)
    files = write_tables(out, rows, table, o, seed_list)
    typer.echo(files["md"].read_text())


def summarize(rows: list[dict[str, Any]], names: list[str]) -> list[dict[str, Any]]:
    """One row per variant: mean ± std over seeds, and mAP50-95's difference from the unmodified model
    judged against the seed spread (with one seed there is no spread, so no ranking)."""
    table = []
    base = [r["mAP50-95"] for r in rows if r["attention"] == "none"]
    for a in names:
        runs = [r for r in rows if r["attention"] == a]
        entry: dict[str, Any] = {"attention": a, "where": runs[0]["where"], "seeds": len(runs)}
        for key in ("params", "GFLOPs", "FPS"):
            entry[key] = statistics.fmean(r[key] for r in runs)
        for key in METRICS:
            vals = [r[key] for r in runs]
            entry[key] = statistics.fmean(vals)
            entry[f"{key}_std"] = statistics.stdev(vals) if len(vals) > 1 else None
        mine = [r["mAP50-95"] for r in runs]
        entry["delta_mAP50-95"] = statistics.fmean(mine) - statistics.fmean(base)
        if a == "none":
            entry["verdict"] = "baseline"
        elif len(mine) < 2 or len(base) < 2:
            entry["verdict"] = "one seed: no ranking"
        else:
            spread = math.hypot(statistics.stdev(mine), statistics.stdev(base))
            d = entry["delta_mAP50-95"]
            entry["verdict"] = "within spread (tie)" if abs(d) <= spread else ("better" if d > 0 else "worse")
        table.append(entry)
    return table


def _fmt(v: Any, std: Any = None) -> str:
    if isinstance(v, float):
        s = f"{v:.4f}" if abs(v) < 100 else f"{v:.0f}"
        return s + (f" ± {std:.4f}" if std is not None else "")
    return str(v)


def write_tables(
    out: Path, rows: list[dict], table: list[dict], o: dict, seeds: list[int]
) -> dict[str, Path]:
    """``compare.md``/``.csv``/``.json`` (the table), ``runs.csv`` (every run) and ``compare.png``."""
    from scsa.io import write_csv, write_json, write_text

    head = [
        "attention",
        "where",
        "params (M)",
        "GFLOPs",
        "FPS",
        "mAP50-95",
        "mAP50",
        "precision",
        "recall",
        "Δ mAP50-95",
        "verdict",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for e in table:
        cells = [
            e["attention"],
            e["where"],
            f"{e['params'] / 1e6:.3f}",
            f"{e['GFLOPs']:.3f}",
            f"{e['FPS']:.0f}",
            *(_fmt(e[k], e[f"{k}_std"]) for k in METRICS),
            f"{e['delta_mAP50-95']:+.4f}",
            e["verdict"],
        ]
        lines.append("| " + " | ".join(cells) + " |")
    note = (
        f"{o['model']}, {o['epochs']} epochs, imgsz {o['imgsz']}, batch {o['batch']}, data {o['data']}, "
        f"seeds {seeds}{', ' + str(o['extra']) if o['extra'] else ''}; GFLOPs at imgsz {o['imgsz']} (torch's FLOP counter), FPS: batch 1 on {o['device']}."
    )
    if len(seeds) < 2:
        note += " One seed: differences are not ranked (rerun with --seeds 0,1,2 for mean ± std)."
    if table and table[0]["attention"] == "none" and table[0]["mAP50"] < 0.01:
        note += (
            " The unmodified model learned (almost) nothing at these settings: this table checks the pipeline, "
            "not the blocks (train longer, e.g. --epochs 50 --n-train 2000, on a GPU)."
        )
    paths = {
        "md": write_text(out / "compare.md", "\n".join([*lines, "", note]) + "\n"),
        "csv": write_csv(out / "compare.csv", table),
        "json": write_json(
            out / "compare.json", {"settings": {**o, "seeds": seeds}, "table": table, "runs": rows}
        ),
        "runs": write_csv(out / "runs.csv", rows),
    }
    paths["png"] = _plot(out / "compare.png", rows, table)
    return paths


def _plot(path: Path, rows: list[dict], table: list[dict]) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from scsa.io import atomic_write

    fig, ax = plt.subplots(figsize=(max(3.6, 1.2 + 0.9 * len(table)), 3.0), dpi=100)
    for x, e in enumerate(table):
        ax.bar(
            x,
            e["mAP50-95"],
            yerr=e["mAP50-95_std"] or 0,
            color="#888" if e["attention"] == "none" else "#3a7",
            capsize=3,
        )
        pts = [r["mAP50-95"] for r in rows if r["attention"] == e["attention"]]
        ax.plot([x + 0.25] * len(pts), pts, "k.", ms=5)
    ax.set_xticks(range(len(table)), [e["attention"] for e in table])
    ax.set_ylabel("mAP50-95 (val)")
    ax.set_title("bars: mean over seeds, dots: single runs", fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png"))
    plt.close(fig)
    return path
