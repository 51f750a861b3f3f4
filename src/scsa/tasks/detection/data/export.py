"""Write ``mnistdet`` to disk in YOLO or COCO format, so other tools (ultralytics, pycocotools, ...) can use it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from scsa.io import atomic_write, write_json, write_text
from scsa.tasks.detection.mnistdet import CLASSES, make_scene

__all__ = ["export_mnistdet"]


def _png(path: Path, image) -> None:
    from torchvision.io import encode_png

    data = encode_png(image).numpy().tobytes()
    atomic_write(path, lambda f: f.write(data))


def export_mnistdet(
    out_dir: str | Path,
    fmt: str = "yolo",
    variant: str = "mnistdet",
    image_size: int = 128,
    n_train: int = 2000,
    n_val: int = 200,
    seed: int = 0,
) -> Path:
    """Write the scenes of :mod:`scsa.tasks.detection.mnistdet` as PNG images plus annotations.

    * ``fmt="yolo"``: ``images/{train,val}/*.png``, ``labels/{train,val}/*.txt`` (``class cx cy w h``
      normalised, class = digit 0..9) and ``data.yaml`` (``path``, ``train``, ``val``, ``names``);
      returns the path of ``data.yaml``.
    * ``fmt="coco"``: ``{train,val}/*.png`` and ``annotations/instances_{train,val}.json`` (category ids
      1..10 for digits 0..9, ``bbox`` [x, y, w, h], ``area`` = box area, compressed-RLE ``segmentation``
      of the strokes, ``iscrowd`` 0); returns ``out_dir``.

    The scenes are the ones :class:`~scsa.tasks.detection.mnistdet.MnistDet` yields for the same
    arguments, so a model trained on either form sees the same data.
    """
    if fmt not in ("yolo", "coco"):
        raise ValueError(f"fmt must be 'yolo' or 'coco', got {fmt!r}")
    for name, n in (("n_train", n_train), ("n_val", n_val)):
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"{name} must be a positive integer, got {n!r}")
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("val", n_val)):
        coco_images, coco_anns = [], []
        for i in range(n):
            scene = make_scene(i, split=split, variant=variant, image_size=image_size, seed=seed)
            name = f"{i:06d}.png"
            if fmt == "yolo":
                _png(out / "images" / split / name, scene.image)
                lines = []
                for box, label in zip(scene.boxes.tolist(), scene.labels.tolist()):
                    x0, y0, x1, y1 = (v / image_size for v in box)
                    lines.append(
                        f"{label - 1} {(x0 + x1) / 2:.6f} {(y0 + y1) / 2:.6f} {x1 - x0:.6f} {y1 - y0:.6f}"
                    )
                write_text(out / "labels" / split / f"{i:06d}.txt", "".join(line + "\n" for line in lines))
            else:
                from pycocotools import mask as mask_utils

                _png(out / split / name, scene.image)
                coco_images.append(
                    {"id": i + 1, "file_name": name, "width": image_size, "height": image_size}
                )
                for box, label, m in zip(scene.boxes.tolist(), scene.labels.tolist(), scene.masks.numpy()):
                    rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
                    x0, y0, x1, y1 = box
                    coco_anns.append(
                        {
                            "id": len(coco_anns) + 1,
                            "image_id": i + 1,
                            "category_id": label,
                            "bbox": [x0, y0, x1 - x0, y1 - y0],
                            "area": (x1 - x0) * (y1 - y0),
                            "iscrowd": 0,
                            "segmentation": {"size": rle["size"], "counts": rle["counts"].decode("ascii")},
                        }
                    )
        if fmt == "coco":
            write_json(
                out / "annotations" / f"instances_{split}.json",
                {
                    "info": {
                        "description": f"{variant} {split} (scsa), image_size {image_size}, seed {seed}"
                    },
                    "images": coco_images,
                    "annotations": coco_anns,
                    "categories": [
                        {"id": d + 1, "name": c, "supercategory": "digit"} for d, c in enumerate(CLASSES)
                    ],
                },
            )
    if fmt == "coco":
        return out
    names = "\n".join(f"  {d}: '{c}'" for d, c in enumerate(CLASSES))
    # JSON strings are valid YAML scalars, so the path is quoted safely whatever it holds
    text = f"path: {json.dumps(str(out))}\ntrain: images/train\nval: images/val\nnames:\n{names}\n"
    return write_text(out / "data.yaml", text)
