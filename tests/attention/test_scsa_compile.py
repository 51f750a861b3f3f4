"""SCSA under torch.compile: one custom operator per block, the same numbers as eager, no
recompilation for new map sizes, gradients through the operator's backward."""

from __future__ import annotations

import pytest
import torch
from torch.nn.utils import parametrize

import scsa
from scsa import SCSA
from scsa.attention import _scsa_compile, compile_op, use_compile_op

CONFIGS = [
    {},
    {"head_num": 2, "qkv_bias": True, "gate_layer": "softmax"},
    {"down_sample_mode": "max_pool", "window_size": 3},
    {"down_sample_mode": "recombination", "window_size": 3, "qkv_bias": True},
    {"window_size": -1, "group_kernel_sizes": (1, 3, 5, 7)},
]
# maps smaller and larger than the default window of 7, odd sizes that leave rows unpooled (no size
# 1: torch.compile specializes every size-1 dimension, of any model, and recompiles for it)
SIZES = [(9, 11), (5, 5), (16, 7), (3, 2), (14, 14), (2, 30)]


def _id(config: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in config.items()) or "default"


def _block(dim: int = 16, **config) -> SCSA:
    block = SCSA(dim, **config)
    with torch.no_grad():
        for p in block.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    return block.eval()


class Recorder:
    """A torch.compile backend that keeps each captured graph and runs it as captured."""

    def __init__(self) -> None:
        self.graphs: list[torch.fx.GraphModule] = []

    def __call__(self, gm: torch.fx.GraphModule, example_inputs):
        self.graphs.append(gm)
        return gm.forward

    def targets(self, graph: int = -1) -> list:
        return [n.target for n in self.graphs[graph].graph.nodes if n.op == "call_function"]


def _op_calls(recorder: Recorder, graph: int = -1) -> int:
    return sum(t is torch.ops.scsa.scsa.default or t is torch.ops.scsa.scsa for t in recorder.targets(graph))


@pytest.fixture(autouse=True)
def _fresh_compile():
    torch.compiler.reset()
    yield
    torch.compiler.reset()


@pytest.mark.parametrize("config", CONFIGS, ids=_id)
def test_operator_passes_torch_library_opcheck(config):
    """Schema, fake implementation (strides included), autograd registration and AOT dispatch with
    dynamic shapes, as torch.library checks them."""
    block = _block(**config)
    params = [p.detach().clone().requires_grad_() for p in _scsa_compile.block_params(block)]
    for shape in [(2, 16, 9, 11), (1, 16, 3, 4)]:
        x = torch.randn(shape, requires_grad=True)
        args = _scsa_compile.op_args(block, x, params)
        torch.library.opcheck(torch.ops.scsa.scsa.default, args)
        assert torch.equal(torch.ops.scsa.scsa(*args), block(x.detach()))


@pytest.mark.parametrize("config", CONFIGS, ids=_id)
def test_compiled_block_is_one_operator_and_equals_eager_at_every_size(config):
    block = _block(**config)
    recorder = Recorder()
    compiled = torch.compile(block, backend=recorder, dynamic=True, fullgraph=True)
    for b, (h, w) in zip([2, 3, 2, 4, 2, 3], SIZES):
        x = torch.randn(b, 16, h, w)
        with torch.no_grad():
            torch.testing.assert_close(compiled(x), block(x), rtol=0, atol=0)
    # one capture serves every size: the window shrink happens inside the operator
    assert len(recorder.graphs) == 1
    assert _op_calls(recorder) == 1
    assert not any("group_norm" in str(t) or "softmax" in str(t) for t in recorder.targets())
    x = torch.randn(1, 16, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), block(x), rtol=0, atol=0)


def test_switched_off_the_compiler_traces_the_definition():
    block = _block(head_num=2)
    x = torch.randn(2, 16, 9, 9)
    recorder = Recorder()
    assert use_compile_op()
    with compile_op(False):
        assert not use_compile_op()
        out = torch.compile(block, backend=recorder, fullgraph=True)(x)
    assert use_compile_op()
    assert _op_calls(recorder) == 0
    assert any("group_norm" in str(t) for t in recorder.targets())
    torch.testing.assert_close(out, block(x), rtol=1e-5, atol=1e-6)


def test_dropout_in_training_and_parametrized_weights_trace_the_definition():
    dropping = _block(attn_drop_ratio=0.5).train()
    recorder = Recorder()
    torch.compile(dropping, backend=recorder, fullgraph=True)(torch.randn(2, 16, 8, 8))
    assert _op_calls(recorder) == 0
    assert _op_calls_after(dropping.eval()) == 1  # dropout draws nothing in eval

    block = _block()
    parametrize.register_parametrization(block.q, "weight", _Double())
    assert _scsa_compile.block_params(block) is None
    recorder = Recorder()
    x = torch.randn(2, 16, 8, 8)
    out = torch.compile(block, backend=recorder, fullgraph=True)(x)
    assert _op_calls(recorder) == 0
    torch.testing.assert_close(out, block(x), rtol=1e-5, atol=1e-6)


