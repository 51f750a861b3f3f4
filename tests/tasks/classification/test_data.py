"""Data: the embedded mnist5k split, folder checks, bad images, samplers and seeded transforms."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from scsa.tasks.classification.data import (
    BadImageError,
    ImageDataModule,
    ImageFolderData,
    SeededSampler,
    ShardSampler,
    find_bad_images,
    load_mnist5k,
    scan_image_folder,
)
from scsa.tasks.classification.recipes import get_recipe
from scsa.tasks.classification.transforms import ImageTransform


def test_mnist5k_split_is_fixed_stratified_and_disjoint():
    tx, ty, vx, vy = load_mnist5k()
    assert tx.shape == (4000, 3, 32, 32) and vx.shape == (1000, 3, 32, 32)
    assert tx.dtype == torch.uint8 and ty.dtype == torch.int64
    assert torch.bincount(ty).tolist() == [400] * 10
    assert torch.bincount(vy).tolist() == [100] * 10
    # the three channels are copies, the 2-pixel border is the zero padding around the 28x28 digit
    assert torch.equal(tx[:, 0], tx[:, 2])
    assert tx[:, :, :2].max() == 0 and tx[:, :, :, -2:].max() == 0
    assert tx.float().mean() > 20  # real digits, not blanks
    # no image is in both splits
    train_keys = {bytes(x[0].numpy()) for x in tx}
    assert not any(bytes(x[0].numpy()) in train_keys for x in vx[:200])
    # shuffled, so that any prefix (a limited val pass) holds several classes
    assert len(set(vy[:30].tolist())) >= 5
    # the split does not depend on the global RNG
    load_mnist5k.cache_clear()
    torch.manual_seed(123)
    assert torch.equal(load_mnist5k()[3], vy)


def test_scan_folder_lists_images(image_folder):
    listing = scan_image_folder(image_folder)
    assert listing["classes"] == ["class0", "class1", "class2"]
    assert len(listing["train"]) == 48 and len(listing["val"]) == 24
    assert [label for _, label in listing["val"][:9]] == [0] * 8 + [1]


def test_empty_folder_is_a_clear_error(tmp_path):
    for split in ("train", "val"):
        (tmp_path / split / "cat").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"no images under .*train"):
        scan_image_folder(tmp_path)
    Image.new("RGB", (4, 4)).save(tmp_path / "train" / "cat" / "a.png")
    (tmp_path / "val" / "cat").rmdir()
    with pytest.raises(ValueError, match=r"val'? has no class folders"):
        scan_image_folder(tmp_path)
    with pytest.raises(ValueError, match="does not exist"):
        scan_image_folder(tmp_path / "nope")


def test_missing_split_is_a_clear_error(image_folder):
    import shutil

    shutil.rmtree(image_folder / "val")
    with pytest.raises(ValueError, match=r"val'? is missing"):
        scan_image_folder(image_folder)


def test_mismatched_classes_are_a_clear_error(image_folder):
    (image_folder / "val" / "class1").rename(image_folder / "val" / "dog")
    with pytest.raises(ValueError, match=r"only in train: \['class1'\]; only in val: \['dog'\]"):
        scan_image_folder(image_folder)


def test_bad_image_names_the_file(image_folder):
    bad = image_folder / "train" / "class0" / "000.png"
    bad.write_bytes(b"not a png at all")
    truncated = image_folder / "train" / "class1" / "000.jpg"
    Image.new("RGB", (64, 64), (10, 200, 30)).save(truncated, quality=95)
    truncated.write_bytes(truncated.read_bytes()[:300])
    listing = scan_image_folder(image_folder)
    tf = ImageTransform(16, [0.5] * 3, [0.5] * 3, train=False)
    ds = ImageFolderData(listing["train"], tf)
    index = [str(p) for p, _ in listing["train"]].index(str(bad))
    with pytest.raises(BadImageError, match=r"cannot read image file .*class0/000\.png.*--skip-bad-images"):
        ds[index]
    assert sorted(find_bad_images([p for p, _ in listing["train"]])) == sorted([str(bad), str(truncated)])


def test_seeded_sampler_shards_one_global_order():
    one = list(SeededSampler(10, seed=3))
    shards = [list(SeededSampler(10, seed=3, num_replicas=2, rank=r)) for r in range(2)]
    # rank r takes positions r, r+2, ...: two ranks with batch 2 see one rank's batch of 4
    assert [one[i] for i in range(0, 10, 2)] == shards[0]
    assert [one[i] for i in range(1, 10, 2)] == shards[1]
    sampler = SeededSampler(10, seed=3)
    sampler.set_epoch(1)
    assert [i for i, _ in sampler] != [i for i, _ in one]  # a new order every epoch
    assert sorted(i for i, _ in one) == list(range(10))
    # padding by wrapping when the size does not divide
    assert [len(list(SeededSampler(5, 0, 2, r))) for r in range(2)] == [3, 3]
    assert list(ShardSampler(5, 2, 1)) == [1, 3]


def test_transform_is_a_function_of_the_seed():
    img = torch.randint(0, 256, (3, 16, 16), dtype=torch.uint8)
    tf = ImageTransform(16, [0.5] * 3, [0.25] * 3, train=True, augment="crop-flip")
    assert torch.equal(tf(img, 7), tf(img, 7))
    assert any(not torch.equal(tf(img, 7), tf(img, s)) for s in range(8, 12))
    with pytest.raises(ValueError, match="needs a seed"):
        tf(img)
    ev = ImageTransform(16, [0.5] * 3, [0.25] * 3, train=False)
    assert torch.allclose(ev(img), (img.float() / 255 - 0.5) / 0.25)
    rrc = ImageTransform(24, [0.5] * 3, [0.25] * 3, train=True, augment="rrc-flip")
    pil = Image.new("RGB", (40, 30))
    assert rrc(pil, 1).shape == (3, 24, 24)
    assert ImageTransform(24, [0.5] * 3, [0.25] * 3, train=False, resize_size=28)(pil).shape == (3, 24, 24)


def test_datamodule_batches_and_global_batch_rule(image_folder):
    dm = ImageDataModule(image_folder, get_recipe("small", batch_size=8, image_size=16))
    dm.setup("fit")
    assert dm.num_classes == 3 and dm.flip
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (8, 3, 16, 16) and x.dtype == torch.float32 and y.shape == (8,)
    mnist = ImageDataModule("mnist5k", get_recipe("small"))
    assert mnist.num_classes == 10 and not mnist.flip  # a mirrored digit is not the same digit

    class World:
        world_size, global_rank = 3, 0

    dm.trainer = World()
    with pytest.raises(ValueError, match="batch_size=8 and 3 processes"):
        dm.train_dataloader()
