"""``maps``: run a model on one image under :func:`scsa.explain.capture` and draw what its SCSA blocks computed."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from matplotlib.figure import Figure

from scsa.explain._model import ImageLike, ModelLike, load_image, resolve
from scsa.explain.capture import capture

__all__ = ["maps"]


def maps(
    model: ModelLike,
    image: ImageLike,
    blocks: Sequence[str] | None = None,
    attention: bool = False,
    size: int | None = None,
) -> tuple[Figure, dict[str, dict[str, torch.Tensor]]]:
    """The figure of :func:`scsa.explain.plots.maps_figure` for ``image``, and the recorded tensors.

    ``blocks``: names of the blocks to draw (default: all SCSA blocks); ``attention``: add the C×C
    channel-attention matrix of each block."""
    from scsa.explain.plots import maps_figure

    ex = resolve(model)
    img = load_image(image, size)
    x = ex.normalize(img[None]).to(next(ex.model.parameters()).device)
    with torch.no_grad(), capture(ex.model, attention=attention) as records:
        probs = ex.model(x).float().softmax(dim=1)[0]
    records = dict(records)
    if blocks:
        unknown = [b for b in blocks if b not in records]
        if unknown:
            raise ValueError(f"no SCSA block named {unknown} in {ex.name}; blocks: {list(records)}")
        records = {b: records[b] for b in blocks}
    c = int(probs.argmax())
    title = f"{ex.name}: class {ex.class_name(c)} ({float(probs[c]):.2f})"
    return maps_figure(img.permute(1, 2, 0).numpy(), records, title=title), records
