"""mIoU, mAcc, aAcc against a confusion matrix counted by hand."""

import math

import pytest
import torch

from scsa.tasks.segmentation.metrics import SegmentationMetrics, scores_from_confusion

# 3 classes; 255 ignored. Pixels (target -> pred):
#   0->0 x3, 0->1 x1, 1->1 x2, 1->2 x1, 2->2 x1, 2->0 x1, and two ignored pixels predicted 0 and 2.
TARGET = torch.tensor([[0, 0, 0, 0, 1, 1], [1, 2, 2, 255, 255, 0]])
PRED = torch.tensor([[0, 0, 0, 1, 1, 1], [2, 2, 0, 0, 2, 0]])
# the last pixel of row 2 is 0 -> 0, so class 0 has 4 right of 5
CONFUSION = [[4, 1, 0], [0, 2, 1], [1, 0, 1]]


def test_scores_match_hand_counts():
    metric = SegmentationMetrics(3, ["a", "b", "c"])
    metric.update(PRED[None], TARGET[None])
    scores = metric.compute()
    assert metric.confusion.compute().tolist() == CONFUSION
    # IoU = TP / (TP + FP + FN): a 4/(5+5-4)=4/6, b 2/(3+3-2)=2/4, c 1/(2+2-1)=1/3
    iou = [4 / 6, 2 / 4, 1 / 3]
    assert scores["per_class_iou"] == pytest.approx(dict(zip("abc", iou)))
    assert scores["miou"] == pytest.approx(sum(iou) / 3)
    assert scores["macc"] == pytest.approx((4 / 5 + 2 / 3 + 1 / 2) / 3)
    assert scores["aacc"] == pytest.approx(7 / 10)  # the two ignored pixels count nowhere


def test_logits_accepted_and_batches_accumulate():
    metric = SegmentationMetrics(3)
    logits = torch.nn.functional.one_hot(PRED, 3).permute(2, 0, 1).float()
    metric.update(logits[None], TARGET[None])
    metric.update(PRED[None], TARGET[None])
    assert (metric.confusion.compute() == 2 * torch.tensor(CONFUSION)).all()


def test_absent_class_left_out_of_the_mean():
    cm = torch.tensor([[3, 1, 0], [0, 2, 0], [0, 0, 0]])  # class 2: no pixel, no prediction
    scores = scores_from_confusion(cm, ["a", "b", "c"])
    assert scores["per_class_iou"]["c"] is None
    assert scores["miou"] == pytest.approx((3 / 4 + 2 / 3) / 2)
    # a class predicted but never labelled has IoU 0 and counts
    scores = scores_from_confusion(torch.tensor([[3, 1], [0, 0]]))
    assert scores["per_class_iou"]["1"] == 0.0 and scores["miou"] == pytest.approx(3 / 8)
    assert math.isnan(scores_from_confusion(torch.zeros(2, 2))["aacc"])
