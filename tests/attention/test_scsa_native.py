"""The C module of SCSA's fast path (``scsa.attention._native``): built, chosen, deterministic.

Its numbers are held to the oracle (Si et al., arXiv 2407.05128) by test_scsa.py and
test_scsa_fast.py, which run through it by default; this file checks what those cannot see.
"""

from __future__ import annotations

import os
import sys

import pytest
import torch

import scsa.attention
from scsa import SCSA
from scsa.attention import _scsa_fast

native = pytest.mark.skipif(not scsa.attention.native_available(), reason="the C module is not built here")


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or os.environ.get("SCSA_NATIVE") == "0",
    reason="built where a C compiler is (setup.py marks it optional)",
)
def test_module_is_built_on_linux():
    # the build is optional, so a compiler error would otherwise only show as a slow fast path
    assert scsa.attention.native_available() and scsa.attention.use_native()


@native
def test_routes():
    block = SCSA(8)
    x = torch.randn(2, 8, 9, 11)
    c_module = "fast path, C module"
    assert block.describe_path(x).startswith(c_module)
    assert block.describe_path(x.double()).startswith(c_module)
    assert SCSA(8, window_size=-1).describe_path(x).startswith(c_module)
    assert not block.describe_path(x.to(memory_format=torch.channels_last)).startswith(c_module)
    assert not block.describe_path(x.bfloat16()).startswith(c_module)
    assert not SCSA(8, down_sample_mode="max_pool").describe_path(x).startswith(c_module)
    assert not SCSA(8, down_sample_mode="recombination", window_size=3).describe_path(x).startswith(c_module)
    with scsa.attention.native(False):
        assert block.describe_path(x) == "fast path, PyTorch ops, generic"
    # float32 parameters and a float64 input: the C passes, SMSA's small graph by autograd
    assert block.describe_path(x.double()) == c_module + ", separate passes"


@native
@pytest.mark.parametrize("shape", [(2, 16, 30, 17), (3, 16, 14, 14), (2, 16, 7, 7)])
def test_same_numbers_for_every_thread_count(shape):
    # one plane (or sample) per OpenMP iteration: the result may not depend on how many threads split them
    block = SCSA(16, head_num=2).train()
    x, g = torch.randn(shape), torch.randn(shape)
    before = torch.get_num_threads()
    results = []
    try:
        for threads in (1, 2, 3):
            torch.set_num_threads(threads)
            block.zero_grad(set_to_none=True)
            xg = x.clone().requires_grad_()
            out = block(xg)
            out.backward(g)
            results.append([out.detach(), xg.grad, *(p.grad for p in block.parameters())])
    finally:
        torch.set_num_threads(before)
    for other in results[1:]:
        assert all(torch.equal(a, b) for a, b in zip(results[0], other))


@native
def test_output_recompute_is_bitwise_and_refuses_an_overwritten_input():
    block = SCSA(16).train()
    x = torch.randn(2, 16, 20, 20, requires_grad=True)
    y = torch.relu(x)  # a non-leaf input, as in the backbones
    out = block(y)
    recompute = _scsa_fast.output_recompute(out)
    assert recompute is not None and torch.equal(recompute(), out)
    with torch.no_grad():
        y.mul_(2.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        recompute()


@native
def test_attention_kernel_matches_softmax_attention():
    # the C attention against PyTorch's, forward and backward, over token counts and head sizes
    for b, heads, d, n in [(2, 1, 64, 16), (3, 2, 8, 4), (1, 4, 32, 1), (2, 1, 512, 2)]:
        q, k = (
            torch.randn(b, heads, d, n, dtype=torch.float64),
            torch.randn(b, heads, d, n, dtype=torch.float64),
        )
        v = torch.randn(b, heads, d, 1, dtype=torch.float64)
        inputs = [t.clone().requires_grad_() for t in (q, k, v)]
        ref = torch.softmax(inputs[0] @ inputs[1].transpose(-2, -1), dim=-1) @ inputs[2]
        do = torch.randn_like(ref)
        ref_grads = torch.autograd.grad(ref, inputs, do)
        got_inputs = [t.clone().requires_grad_() for t in (q, k, v)]
        got = _scsa_fast._NativeAttention.apply(*got_inputs)
        got_grads = torch.autograd.grad(got, got_inputs, do)
        assert torch.allclose(got, ref, atol=1e-12, rtol=0)
        assert all(torch.allclose(a, r, atol=1e-10, rtol=0) for a, r in zip(got_grads, ref_grads))


@native
def test_inplace_writes_over_the_input_only_without_autograd():
    block = SCSA(16, head_num=2, inplace=True).eval()
    plain = SCSA(16, head_num=2).eval()
    plain.load_state_dict(block.state_dict())
    assert "inplace=True" in repr(block)
    x = torch.randn(2, 16, 20, 18)
    with torch.no_grad():
        expected = plain(x)
        y = x.clone()
        out = block(y)
    assert out.data_ptr() == y.data_ptr() and torch.equal(out, expected)
    # a graph could need the input: a fresh output, the input untouched
    xg = x.clone().requires_grad_()
    out = block(xg)
    assert out.data_ptr() != xg.data_ptr() and torch.equal(xg.detach(), x)
    block.train()
    xt = x.clone().requires_grad_()
    block(xt).sum().backward()
    assert torch.equal(xt.detach(), x)


@native
def test_backbones_let_their_attention_work_in_place():
    from scsa.models import create_model

    model = create_model("scsa_resnet18", num_classes=10).eval()
    blocks = [m for m in model.modules() if isinstance(m, SCSA)]
    assert blocks and all(m.inplace for m in blocks)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        got = model(x)
        for m in blocks:
            m.inplace = False
        expected = model(x)
    assert torch.equal(got, expected)


@native
@pytest.mark.parametrize("shape", [(4, 16, 28, 28), (2, 32, 7, 7), (2, 16, 9, 11)])
def test_one_call_forward_matches_the_separate_passes(shape):
    # the whole forward in one C call (sample by sample) and the separate passes (plane by plane)
    # do the same arithmetic: outputs, and what training keeps for the backward, agree bit for bit.
    # The one call takes a batch with a sample per thread, so the thread count picks the route.
    block = SCSA(16 if shape[1] == 16 else 32, head_num=2)
    x, g = torch.randn(shape), torch.randn(shape)
    before = torch.get_num_threads()
    results = []
    try:
        for threads, route in ((1, "one call"), (shape[0] + 1, "separate passes")):
            torch.set_num_threads(threads)
            assert block.describe_path(x) == "fast path, C module, " + route
            with torch.no_grad():
                out_eval = block.eval()(x)
            block.train().zero_grad(set_to_none=True)
            xg = x.clone().requires_grad_()
            out = block(xg)
            out.backward(g)
            results.append([out_eval, out.detach(), xg.grad, *(p.grad for p in block.parameters())])
    finally:
        torch.set_num_threads(before)
    assert all(torch.equal(a, b) for a, b in zip(*results))


def test_environment_sets_the_initial_state_and_the_switch_refuses_a_missing_module():
    import subprocess

    code = (
        "import scsa.attention as a, torch\n"
        "assert not a.use_native() and not a.native_available() and a.use_fast_path()\n"
        "try:\n    a.set_native(True)\nexcept RuntimeError as e:\n    print(e)\n"
        "print(a.SCSA(8).describe_path(torch.randn(2, 8, 9, 9)))\n"
    )
    env = {**os.environ, "SCSA_NATIVE": "0"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert "SCSA_NATIVE=0" in out.stdout and "PyTorch ops" in out.stdout, out.stdout + out.stderr