class _Double(torch.nn.Module):
    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return w * 2


def _op_calls_after(block: SCSA) -> int:
    torch.compiler.reset()
    recorder = Recorder()
    torch.compile(block, backend=recorder, fullgraph=True)(torch.randn(2, 16, 8, 8))
    return _op_calls(recorder)


def test_export_records_standard_ops_only():
    block = _block()
    program = torch.export.export(block, (torch.randn(2, 16, 9, 9),))
    names = {str(n.target) for n in program.graph.nodes if n.op == "call_function"}
    assert not any(name.startswith("scsa.") for name in names)
    x = torch.randn(2, 16, 9, 9)
    torch.testing.assert_close(program.module()(x), block(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("config", CONFIGS[:4], ids=_id)
def test_training_through_the_operator_gives_eager_gradients(config):
    block = _block(**config).train()
    compiled = torch.compile(block, backend="aot_eager", fullgraph=True, dynamic=True)
    for shape in [(2, 16, 12, 10), (3, 16, 5, 6)]:
        x = torch.randn(shape, requires_grad=True)
        x_ref = x.detach().clone().requires_grad_()
        target = torch.randn(shape)
        out = compiled(x)
        torch.testing.assert_close(out, block(x_ref), rtol=1e-5, atol=1e-6)
        compiled_grads = torch.autograd.grad((out * target).sum(), [x, *block.parameters()])
        eager_grads = torch.autograd.grad((block(x_ref) * target).sum(), [x_ref, *block.parameters()])
        for got, want in zip(compiled_grads, eager_grads):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_frozen_parameters_and_channels_last_inputs():
    block = _block().requires_grad_(False)
    compiled = torch.compile(block, backend="aot_eager", fullgraph=True)
    x = torch.randn(2, 16, 10, 9).to(memory_format=torch.channels_last).requires_grad_()
    x_ref = x.detach().clone().requires_grad_()
    out = compiled(x)
    ref = block(x_ref)
    assert out.stride() == torch.empty_like(x).stride()
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
    out.sum().backward()
    ref.sum().backward()
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-4, atol=1e-6)


def test_whole_model_captures_each_block_once_without_size_recompiles():
    """The batch, then sizes whose last stage pools to one token (64 px: 2x2 < 7) and to many
    (256 px: 8x8), after one dynamic capture: no recompilation, eager numbers."""
    model = scsa.create_model("scsa_resnet18", num_classes=10).eval()
    recorder = Recorder()
    compiled = torch.compile(model, backend=recorder, dynamic=True)
    with torch.no_grad():
        for b, s in [(2, 64), (3, 96), (2, 256), (2, 40)]:
            x = torch.randn(b, 3, s, s)
            torch.testing.assert_close(compiled(x), model(x), rtol=1e-4, atol=1e-5)
    assert len(recorder.graphs) == 1
    assert _op_calls(recorder) == sum(isinstance(m, SCSA) for m in model.modules()) == 8


@pytest.mark.slow
def test_inductor_compiles_a_model_with_the_operator():
    model = scsa.create_model("scsa_resnet18", num_classes=10).eval()
    compiled = torch.compile(model, dynamic=True)
    with torch.no_grad():
        for s in (48, 64):
            x = torch.randn(2, 3, s, s)
            torch.testing.assert_close(compiled(x), model(x), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("native", [True, False], ids=["C module", "PyTorch ops"])
def test_backward_operator_takes_the_fast_paths_backward_where_the_c_module_covers_it(native):
    """With the C module, the compiled training step runs the eager fast path's own forward and
    backward: bit-identical gradients. Without it, the vjp of the readable definition: equal within
    rounding."""
    if native and not scsa.attention.native_available():
        pytest.skip("the C module is not built")
    block = _block(head_num=2).train()
    x = torch.randn(3, 16, 14, 12, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_()
    target = torch.randn(3, 16, 14, 12)
    with scsa.attention.native(native):
        compiled = torch.compile(block, backend="aot_eager", fullgraph=True)
        got = torch.autograd.grad((compiled(x) * target).sum(), [x, *block.parameters()])
        want = torch.autograd.grad((block(x_ref) * target).sum(), [x_ref, *block.parameters()])
    for g, w in zip(got, want):
        if native:
            assert torch.equal(g, w)
        else:
            torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-5)


def test_autocast_gives_eager_numbers():
    model = scsa.create_model("scsa_resnet18", num_classes=10).eval()
    recorder = Recorder()
    compiled = torch.compile(model, backend=recorder)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out, ref = compiled(x), model(x)
    assert out.dtype == ref.dtype == torch.bfloat16
    assert torch.equal(out, ref)
    assert _op_calls(recorder) == 8
