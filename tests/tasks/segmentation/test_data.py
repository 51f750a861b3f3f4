"""The data layouts, mnistseg, and the bad-input rules."""

import numpy as np
import pytest
from PIL import Image
from tests.tasks.segmentation.conftest import write_pair

from scsa.tasks.segmentation.data import (
    IGNORE_INDEX,
    VOC_CLASSES,
    BadSegmentationData,
    SegmentationFiles,
    scan_ade20k,
    scan_folder,
    scan_voc,
)
from scsa.tasks.segmentation.mnistseg import MNISTSEG_CLASSES, export_mnistseg, make_mnistseg


def test_mnistseg_deterministic_labels_and_split():
    a_img, a_mask = make_mnistseg("train", 6, image_size=48)
    b_img, b_mask = make_mnistseg("train", 3, image_size=48)
    assert a_img.shape == (6, 48, 48, 3) and a_mask.shape == (6, 48, 48)
    assert (a_img[:3] == b_img).all() and (a_mask[:3] == b_mask).all()  # a prefix is the same data
    assert a_mask.max() <= 10 and (a_mask > 0).any() and (a_mask == 0).mean() > 0.5
    v_img, _ = make_mnistseg("val", 3, image_size=48)
    assert not (v_img == b_img).all()
    # every labelled pixel is brighter than the background (strokes >= half intensity)
    fg, bg = a_img[a_mask > 0].mean(), a_img[a_mask == 0].mean()
    assert fg > bg + 60
    assert len(MNISTSEG_CLASSES) == 11


def test_export_mnistseg_reads_back_as_ade20k(tmp_path):
    root = export_mnistseg(tmp_path / "m", n_train=3, n_val=2, image_size=32)
    layout = scan_ade20k(root)
    assert layout.classes == MNISTSEG_CLASSES and len(layout.train) == 3 and len(layout.val) == 2
    ds = SegmentationFiles(layout.train, len(layout.classes), reduce_zero_label=True)
    images, masks = make_mnistseg("train", 3, image_size=32)
    for i in range(3):
        img, labels = ds[i]
        assert (img.permute(1, 2, 0).numpy() == images[i]).all()
        assert (labels.numpy() == masks[i]).all()


def test_ade20k_reduce_zero_label(ade20k):
    layout = scan_ade20k(ade20k)
    assert layout.classes == ("sky", "tree", "road")
    ds = SegmentationFiles(layout.train, 3, reduce_zero_label=True)
    _, labels = ds[0]
    raw = np.asarray(Image.open(layout.train[0][1])).astype(np.int64)
    assert (labels.numpy()[raw == 0] == IGNORE_INDEX).all()
    assert (labels.numpy()[raw > 0] == raw[raw > 0] - 1).all()


def test_voc_palette_and_split_lists(tmp_path):
    root = tmp_path / "VOCdevkit" / "VOC2012"
    mask = np.zeros((20, 20), dtype=np.uint8)
    mask[5:10, 5:10] = 15  # person
    mask[4, :] = 255  # border
    for stem in ("a", "b", "c"):
        write_pair(root / "JPEGImages", root / "SegmentationClass", stem, mask, mask_mode="P", ext=".jpg")
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    (root / "ImageSets/Segmentation/train.txt").write_text("a\nb\n")
    (root / "ImageSets/Segmentation/val.txt").write_text("c\n")
    layout = scan_voc(tmp_path)  # finds VOCdevkit/VOC2012
    assert layout.classes == VOC_CLASSES and [p[0].stem for p in layout.train] == ["a", "b"]
    _, labels = SegmentationFiles(layout.val, 21)[0]
    assert labels[7, 7] == 15 and labels[4, 0] == IGNORE_INDEX and labels[0, 0] == 0


def test_folder_layout(tmp_path):
    for split in ("train", "val"):
        write_pair(tmp_path / "images" / split, tmp_path / "masks" / split, "x", np.array([[0, 1], [1, 255]]))
    (tmp_path / "classes.txt").write_text("# names\nbg\nfg\n")
    layout = scan_folder(tmp_path)
    assert layout.classes == ("bg", "fg")
    _, labels = SegmentationFiles(layout.train, 2)[0]
    assert labels.tolist() == [[0, 1], [1, 255]]


def test_bad_inputs_name_the_file_and_value(ade20k):
    train = ade20k / "images" / "training"
    ann = ade20k / "annotations" / "training"
    # a label beyond the classes
    write_pair(train, ann, "badlabel", np.full((8, 8), 9))
    layout = scan_ade20k(ade20k)
    ds = SegmentationFiles(layout.train, 3, reduce_zero_label=True)
    index = [p[0].stem for p in ds.pairs].index("badlabel")
    with pytest.raises(BadSegmentationData, match=r"badlabel\.png.*\[9\].*1\.\.3"):
        ds[index]
    # a mask of another size than its image
    write_pair(train, ann, "badsize", np.ones((8, 8)), image_size=(8, 9))
    # a corrupt mask file
    (ann / "corrupt.png").write_bytes(b"\x89PNG not really")
    write_pair(train, ann / "tmp", "corrupt", np.ones((8, 8)))
    # a colour mask
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(ann / "colour.png")
    write_pair(train, ann / "tmp", "colour", np.ones((8, 8)))
    layout = scan_ade20k(ade20k)
    ds = SegmentationFiles(layout.train, 3, reduce_zero_label=True)
    stems = [p[0].stem for p in ds.pairs]
    with pytest.raises(BadSegmentationData, match=r"badsize\.png.* is 8x8 .* is 9x8"):
        ds[stems.index("badsize")]
    with pytest.raises(BadSegmentationData, match=r"cannot read mask file .*corrupt\.png"):
        ds[stems.index("corrupt")]
    with pytest.raises(BadSegmentationData, match=r"colour\.png.*mode 'RGB'"):
        ds[stems.index("colour")]
    # skip_bad_images: the four bad pairs are left out and counted
    ds = SegmentationFiles(layout.train, 3, reduce_zero_label=True, skip_bad_images=True)
    assert len(ds) == 3 and len(ds.skipped) == 4
    assert any("badlabel" in s for s in ds.skipped)


def test_missing_image_or_mask(ade20k):
    (ade20k / "annotations/training/img0.png").unlink()
    with pytest.raises(BadSegmentationData, match=r"image 'img0' has no mask"):
        scan_ade20k(ade20k)
    layout = scan_ade20k(ade20k, skip_bad_images=True)
    assert len(layout.train) == 2 and len(layout.missing) == 1
    write_pair(ade20k / "images/training", ade20k / "annotations/training", "img0", np.ones((4, 4)))
    (ade20k / "images/validation/img1.png").unlink()
    with pytest.raises(BadSegmentationData, match=r"mask .*img1\.png.* has no image"):
        scan_ade20k(ade20k)
    (ade20k / "classes.txt").write_text("one\n")
    with pytest.raises(BadSegmentationData, match=r"classes\.txt.*1 classes"):
        scan_ade20k(ade20k, skip_bad_images=True)
