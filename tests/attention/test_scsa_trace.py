"""Captured SCSA (Si et al., arXiv 2407.05128) gives the eager numbers at every size, not only the
example's: ``torch.jit.trace`` and the legacy (TorchScript) ONNX export record the window shrink
``min(window, H)`` as a graph op instead of freezing it at the traced size.

Sizes cross the window boundary: maps smaller than the 7-wide window (one shrunk window), equal,
and larger (floor-mode windows, the last rows dropped), for the block and for a whole SCSA-ResNet-18.
"""

from __future__ import annotations

import io
import warnings

import pytest
import torch

import scsa
from scsa import SCSA

SIZES = (3, 5, 7, 8, 14, 15)
MODES = [{}, {"down_sample_mode": "max_pool"}, {"down_sample_mode": "recombination", "window_size": 3}]


def _trace(module: torch.nn.Module, example: torch.Tensor):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # shape checks become constants, as intended
        return torch.jit.trace(module, example, check_trace=False)  # the tests below check it


def _rel(got: torch.Tensor, ref: torch.Tensor) -> float:
    return ((got - ref).abs().max() / ref.abs().max()).item()


@pytest.mark.parametrize("kwargs", MODES, ids=["avg_pool", "max_pool", "recombination"])
@pytest.mark.parametrize("example", [5, 14])
def test_traced_block_gives_the_eager_numbers_at_every_size(kwargs, example):
    torch.manual_seed(0)
    block = SCSA(32, head_num=2, **kwargs).eval()
    traced = _trace(block, torch.randn(2, 32, example, example))
    for h in SIZES:
        x = torch.randn(2, 32, h, h + 1)
        with torch.no_grad():
            got = traced(x)
            with scsa.attention.fast_path(False):
                plain = block(x)
            eager = block(x)
        assert got.shape == x.shape
        # the trace records the plain definition: the same ops, the same numbers
        assert torch.allclose(got, plain, rtol=0, atol=1e-6), (example, h)
        assert _rel(got, eager) < 1e-5, (example, h)


@pytest.mark.slow
def test_traced_model_gives_the_eager_numbers_at_every_size():
    # an SCSA-ResNet-18 traced at 64 px: layer4's map is 2x2 there, 8x8 at 256 px (larger than the window)
    torch.manual_seed(0)
    model = scsa.create_model("scsa_resnet18", num_classes=10).eval()
    traced = _trace(model, torch.randn(1, 3, 64, 64))
    for size in (32, 160, 256):
        x = torch.randn(1, 3, size, size)
        with torch.no_grad():
            assert _rel(traced(x), model(x)) < 1e-5, size


def _ort_session(module: torch.nn.Module, example: torch.Tensor):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    buf = io.BytesIO()
    axes = {0: "batch", 2: "height", 3: "width"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (example,),
            buf,
            dynamo=False,
            input_names=["x"],
            output_names=["y"],
            dynamic_axes={"x": axes, "y": axes if isinstance(module, SCSA) else {0: "batch"}},
        )
    return ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])


def test_legacy_onnx_export_of_the_block_runs_at_every_size():
    torch.manual_seed(0)
    block = SCSA(32, head_num=2).eval()
    session = _ort_session(block, torch.randn(1, 32, 5, 5))
    for h in SIZES:
        x = torch.randn(2, 32, h, h + 2)
        got = torch.from_numpy(session.run(None, {"x": x.numpy()})[0])
        with torch.no_grad():
            assert _rel(got, block(x)) < 1e-5, h


@pytest.mark.slow
def test_legacy_onnx_export_of_a_model_runs_at_every_size():
    torch.manual_seed(0)
    model = scsa.create_model("scsa_resnet18", num_classes=10).eval()
    session = _ort_session(model, torch.randn(1, 3, 64, 64))
    for size in (32, 160, 256):
        x = torch.randn(1, 3, size, size)
        got = torch.from_numpy(session.run(None, {"x": x.numpy()})[0])
        with torch.no_grad():
            assert _rel(got, model(x)) < 1e-4, size
