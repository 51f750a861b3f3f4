"""Readers of the three detection formats users bring: COCO (instances json), Pascal VOC (XML) and YOLO (txt).

Every reader yields what :class:`~scsa.tasks.detection.mnistdet.MnistDet` yields: ``(image, target)`` with a
``tv_tensors.Image`` uint8 image and a target dict of ``boxes`` (``tv_tensors.BoundingBoxes`` XYXY, pixels),
``labels`` (1..K; 0 is the detectors' background), ``image_id``, ``area``, ``iscrowd`` and, where the format
has them and ``masks=True``, ``masks`` (``tv_tensors.Mask``). Each dataset has ``classes`` (K names) and
``label_to_cat_id`` (label -> the format's own category id, for COCO results files).

Annotations are checked when the dataset is built, so a bad file stops a run before training: a missing
image, a box outside the image or with non-positive size, an unknown category, a label line with the
wrong field count, an empty annotation file -> :class:`BadAnnotationError` naming the file and the
annotation id or line. With ``skip_bad_annotations=True`` such entries are dropped and counted in
``n_skipped`` (a missing image drops its image). A corrupt image fails when it is read, naming the file.
``iscrowd`` (COCO) and ``difficult`` (VOC) objects are dropped with ``train=True`` and kept, flagged
``iscrowd=1``, for evaluation, where COCOeval matches them as "ignore".
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["BadAnnotationError", "CocoDetection", "VOCDetection", "YoloDetection", "read_image"]

VOC_CLASSES = (
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


class BadAnnotationError(ValueError):
    """A detection annotation or image that cannot be used; the message names the file and the entry."""


def read_image(path: str | Path) -> torch.Tensor:
    """``path`` as a uint8 (3, H, W) tensor; :class:`BadAnnotationError` naming the file if it is missing or corrupt."""
    from torchvision.io import ImageReadMode, decode_image

    try:
        return decode_image(os.fspath(path), mode=ImageReadMode.RGB)
    except (RuntimeError, OSError, ValueError) as err:
        raise BadAnnotationError(f"{path}: cannot read the image ({err})") from err


def _box_problem(x0: float, y0: float, x1: float, y1: float, width: int, height: int) -> str | None:
    if not all(np.isfinite([x0, y0, x1, y1])):
        return "is not finite"
    if x1 <= x0 or y1 <= y0:
        return "has non-positive size"
    tol = 1.0  # annotation tools round to whole pixels; COCO itself has boxes ending half a pixel out
    if x0 < -tol or y0 < -tol or x1 > width + tol or y1 > height + tol:
        return f"is outside the {width}x{height} image"
    return None


class _Base(torch.utils.data.Dataset):
    classes: tuple[str, ...]
    label_to_cat_id: dict[int, int]

    def __init__(
        self, transforms=None, train: bool = False, masks: bool = False, skip_bad_annotations: bool = False
    ) -> None:
        self.transforms, self.train, self.with_masks = transforms, train, masks
        self.skip_bad_annotations = skip_bad_annotations
        self.n_skipped = 0
        # per image: (path, image_id, width, height, boxes XYXY (N, 4), labels, iscrowd, raw masks or None)
        self.items: list[tuple[Path, int, int, int, np.ndarray, np.ndarray, np.ndarray, Any]] = []

    def _bad(self, message: str) -> None:
        if not self.skip_bad_annotations:
            raise BadAnnotationError(message + " (skip_bad_annotations drops such entries)")
        self.n_skipped += 1

    def __len__(self) -> int:
        return len(self.items)

    def _masks(self, raw: Any, height: int, width: int) -> np.ndarray:
        raise NotImplementedError

    def _areas(self, raw: Any, keep: np.ndarray) -> torch.Tensor | None:
        return None  # the box areas

    def __getitem__(self, index: int):
        from torchvision import tv_tensors

        path, image_id, width, height, boxes, labels, crowd, raw = self.items[index]
        image = read_image(path)
        if tuple(image.shape[-2:]) != (height, width):
            raise BadAnnotationError(
                f"{path}: the image is {image.shape[-1]}x{image.shape[-2]}, its annotation says {width}x{height}"
            )
        keep = crowd == 0 if self.train else np.ones(len(labels), bool)
        b = torch.as_tensor(boxes[keep], dtype=torch.float32).reshape(-1, 4)
        b[:, 0::2] = b[:, 0::2].clamp(0, width)
        b[:, 1::2] = b[:, 1::2].clamp(0, height)
        target = {
            "boxes": tv_tensors.BoundingBoxes(b, format="XYXY", canvas_size=(height, width)),
            "labels": torch.as_tensor(labels[keep], dtype=torch.int64),
            "image_id": image_id,
            "area": (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]),
            "iscrowd": torch.as_tensor(crowd[keep], dtype=torch.int64),
        }
        areas = self._areas(raw, keep)
        if areas is not None:
            target["area"] = areas
        if self.with_masks:
            m = (
                self._masks(raw, height, width)[keep]
                if raw is not None
                else np.zeros((0, height, width), np.uint8)
            )
            target["masks"] = tv_tensors.Mask(torch.from_numpy(np.ascontiguousarray(m)).to(torch.uint8))
        image = tv_tensors.Image(image)
        if self.transforms is not None:
            image, target = self.transforms(image, target)
        return image, target


class CocoDetection(_Base):
    """COCO ``instances`` json + image folder, read with pycocotools.

    Category ids need not be contiguous: sorted, they become labels 1..K, and ``label_to_cat_id`` maps back.
    ``area`` comes from the annotation (as COCOeval uses it). Masks from polygons or RLE (pycocotools'
    ``annToMask``). Images without annotations are kept as negatives.
    """

    def __init__(
        self,
        image_dir: str | Path,
        ann_file: str | Path,
        *,
        transforms=None,
        train: bool = False,
        masks: bool = False,
        skip_bad_annotations: bool = False,
    ) -> None:
        super().__init__(transforms, train, masks, skip_bad_annotations)
        from pycocotools.coco import COCO

        ann_file, image_dir = Path(ann_file), Path(image_dir)
        if not ann_file.is_file():
            raise BadAnnotationError(f"{ann_file}: annotation file not found")
        try:
            data = json.loads(ann_file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise BadAnnotationError(f"{ann_file}: not a COCO annotation file ({err})") from err
        if not isinstance(data, dict) or not data.get("images") or not data.get("categories"):
            raise BadAnnotationError(f"{ann_file}: empty annotation file (no 'images' or no 'categories')")
        data.setdefault("annotations", [])
        self.coco = COCO()
        self.coco.dataset = data
        self._index()
        cat_ids = sorted(int(c["id"]) for c in data["categories"])
        names = {int(c["id"]): str(c.get("name", c["id"])) for c in data["categories"]}
        self.classes = tuple(names[c] for c in cat_ids)
        self.label_to_cat_id = {i + 1: c for i, c in enumerate(cat_ids)}
        cat_to_label = {c: i + 1 for i, c in enumerate(cat_ids)}
        self.ann_file = ann_file
        by_image: dict[int, list[dict]] = {}
        for ann in data["annotations"]:
            by_image.setdefault(ann.get("image_id"), []).append(ann)
        for img in data["images"]:
            path = image_dir / img["file_name"]
            if not path.is_file():
                self._bad(f"{ann_file}: image id {img['id']}: file {path} not found")
                continue
            w, h = int(img["width"]), int(img["height"])
            boxes, labels, crowd, raws = [], [], [], []
            for ann in by_image.get(img["id"], []):
                where = f"{ann_file}: annotation id {ann.get('id')} (image {path.name})"
                if ann.get("category_id") not in cat_to_label:
                    self._bad(f"{where}: category_id {ann.get('category_id')!r} is not in 'categories'")
                    continue
                bbox = ann.get("bbox")
                if not isinstance(bbox, (list, tuple)) or len(bbox) != 4:
                    self._bad(f"{where}: bbox {bbox!r} is not [x, y, w, h]")
                    continue
                x, y, bw, bh = (float(v) for v in bbox)
                problem = _box_problem(x, y, x + bw, y + bh, w, h)
                if problem:
                    self._bad(f"{where}: bbox {bbox} {problem}")
                    continue
                boxes.append([x, y, x + bw, y + bh])
                labels.append(cat_to_label[ann["category_id"]])
                crowd.append(int(ann.get("iscrowd", 0)))
                raws.append(ann)
            self.items.append(
                (
                    path,
                    int(img["id"]),
                    w,
                    h,
                    np.asarray(boxes, np.float32).reshape(-1, 4),
                    np.asarray(labels, np.int64),
                    np.asarray(crowd, np.int64),
                    raws,
                )
            )

    def _index(self) -> None:
        import contextlib
        import io

        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
            self.coco.createIndex()

    def _masks(self, raw: list[dict], height: int, width: int) -> np.ndarray:
        out = np.zeros((len(raw), height, width), np.uint8)
        for i, ann in enumerate(raw):
            if ann.get("segmentation"):
                out[i] = self.coco.annToMask(ann)
            else:  # no segmentation: the box is the best mask we have
                x, y, bw, bh = ann["bbox"]
                out[i, int(y) : int(np.ceil(y + bh)), int(x) : int(np.ceil(x + bw))] = 1
        return out

    def _areas(self, raw: list[dict], keep: np.ndarray) -> torch.Tensor | None:
        # COCOeval ranks objects small/medium/large by the annotation's own area (the mask's, for COCO)
        if not raw or any("area" not in a for a in raw):
            return None
        return torch.tensor([float(a["area"]) for a in raw], dtype=torch.float32)[torch.from_numpy(keep)]


class VOCDetection(_Base):
    """Pascal VOC: ``Annotations/<id>.xml``, ``JPEGImages/<id>.jpg``, ``ImageSets/Main/<split>.txt``.

    Boxes are 1-based inclusive pixel indices in the XML: ``xmin - 1, ymin - 1, xmax, ymax`` in the
    continuous coordinates the detectors use. ``classes`` defaults to the 20 VOC classes when every name
    is one of them, else to the sorted names found. ``difficult`` objects are handled as COCO's crowd.
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        *,
        classes: tuple[str, ...] | None = None,
        transforms=None,
        train: bool = False,
        skip_bad_annotations: bool = False,
    ) -> None:
        super().__init__(transforms, train, False, skip_bad_annotations)
        root = Path(root)
        list_file = root / "ImageSets" / "Main" / f"{split}.txt"
        if not list_file.is_file():
            raise BadAnnotationError(f"{list_file}: image list of split {split!r} not found")
        ids = [line.split()[0] for line in list_file.read_text().splitlines() if line.strip()]
        if not ids:
            raise BadAnnotationError(f"{list_file}: empty image list")
        parsed = []
        for image_index, stem in enumerate(ids):
            xml = root / "Annotations" / f"{stem}.xml"
            try:
                tree = ET.parse(xml).getroot()
            except (OSError, ET.ParseError) as err:
                self._bad(f"{xml}: cannot read the annotation ({err})")
                continue
            name = tree.findtext("filename") or f"{stem}.jpg"
            path = root / "JPEGImages" / name
            if not path.is_file():
                self._bad(f"{xml}: image {path} not found")
                continue
            size = tree.find("size")
            try:
                w, h = int(size.findtext("width")), int(size.findtext("height"))
            except (AttributeError, TypeError, ValueError):
                self._bad(f"{xml}: no valid <size><width>/<height>")
                continue
            objects = []
            for j, obj in enumerate(tree.iter("object")):
                bnd = obj.find("bndbox")
                try:
                    x0, y0, x1, y1 = (float(bnd.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
                except (AttributeError, TypeError, ValueError):
                    self._bad(f"{xml}: object {j}: no valid <bndbox>")
                    continue
                objects.append(
                    (
                        j,
                        (obj.findtext("name") or "").strip(),
                        x0 - 1,
                        y0 - 1,
                        x1,
                        y1,
                        int(obj.findtext("difficult") or 0),
                    )
                )
            parsed.append((xml, path, image_index, w, h, objects))
        found = sorted({o[1] for *_, objs in parsed for o in objs})
        if classes is None:
            classes = VOC_CLASSES if set(found) <= set(VOC_CLASSES) else tuple(found)
        self.classes = tuple(classes)
        self.label_to_cat_id = {i + 1: i + 1 for i in range(len(self.classes))}
        to_label = {c: i + 1 for i, c in enumerate(self.classes)}
        for xml, path, image_index, w, h, objects in parsed:
            boxes, labels, crowd = [], [], []
            for j, name, x0, y0, x1, y1, difficult in objects:
                if name not in to_label:
                    self._bad(
                        f"{xml}: object {j}: class {name!r} is not one of the {len(self.classes)} classes"
                    )
                    continue
                problem = _box_problem(x0, y0, x1, y1, w, h)
                if problem:
                    self._bad(f"{xml}: object {j}: box {[x0 + 1, y0 + 1, x1, y1]} {problem}")
                    continue
                boxes.append([x0, y0, x1, y1])
                labels.append(to_label[name])
                crowd.append(difficult)
            self.items.append(
                (
                    path,
                    image_index,
                    w,
                    h,
                    np.asarray(boxes, np.float32).reshape(-1, 4),
                    np.asarray(labels, np.int64),
                    np.asarray(crowd, np.int64),
                    None,
                )
            )


def read_yolo_yaml(data_yaml: str | Path) -> dict:
    """``data.yaml`` as a dict with ``path`` resolved and ``names`` as a tuple; errors name the file."""
    import yaml

    data_yaml = Path(data_yaml)
    if not data_yaml.is_file():
        raise BadAnnotationError(f"{data_yaml}: data.yaml not found")
    try:
        data = yaml.safe_load(data_yaml.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise BadAnnotationError(f"{data_yaml}: not a YAML file ({err})") from err
    if not isinstance(data, dict) or "names" not in data or "train" not in data:
        raise BadAnnotationError(
            f"{data_yaml}: empty or incomplete data.yaml (needs 'train', 'val' and 'names')"
        )
    names = data["names"]
    if isinstance(names, dict):
        keys = sorted(int(k) for k in names)
        if keys != list(range(len(keys))):
            raise BadAnnotationError(f"{data_yaml}: 'names' keys must be 0..{len(keys) - 1}, got {keys}")
        names = [names[k] if k in names else names[str(k)] for k in keys]
    root = Path(data.get("path") or data_yaml.parent)
    if not root.is_absolute():
        root = (data_yaml.parent / root).resolve()
    return {**data, "path": root, "names": tuple(str(n) for n in names)}


class YoloDetection(_Base):
    """YOLO txt (ultralytics layout): ``data.yaml`` names the image folders; ``labels/`` mirrors ``images/``.

    Each label line is ``class cx cy w h``, normalised to [0, 1]; class 0..K-1 becomes label 1..K. An
    image without a label file, or with an empty one, is a negative.
    """

    def __init__(
        self,
        data_yaml: str | Path,
        split: str = "train",
        *,
        transforms=None,
        train: bool = False,
        skip_bad_annotations: bool = False,
    ) -> None:
        super().__init__(transforms, train, False, skip_bad_annotations)
        from PIL import Image

        data = read_yolo_yaml(data_yaml)
        self.classes = data["names"]
        self.label_to_cat_id = {i + 1: i for i in range(len(self.classes))}
        if split not in data or not data[split]:
            raise BadAnnotationError(f"{data_yaml}: no {split!r} entry")
        image_dir = Path(data[split]) if Path(data[split]).is_absolute() else data["path"] / data[split]
        if not image_dir.is_dir():
            raise BadAnnotationError(f"{data_yaml}: {split} folder {image_dir} not found")
        files = sorted(p for p in image_dir.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise BadAnnotationError(f"{image_dir}: no images")
        for image_index, path in enumerate(files):
            parts = list(path.parts)
            i = len(parts) - 1 - parts[::-1].index("images") if "images" in parts else None
            if i is None:
                raise BadAnnotationError(f"{path}: YOLO images must sit under a folder named 'images'")
            label_file = Path(*parts[:i], "labels", *parts[i + 1 :]).with_suffix(".txt")
            try:
                with Image.open(path) as im:
                    w, h = im.size
            except OSError as err:
                raise BadAnnotationError(f"{path}: cannot read the image ({err})") from err
            boxes, labels = [], []
            lines = label_file.read_text().splitlines() if label_file.is_file() else []
            for line_no, line in enumerate(lines, 1):
                fields = line.split()
                if not fields:
                    continue
                where = f"{label_file}:{line_no}"
                if len(fields) != 5:
                    self._bad(f"{where}: {len(fields)} fields, expected 5 ('class cx cy w h')")
                    continue
                try:
                    cls = int(fields[0])
                    cx, cy, bw, bh = (float(v) for v in fields[1:])
                except ValueError:
                    self._bad(f"{where}: {line.strip()!r} is not 'class cx cy w h' numbers")
                    continue
                if not 0 <= cls < len(self.classes):
                    self._bad(f"{where}: class {cls} is not in names (0..{len(self.classes) - 1})")
                    continue
                x0, y0, x1, y1 = (cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h
                problem = _box_problem(x0, y0, x1, y1, w, h)
                if problem:
                    self._bad(f"{where}: box {fields[1:]} {problem}")
                    continue
                boxes.append([x0, y0, x1, y1])
                labels.append(cls + 1)
            self.items.append(
                (
                    path,
                    image_index,
                    w,
                    h,
                    np.asarray(boxes, np.float32).reshape(-1, 4),
                    np.asarray(labels, np.int64),
                    np.zeros(len(labels), np.int64),
                    None,
                )
            )
