"""Export a model holding SCSA (or any zoo block) to ONNX, with dynamic batch and spatial axes.

The exporter is PyTorch's own (``torch.onnx.export(..., dynamo=True)``); this module only picks the
options that keep batch, height and width dynamic and checks the result with ONNX Runtime.

SCSA's pooling window is written symbolically (see ``PCSA.down_sample``), so one exported graph
serves every input size, maps smaller than the window included.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

__all__ = ["check_onnx", "export_onnx"]


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike,
    input_size: Sequence[int] = (2, 3, 224, 224),
    opset: int = 18,
    dynamic: bool = True,
    check: bool = True,
) -> Path:
    """Export ``model`` (put in eval mode) to ``path`` and return the path.

    Args:
        model: the model; its first input is an image batch (B, C, H, W).
        path: where to write the ``.onnx`` file (written atomically).
        input_size: the example input's shape used for tracing.
        opset: ONNX opset, at least 17 (LayerNorm/GroupNorm-friendly opsets).
        dynamic: keep batch, height and width dynamic in the graph.
        check: run the exported graph in ONNX Runtime on the example and compare (atol 1e-4).
    """
    if opset < 17:
        raise ValueError(f"opset must be >= 17, got {opset}")
    if len(input_size) != 4 or any(int(s) < 1 for s in input_size):
        raise ValueError(f"input_size must be (B, C, H, W) with positive sizes, got {tuple(input_size)}")
    path = Path(path)
    model = model.eval()
    example = torch.randn(*input_size)
    dynamic_shapes = None
    if dynamic:
        d = torch.export.Dim.DYNAMIC
        dynamic_shapes = {_first_arg_name(model): {0: d, 2: d, 3: d}}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".onnx", dir=path.parent)
    os.close(fd)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                model,
                (example,),
                dynamic_shapes=dynamic_shapes,
                opset_version=opset,
                dynamo=True,
                external_data=False,
                verbose=False,
            )
        program.save(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    if check:
        check_onnx(model, path, [example])
    return path


def check_onnx(
    model: nn.Module, path: str | os.PathLike, inputs: Sequence[torch.Tensor], atol: float = 1e-4
) -> float:
    """Run ``path`` in ONNX Runtime on each input, compare with ``model``; return the largest difference.

    Raises ``AssertionError`` naming the input shape when a difference exceeds ``atol``.
    """
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    worst = 0.0
    model = model.eval()
    for x in inputs:
        with torch.no_grad():
            expected = model(x).float().numpy()
        got = session.run(None, {name: x.float().numpy()})[0]
        diff = float(abs(got - expected).max())
        if diff > atol:
            raise AssertionError(
                f"ONNX Runtime differs from PyTorch by {diff:.3g} > {atol} for input {tuple(x.shape)}"
            )
        worst = max(worst, diff)
    return worst


def _first_arg_name(model: nn.Module) -> str:
    import inspect

    params = list(inspect.signature(model.forward).parameters)
    if not params:
        raise ValueError(f"{type(model).__name__}.forward takes no input to export")
    return params[0]
