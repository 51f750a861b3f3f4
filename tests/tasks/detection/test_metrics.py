"""COCO metrics: torchmetrics' numbers equal COCOeval's on the results file we write."""

import contextlib
import io

import pytest
import torch

from scsa.tasks.detection.data import export_mnistdet
from scsa.tasks.detection.data.formats import CocoDetection
from scsa.tasks.detection.metrics import METRIC_KEYS, DetectionMetrics, coco_results


@pytest.mark.parametrize("masks", [False, True])
def test_map_equals_cocoeval_on_the_results_json(tmp_path, masks):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    root = export_mnistdet(tmp_path, fmt="coco", n_train=1, n_val=12)
    ann = root / "annotations" / "instances_val.json"
    ds = CocoDetection(root / "val", ann, masks=masks)
    g = torch.Generator().manual_seed(0)
    metric = DetectionMetrics(masks=masks, classes=ds.classes, sync=False)
    preds, ids = [], []
    for i in range(len(ds)):
        _, t = ds[i]
        n = len(t["boxes"])
        boxes = torch.cat(
            [t["boxes"] + torch.randn(n, 4, generator=g) * 2, torch.tensor([[10.0, 10, 40, 40]])]
        )
        labels = torch.cat(
            [t["labels"][torch.randperm(n, generator=g)] if i % 3 == 0 else t["labels"], torch.tensor([3])]
        )
        p = {"boxes": boxes, "scores": torch.rand(n + 1, generator=g), "labels": labels}
        if masks:
            extra = torch.zeros(1, 128, 128)
            extra[:, 12:30, 12:30] = 1  # the extra box's mask
            p["masks"] = torch.cat([t["masks"].float(), extra])[:, None]
        preds.append(p)
        ids.append(t["image_id"])
        metric.update([p], [t])
    ours = metric.compute()
    assert set(METRIC_KEYS) <= set(ours) and 0 < ours["map"] < 1 and len(ours["per_class"]) == 10
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(ann))
        for iou_type, prefix in [("bbox", "")] + ([("segm", "segm_")] if masks else []):
            results = coco_results(preds, ids, ds.label_to_cat_id, iou_type)
            assert {r["category_id"] for r in results} <= set(range(1, 11))
            e = COCOeval(gt, gt.loadRes(results), iou_type)
            e.evaluate()
            e.accumulate()
            e.summarize()
            expected = dict(zip(METRIC_KEYS, e.stats[[0, 1, 2, 3, 4, 5, 6, 7, 8]]))
            for key, value in expected.items():
                if iou_type == "segm" and key in ("map_small", "map_medium", "map_large"):
                    continue  # torchmetrics sizes predicted masks its own way (see DetectionMetrics)
                assert ours[prefix + key] == pytest.approx(float(value), abs=1e-6), (iou_type, key)


def test_crowd_regions_are_ignored_not_missed():
    target = {
        "boxes": torch.tensor([[0.0, 0, 10, 10], [20, 20, 40, 40]]),
        "labels": torch.tensor([1, 1]),
        "iscrowd": torch.tensor([0, 1]),
    }
    pred = {
        "boxes": torch.tensor([[0.0, 0, 10, 10]]),
        "scores": torch.tensor([0.9]),
        "labels": torch.tensor([1]),
    }
    m = DetectionMetrics(sync=False)
    m.update([pred], [target])
    assert m.compute()["map"] == pytest.approx(1.0)  # the crowd box counts neither as a miss nor a hit
