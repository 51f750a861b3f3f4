"""Serialization and graph capture of SCSA: state_dict, TorchScript, torch.compile, torch.export, ONNX."""

from __future__ import annotations

import io
import warnings

import pytest
import torch

from oracle import OracleSCSA
from scsa import PCSA, SCSA, SMSA

MODES = [
    {"down_sample_mode": "avg_pool"},
    {"down_sample_mode": "max_pool", "gate_layer": "softmax", "head_num": 2},
    {"down_sample_mode": "recombination", "window_size": 3, "qkv_bias": True},
    {"window_size": -1},
]


def _id(config: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in config.items())


def _block(**config) -> SCSA:
    block = SCSA(16, **config)
    with torch.no_grad():
        for p in block.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    return block.eval()


def test_state_dict_round_trip_through_a_file(tmp_path):
    block = _block(down_sample_mode="recombination", qkv_bias=True)
    torch.save(block.state_dict(), tmp_path / "scsa.pt")
    fresh = SCSA(16, down_sample_mode="recombination", qkv_bias=True).eval()
    fresh.load_state_dict(torch.load(tmp_path / "scsa.pt", weights_only=True), strict=True)
    x = torch.randn(2, 16, 15, 15)
    assert torch.equal(fresh(x), block(x))
    oracle = OracleSCSA(16, down_sample_mode="recombination", qkv_bias=True).eval()
    oracle.load_state_dict(torch.load(tmp_path / "scsa.pt", weights_only=True), strict=True)
    assert torch.allclose(oracle(x), block(x), atol=1e-6)


def test_mismatched_state_dict_is_a_clear_error():
    with pytest.raises(RuntimeError, match=r"conv_d\.weight"):
        SCSA(16).load_state_dict(SCSA(16, down_sample_mode="recombination").state_dict(), strict=True)


@pytest.mark.parametrize("config", MODES, ids=_id)
def test_torchscript_matches_eager_and_survives_save_load(config):
    block = _block(**config)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted = torch.jit.script(block)
    buffer = io.BytesIO()
    torch.jit.save(scripted, buffer)
    buffer.seek(0)
    loaded = torch.jit.load(buffer)
    for shape in [(2, 16, 14, 14), (1, 16, 5, 9), (1, 16, 1, 1)]:
        x = torch.randn(shape)
        with torch.no_grad():
            expected = block(x)
            torch.testing.assert_close(scripted(x), expected, rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(loaded(x), expected, rtol=1e-5, atol=1e-6)
    block.train()
    scripted.train()
    x = torch.randn(2, 16, 9, 9, requires_grad=True)
    scripted(x).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("cls", [SMSA, PCSA])
def test_halves_script(cls):
    block = cls(8).eval()
    x = torch.randn(1, 8, 6, 6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.testing.assert_close(torch.jit.script(block)(x), block(x))


def test_torch_compile_fullgraph_forward_and_backward():
    block = _block(down_sample_mode="recombination", window_size=3).train()
    compiled = torch.compile(block, fullgraph=True)
    x = torch.randn(2, 16, 13, 10, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_()
    out, ref = compiled(x), block(x_ref)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
    out.square().sum().backward()
    ref.square().sum().backward()
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-4, atol=1e-6)


def test_torch_export_matches_eager():
    block = _block(head_num=2)
    d = torch.export.Dim.DYNAMIC
    program = torch.export.export(
        block, (torch.randn(2, 16, 20, 15),), dynamic_shapes={"x": {0: d, 2: d, 3: d}}
    )
    # the exported program serves other sizes within the guards PyTorch records (batch >= 2, ...)
    for shape in [(2, 16, 20, 15), (3, 16, 30, 17), (4, 16, 56, 56)]:
        x = torch.randn(shape)
        torch.testing.assert_close(program.module()(x), block(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("config", MODES[:3], ids=_id)
def test_onnx_dynamic_batch_and_spatial_axes_match_eager(tmp_path, config):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from scsa.tools.export import check_onnx, export_onnx

    block = _block(**config)
    path = export_onnx(block, tmp_path / "scsa.onnx", input_size=(2, 16, 20, 15), opset=18)
    # one graph for every batch and size, windows that shrink on small maps included
    shapes = [(1, 16, 7, 7), (3, 16, 30, 17), (2, 16, 56, 56), (1, 16, 4, 4), (1, 16, 1, 1), (2, 16, 9, 2)]
    assert check_onnx(block, path, [torch.randn(s) for s in shapes], atol=1e-4) <= 1e-4


def test_onnx_export_rejects_old_opset(tmp_path):
    from scsa.tools.export import export_onnx

    with pytest.raises(ValueError, match="opset must be >= 17, got 13"):
        export_onnx(SCSA(8), tmp_path / "x.onnx", input_size=(1, 8, 7, 7), opset=13)


def test_torch_jit_trace_matches_eager():
    block = _block(down_sample_mode="recombination", window_size=3)
    x = torch.randn(2, 16, 12, 9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(block, x)
    torch.testing.assert_close(traced(x), block(x), rtol=1e-5, atol=1e-6)
