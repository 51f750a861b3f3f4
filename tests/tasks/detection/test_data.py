"""mnistdet, its export, and the COCO / VOC / YOLO readers with their bad-input errors."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from scsa.tasks.detection.data import export_mnistdet
from scsa.tasks.detection.data.formats import BadAnnotationError, CocoDetection, VOCDetection, YoloDetection
from scsa.tasks.detection.mnistdet import MnistDet, make_scene


def test_scenes_are_deterministic_and_well_formed():
    a, b = make_scene(3, split="val"), make_scene(3, split="val")
    assert torch.equal(a.image, b.image) and torch.equal(a.boxes, b.boxes) and torch.equal(a.labels, b.labels)
    assert not torch.equal(make_scene(3, split="train").image, a.image)
    for variant in ("mnistdet", "mnistdet-hard"):
        for i in range(20):
            s = make_scene(i, split="val", variant=variant, image_size=128)
            assert s.image.shape == (3, 128, 128) and s.image.dtype == torch.uint8
            assert len(s.boxes) == len(s.labels) == len(s.masks) >= 0
            assert ((s.labels >= 1) & (s.labels <= 10)).all()
            assert (s.boxes[:, :2] >= 0).all() and (s.boxes[:, 2:] <= 128).all()
            assert (s.boxes[:, 2:] > s.boxes[:, :2]).all()
            for box, m in zip(s.boxes.long().tolist(), s.masks):  # the box is the mask's extent
                ys, xs = torch.nonzero(m, as_tuple=True)
                assert [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1] == box


def test_all_three_coco_scales_occur():
    areas = torch.cat(
        [
            (lambda b: (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]))(make_scene(i, split="val").boxes)
            for i in range(60)
        ]
    )
    assert (areas < 32**2).any() and ((areas >= 32**2) & (areas < 96**2)).any() and (areas >= 96**2).any()


def test_hard_variant_differs_and_dataset_items():
    assert not torch.equal(make_scene(0, variant="mnistdet-hard").image, make_scene(0).image)
    ds = MnistDet("val", n=5)
    image, target = ds[1]
    assert image.shape == (3, 128, 128) and target["masks"].shape[0] == len(target["boxes"])
    assert torch.allclose(
        target["area"],
        (target["boxes"][:, 2] - target["boxes"][:, 0]) * (target["boxes"][:, 3] - target["boxes"][:, 1]),
    )
    with pytest.raises(ValueError, match="variant"):
        MnistDet("val", variant="mnist")


def test_importing_the_data_needs_no_lightning_or_ultralytics():
    code = (
        "import sys; import scsa.tasks.detection.data; "
        "print([m for m in sys.modules if m.startswith(('lightning', 'ultralytics'))])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_yolo_and_coco_exports_read_back(tmp_path):
    yaml_path = export_mnistdet(tmp_path / "y", fmt="yolo", n_train=3, n_val=2)
    assert yaml_path.name == "data.yaml" and "names:" in yaml_path.read_text()
    coco_root = export_mnistdet(tmp_path / "c", fmt="coco", n_train=3, n_val=2)
    ref = MnistDet("val", n=2)
    yolo = YoloDetection(yaml_path, "val")
    coco = CocoDetection(coco_root / "val", coco_root / "annotations" / "instances_val.json", masks=True)
    assert yolo.classes == coco.classes == ref.classes
    for i in range(2):
        _, t = ref[i]
        _, ty = yolo[i]
        im, tc = coco[i]
        assert torch.equal(im, ref[i][0])
        assert torch.allclose(ty["boxes"], t["boxes"], atol=1e-3) and torch.equal(ty["labels"], t["labels"])
        assert torch.allclose(tc["boxes"], t["boxes"]) and torch.equal(tc["masks"], t["masks"])


# ------------------------------------------------------------------------------------------------ COCO


def _coco(tmp_path, anns, cats=((3, "cat"), (7, "dog"), (42, "bird")), n_images=2):
    for i in range(n_images):
        Image.fromarray(np.full((40, 50, 3), 30 * i, np.uint8)).save(tmp_path / f"im{i}.png")
    data = {
        "images": [
            {"id": 10 + i, "file_name": f"im{i}.png", "width": 50, "height": 40} for i in range(n_images)
        ],
        "annotations": anns,
        "categories": [{"id": c, "name": n} for c, n in cats],
    }
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(data))
    return path


def _ann(i, image_id=10, cat=7, bbox=(5, 5, 10, 20), **kw):
    return {
        "id": i,
        "image_id": image_id,
        "category_id": cat,
        "bbox": list(bbox),
        "area": bbox[2] * bbox[3],
        "iscrowd": 0,
        **kw,
    }


def test_coco_category_ids_crowd_and_masks(tmp_path):
    poly = [[5, 5, 15, 5, 15, 25, 5, 25]]
    rle = {"size": [40, 50], "counts": [0, 40 * 50]}  # uncompressed RLE: all background, then ... all ones
    anns = [
        _ann(1, cat=42, segmentation=poly),
        _ann(2, cat=3, bbox=(20, 10, 10, 10), iscrowd=1, segmentation=rle),
    ]
    path = _coco(tmp_path, anns)
    train = CocoDetection(tmp_path, path, train=True, masks=True)
    ev = CocoDetection(tmp_path, path, train=False, masks=True)
    assert train.classes == ("cat", "dog", "bird") and ev.label_to_cat_id == {1: 3, 2: 7, 3: 42}
    _, t = train[0]
    assert t["labels"].tolist() == [3] and t["masks"].shape == (1, 40, 50)
    assert t["masks"][0, 10, 10] == 1 and t["masks"][0, 30, 30] == 0  # the polygon's inside / outside
    _, t = ev[0]
    assert t["labels"].tolist() == [3, 1] and t["iscrowd"].tolist() == [0, 1]
    assert t["masks"][1].sum() == 40 * 50
    _, empty = ev[1]  # an image without annotations is a negative
    assert empty["boxes"].shape == (0, 4) and empty["labels"].shape == (0,)


@pytest.mark.parametrize(
    ("ann", "match"),
    [
        (_ann(5, bbox=(45, 5, 10, 10)), "annotation id 5.*outside"),
        (_ann(6, bbox=(5, 5, 0, 10)), "annotation id 6.*non-positive"),
        (_ann(7, cat=99), "annotation id 7.*category_id 99"),
    ],
)
def test_coco_bad_annotations(tmp_path, ann, match):
    path = _coco(tmp_path, [_ann(1), ann])
    with pytest.raises(BadAnnotationError, match=match) as err:
        CocoDetection(tmp_path, path)
    assert "instances.json" in str(err.value)
    ds = CocoDetection(tmp_path, path, skip_bad_annotations=True)
    assert ds.n_skipped == 1 and len(ds[0][1]["boxes"]) == 1


def test_coco_missing_corrupt_and_empty_files(tmp_path):
    path = _coco(tmp_path, [_ann(1)])
    (tmp_path / "im1.png").unlink()
    with pytest.raises(BadAnnotationError, match=r"im1\.png not found"):
        CocoDetection(tmp_path, path)
    assert len(CocoDetection(tmp_path, path, skip_bad_annotations=True)) == 1
    (tmp_path / "im0.png").write_bytes(b"not a png")
    with pytest.raises(BadAnnotationError, match=r"im0\.png: cannot read the image"):
        CocoDetection(tmp_path, path, skip_bad_annotations=True)[0]
    empty = tmp_path / "empty.json"
    empty.write_text("")
    with pytest.raises(BadAnnotationError, match=r"empty\.json"):
        CocoDetection(tmp_path, empty)
    empty.write_text('{"images": [], "annotations": [], "categories": []}')
    with pytest.raises(BadAnnotationError, match="empty annotation file"):
        CocoDetection(tmp_path, empty)


# ------------------------------------------------------------------------------------------------- VOC


def _voc(root, objects, classes=None):
    for d in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (root / d).mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((40, 50, 3), np.uint8)).save(root / "JPEGImages" / "a.jpg")
    objs = "".join(
        f"<object><name>{n}</name><difficult>{d}</difficult><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin>"
        f"<xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"
        for n, d, b in objects
    )
    xml = f"<annotation><filename>a.jpg</filename><size><width>50</width><height>40</height></size>{objs}</annotation>"
    (root / "Annotations" / "a.xml").write_text(xml)
    (root / "ImageSets" / "Main" / "train.txt").write_text("a\n")


def test_voc_one_based_boxes_and_difficult(tmp_path):
    _voc(tmp_path, [("dog", 0, (1, 1, 10, 20)), ("cat", 1, (11, 5, 30, 30))])
    ev = VOCDetection(tmp_path, "train")
    assert ev.classes[:2] == ("aeroplane", "bicycle")  # the 20 VOC classes, since both names are VOC's
    _, t = ev[0]
    assert t["boxes"][0].tolist() == [0, 0, 10, 20] and t["iscrowd"].tolist() == [0, 1]
    _, t = VOCDetection(tmp_path, "train", train=True)[0]
    assert t["labels"].tolist() == [ev.classes.index("dog") + 1]


def test_voc_bad_objects(tmp_path):
    _voc(tmp_path, [("dog", 0, (1, 1, 10, 20)), ("dog", 0, (10, 10, 60, 20))])
    with pytest.raises(BadAnnotationError, match=r"a\.xml: object 1: box .* outside"):
        VOCDetection(tmp_path, "train")
    assert VOCDetection(tmp_path, "train", skip_bad_annotations=True).n_skipped == 1
    with pytest.raises(BadAnnotationError, match="object 0: class 'dog' is not one"):
        VOCDetection(tmp_path, "train", classes=("cat",))


# ------------------------------------------------------------------------------------------------ YOLO


def _yolo(root, lines, names="names: ['a', 'b']"):
    (root / "images" / "train").mkdir(parents=True)
    (root / "labels" / "train").mkdir(parents=True)
    for stem in ("x", "y"):
        Image.fromarray(np.zeros((40, 80, 3), np.uint8)).save(root / "images" / "train" / f"{stem}.png")
    (root / "labels" / "train" / "x.txt").write_text("".join(line + "\n" for line in lines))
    (root / "data.yaml").write_text(f"path: .\ntrain: images/train\nval: images/train\n{names}\n")
    return root / "data.yaml"


def test_yolo_boxes_and_negatives(tmp_path):
    ds = YoloDetection(_yolo(tmp_path, ["1 0.5 0.5 0.25 0.5"]), "train")
    _, t = ds[0]
    assert t["boxes"].tolist() == [[30.0, 10.0, 50.0, 30.0]] and t["labels"].tolist() == [2]
    _, t = ds[1]  # no label file: a negative
    assert t["boxes"].shape == (0, 4)


@pytest.mark.parametrize(
    ("line", "match"),
    [
        ("1 0.5 0.5 0.25", "x.txt:2: 4 fields, expected 5"),
        ("2 0.5 0.5 0.2 0.2", "x.txt:2: class 2 is not in names"),
        ("0 0.95 0.5 0.3 0.2", "x.txt:2: box .* outside"),
        ("0 0.5 0.5 0 0.2", "x.txt:2: box .* non-positive"),
    ],
)
def test_yolo_bad_lines(tmp_path, line, match):
    yaml_path = _yolo(tmp_path, ["0 0.5 0.5 0.2 0.2", line])
    with pytest.raises(BadAnnotationError, match=match):
        YoloDetection(yaml_path, "train")
    ds = YoloDetection(yaml_path, "train", skip_bad_annotations=True)
    assert ds.n_skipped == 1 and len(ds[0][1]["boxes"]) == 1


def test_yolo_empty_yaml(tmp_path):
    (tmp_path / "data.yaml").write_text("")
    with pytest.raises(BadAnnotationError, match=r"data\.yaml: empty or incomplete"):
        YoloDetection(tmp_path / "data.yaml", "train")


def test_flip_moves_boxes_and_masks_together():
    from torchvision.transforms import v2

    ds = MnistDet("val", n=3, transforms=v2.RandomHorizontalFlip(1.0))
    plain = MnistDet("val", n=3)
    (_, t), (_, ref) = ds[2], plain[2]
    assert torch.equal(t["masks"], ref["masks"].flip(-1))
    assert torch.allclose(t["boxes"][:, 0], 128 - ref["boxes"][:, 2])
