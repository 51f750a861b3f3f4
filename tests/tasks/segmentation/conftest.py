import numpy as np
import pytest
from PIL import Image


def write_pair(image_dir, mask_dir, stem, mask, image_size=None, mask_mode="L", palette=None, ext=".png"):
    """An RGB image and a mask PNG with the same stem; returns their paths."""
    image_dir.mkdir(parents=True, exist_ok=True)
    mask_dir.mkdir(parents=True, exist_ok=True)
    h, w = image_size or mask.shape
    rng = np.random.default_rng(abs(hash(stem)) % 2**32)
    img = Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
    img_path = image_dir / f"{stem}{'.jpg' if ext == '.jpg' else '.png'}"
    img.save(img_path)
    m = Image.fromarray(mask.astype(np.uint8), mode="L")
    if mask_mode == "P":
        m = m.convert("P")
        m.putpalette(palette or [v for i in range(256) for v in (i, 255 - i, (7 * i) % 256)])
        m = Image.fromarray(mask.astype(np.uint8), mode="P")
        m.putpalette(palette or [v for i in range(256) for v in (i, 255 - i, (7 * i) % 256)])
    mask_path = mask_dir / f"{stem}.png"
    m.save(mask_path)
    return img_path, mask_path


@pytest.fixture
def ade20k(tmp_path):
    """A 3-class ADE20K-layout folder: values 0 (ignored) and 1..3."""
    root = tmp_path / "ade"
    rng = np.random.default_rng(0)
    for split, n in (("training", 3), ("validation", 2)):
        for i in range(n):
            mask = rng.integers(0, 4, (24, 32))
            write_pair(root / "images" / split, root / "annotations" / split, f"img{i}", mask)
    (root / "classes.txt").write_text("sky\ntree\nroad\n")
    return root
