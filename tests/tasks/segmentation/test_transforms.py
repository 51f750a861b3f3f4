"""The training pipeline keeps masks as labels; whole and sliding inference agree where they must."""

import torch

from scsa.tasks.segmentation.data import IGNORE_INDEX
from scsa.tasks.segmentation.transforms import (
    EvalTransform,
    TrainTransform,
    collate_eval,
    infer_logits,
    rescale_size,
)


def _sample(h=40, w=56):
    image = torch.randint(0, 256, (3, h, w), dtype=torch.uint8)
    labels = torch.zeros(h, w, dtype=torch.long)
    labels[:, : w // 3] = 3
    labels[h // 2 :, w // 2 :] = 7
    labels[0, 0] = IGNORE_INDEX
    return image, labels


def test_train_transform_nearest_masks_crop_and_pad():
    image, labels = _sample()
    tf = TrainTransform(crop_size=(48, 48), scale=(56, 40), ratio_range=(0.5, 2.0))
    for _ in range(20):
        img, mask = tf(image, labels)
        assert img.shape == (3, 48, 48) and img.dtype == torch.float32
        assert mask.shape == (48, 48) and mask.dtype == torch.long
        # nearest neighbour: no value that was not there (bilinear would blend 3 and 7 into 5)
        assert set(mask.unique().tolist()) <= {0, 3, 7, IGNORE_INDEX}
    # a small rescale leaves a crop smaller than 48: padded with 0 in the image, 255 in the mask
    tf = TrainTransform(crop_size=(48, 48), scale=(28, 20), ratio_range=(1.0, 1.0), photometric=False)
    img, mask = tf(image, labels)
    assert (mask[20:, :] == IGNORE_INDEX).all() and (mask[:, 28:] == IGNORE_INDEX).all()


def test_cat_max_ratio_prefers_mixed_crops():
    labels = torch.zeros(64, 64, dtype=torch.long)
    labels[:16, :16] = 1
    image = torch.zeros(3, 64, 64, dtype=torch.uint8)
    torch.manual_seed(0)
    strict = TrainTransform(
        (16, 16), scale=(64, 64), ratio_range=(1.0, 1.0), cat_max_ratio=0.75, photometric=False
    )
    loose = TrainTransform(
        (16, 16), scale=(64, 64), ratio_range=(1.0, 1.0), cat_max_ratio=1.0, photometric=False
    )
    mixed_strict = sum(int((strict(image, labels)[1] == 1).any()) for _ in range(40))
    mixed_loose = sum(int((loose(image, labels)[1] == 1).any()) for _ in range(40))
    assert mixed_strict > mixed_loose


def test_eval_transform_keeps_labels_and_rescale_rule():
    image, labels = _sample(40, 80)
    img, mask = EvalTransform(scale=(160, 64))(image, labels)
    assert mask is labels and img.shape[-2:] == rescale_size(40, 80, (160, 64)) == (64, 128)
    batch = collate_eval([(img, mask), (torch.zeros(3, 10, 10), torch.zeros(10, 10, dtype=torch.long))])
    assert batch["image"].shape == (2, 3, 64, 128) and batch["mask"][1, 20, 20] == IGNORE_INDEX
    assert batch["mask_size"] == [(40, 80), (10, 10)]


def test_slide_equals_whole_for_a_pointwise_model():
    model = torch.nn.Conv2d(3, 5, 1)
    x = torch.randn(2, 3, 50, 70)
    whole = infer_logits(model, x, "whole")
    slide = infer_logits(model, x, "slide", crop_size=(32, 32), stride=(20, 20))
    assert whole.shape == (2, 5, 50, 70)
    torch.testing.assert_close(slide, whole)
