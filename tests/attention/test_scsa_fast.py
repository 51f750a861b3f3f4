"""The default (fast) SCSA path against the literal oracle: forward, every gradient, every mode.

The fast path lives in ``scsa.attention._scsa_fast`` (with its C passes in ``_native.c``, and
without them); these tests hold it to ``tests/oracle.py``
(Si et al., arXiv 2407.05128). Exactness of the algebra is checked in float64 (agreement to
~1e-10); float32 is checked against the float64 oracle at the spec's 1e-5 of the largest magnitude.
"""

from __future__ import annotations

import itertools

import pytest
import torch

import scsa.attention
from oracle import OracleSCSA
from scsa import SCSA


@pytest.fixture(autouse=True, params=["native", "pytorch"])
def passes(request):
    """Every test twice: with the C module's passes (the default where it is built) and with the
    PyTorch ops that replace them where it is not."""
    if request.param == "native" and not scsa.attention.native_available():
        pytest.skip("the C module scsa.attention._native is not built here")
    with scsa.attention.native(request.param == "native"):
        yield request.param


def _randomize(module: torch.nn.Module) -> torch.nn.Module:
    with torch.no_grad():  # non-trivial affines and biases: nothing hides behind an init value
        for p in module.parameters():
            p.copy_(torch.randn_like(p) * 0.5 + (1.0 if p.dim() == 1 else 0.0))
    return module


def _pair(dim: int, **kwargs) -> tuple[SCSA, OracleSCSA]:
    block = _randomize(SCSA(dim, **kwargs))
    oracle = OracleSCSA(dim, **kwargs)
    oracle.load_state_dict(block.state_dict())
    return block, oracle


def _run(module: torch.nn.Module, x: torch.Tensor, g: torch.Tensor) -> list[torch.Tensor]:
    """Output, then the gradients of <out, g> w.r.t. x and every parameter (in parameter order)."""
    module.zero_grad(set_to_none=True)
    x = x.detach().clone().requires_grad_()
    out = module(x)
    out.backward(g)
    return [out.detach(), x.grad, *(p.grad for p in module.parameters())]


def _assert_matches(got: list[torch.Tensor], ref: list[torch.Tensor], tol: float) -> None:
    """Output within tol of its largest magnitude; gradients within tol of the largest gradient of the
    block (some are zero in exact arithmetic, e.g. a norm bias under a shift-invariant softmax gate)."""
    scale = max(r.abs().max().item() for r in ref[1:])
    for i, (a, r) in enumerate(zip(got, ref)):
        assert a is not None, f"missing gradient #{i}"
        err = (a.double() - r.double()).abs().max().item()
        bound = tol * (r.abs().max().item() if i == 0 else scale)
        assert err <= bound, f"tensor #{i}: max error {err:.3e} > {bound:.3e}"


CONFIGS = [
    {},
    {"gate_layer": "softmax", "head_num": 2, "qkv_bias": True},
    {"window_size": -1},
    {"window_size": 3, "head_num": 4, "group_kernel_sizes": (1, 3, 11, 5)},
    {"down_sample_mode": "max_pool", "gate_layer": "softmax"},
    {"down_sample_mode": "recombination", "window_size": 3, "qkv_bias": True},
]
# both routes of the fast path: the row route (NCHW, sides >= 16) and the generic one; odd sizes,
# windows that do not divide the map, maps smaller than the window, batch 1, a single pixel
SHAPES = [(2, 8, 17, 23), (1, 8, 9, 13), (2, 8, 4, 5), (3, 8, 1, 1)]


@pytest.mark.parametrize(
    "config", CONFIGS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()) or "defaults"
)
def test_matches_oracle_forward_and_gradients(config):
    for shape, channels_last in itertools.product(SHAPES, (False, True)):
        block, oracle = _pair(shape[1], **config)
        x = torch.randn(shape, dtype=torch.float64)
        g = torch.randn(shape, dtype=torch.float64)
        if channels_last:
            x, g = x.to(memory_format=torch.channels_last), g.to(memory_format=torch.channels_last)
        ref = _run(oracle.double(), x, g)
        # float64: the algebra is exact, so the two agree to rounding
        _assert_matches(_run(block.double(), x, g), ref, 1e-9)
        # float32: the spec's tolerance against the exact reference (a 1-pixel axis leaves GroupNorm
        # two values per group, too ill-conditioned for float32 to meet it; float64 covers it above)
        got = _run(block.float(), x.float(), g.float())
        _assert_matches(got, ref, 1e-5 if min(shape[2:]) > 1 else 1e-3)
        assert got[0].is_contiguous(
            memory_format=torch.channels_last if channels_last else torch.contiguous_format
        )


@pytest.mark.parametrize("width", [56, 28, 14, 7])
@pytest.mark.parametrize("window", [7, 5])
def test_matches_oracle_at_resnet_map_sizes(width, window):
    # the C passes are compiled separately for these widths with 7-wide windows (other windows take
    # the generic code): each instance against the exact result, eval output and training gradients
    block, oracle = _pair(16, window_size=window, head_num=2)
    x, g = (
        torch.randn(2, 16, width, width, dtype=torch.float64),
        torch.randn(2, 16, width, width, dtype=torch.float64),
    )
    ref = _run(oracle.double(), x, g)
    _assert_matches(_run(block.float(), x.float(), g.float()), ref, 1e-5)
    with torch.no_grad():
        out = block.eval()(x.float())
    assert (out.double() - ref[0]).abs().max() <= 1e-5 * ref[0].abs().max()


@pytest.mark.parametrize("train", [False, True])
def test_eval_and_no_grad_paths_match_and_leave_input_alone(train):
    block, oracle = _pair(16, head_num=2)
    block.train(train)
    oracle.train(train)
    for shape in [(2, 16, 20, 18), (2, 16, 7, 7)]:
        x = torch.randn(shape)
        before = x.clone()
        with torch.no_grad():
            ref = oracle(x)
            assert torch.allclose(block(x), ref, atol=1e-5 * ref.abs().max().item(), rtol=0)
        with torch.inference_mode():
            out = block(x)
        assert torch.allclose(out, ref, atol=1e-5 * ref.abs().max().item(), rtol=0)
        assert torch.equal(x, before)
    x = torch.randn(2, 16, 20, 18, requires_grad=True)
    before = x.detach().clone()
    block(x).sum().backward()
    assert torch.equal(x.detach(), before)


def test_follows_parameter_writes():
    """Nothing derived from the parameters is cached: writes through ``.data`` (which gradcheck and
    some optimizers use, and which leave ``_version`` alone) change the output at once."""
    block = SCSA(8).eval()
    x = torch.randn(1, 8, 9, 9)
    with torch.no_grad():
        before = block(x)
        block.global_dwc_l.weight.data.mul_(-3.0)
        after = block(x)
        ref = OracleSCSA(8).eval()
        ref.load_state_dict(block.state_dict())
        assert not torch.allclose(before, after)
        assert torch.allclose(after, ref(x), atol=1e-6, rtol=0)


def test_strided_and_empty_inputs():
    block, oracle = _pair(8)
    base = torch.randn(2, 8, 40, 34)
    for x in (base[:, :, ::2, 1:], base.transpose(2, 3), base[:1, :, :17, 5:22]):
        g = torch.randn(x.shape)
        _assert_matches(_run(block, x, g), _run(oracle, x, g), 1e-5)
    for shape in [(0, 8, 9, 9), (0, 8, 32, 40)]:
        x = torch.randn(shape, requires_grad=True)
        block(x).sum().backward()
        assert x.grad.shape == shape


def test_frozen_parameters_and_input_without_grad():
    block, oracle = _pair(8, down_sample_mode="max_pool")
    for module in (block, oracle):
        module.norm.requires_grad_(False)
        module.local_dwc.requires_grad_(False)
    x = torch.randn(2, 8, 18, 17)
    for module in (block, oracle):
        module(x).square().sum().backward()
    for (name, p), q in zip(block.named_parameters(), oracle.parameters()):
        if not p.requires_grad:
            assert p.grad is None, name
        else:
            assert torch.allclose(p.grad, q.grad, atol=1e-5 * q.grad.abs().max().item(), rtol=0), name


def test_dropout_draws_the_oracles_mask():
    for shape, kwargs in [
        ((2, 8, 20, 20), {}),
        ((2, 16, 7, 7), {"head_num": 2}),
        ((1, 8, 9, 5), {"window_size": -1}),
    ]:
        block, oracle = _pair(shape[1], attn_drop_ratio=0.3, **kwargs)
        x = torch.randn(shape)
        g = torch.randn(shape)
        torch.manual_seed(7)
        got = _run(block, x, g)
        torch.manual_seed(7)
        ref = _run(oracle, x, g)
        _assert_matches(got, ref, 1e-5)
    # and the dropout is live: another seed, another output
    torch.manual_seed(8)
    assert not torch.allclose(block(x), got[0])


def test_double_backward_and_retain_graph():
    block, oracle = _pair(8, window_size=3)
    block, oracle = block.double(), oracle.double()
    x = torch.randn(1, 8, 16, 17, dtype=torch.float64)
    v = torch.randn_like(x)
    second = []
    for module in (block, oracle):
        xi = x.clone().requires_grad_()
        (gx,) = torch.autograd.grad(module(xi), xi, v, create_graph=True)
        second.append(torch.autograd.grad(gx.square().sum(), xi)[0])
    assert torch.allclose(second[0], second[1], rtol=1e-9, atol=1e-12)
    xi = x.clone().requires_grad_()
    out = block(xi)
    out.backward(v, retain_graph=True)
    first = xi.grad.clone()
    out.backward(v)
    assert torch.allclose(xi.grad, 2 * first)


@pytest.mark.parametrize("shape", [(2, 8, 20, 18), (2, 8, 9, 7)])
def test_half_precision_and_autocast(shape):
    block, oracle = _pair(8)
    x = torch.randn(shape)
    with torch.no_grad():
        ref = oracle(x)
        tol = 2e-2 * ref.abs().max().item()
        out = block.bfloat16()(x.bfloat16())
        assert out.dtype == torch.bfloat16
        assert (out.float() - ref).abs().max().item() <= tol
        block.float()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = block(x)
        assert out.dtype == torch.float32
        assert (out - ref).abs().max().item() <= tol
    xg = x.bfloat16().requires_grad_()
    block.bfloat16()(xg).float().sum().backward()
    assert xg.grad.dtype == torch.bfloat16 and torch.isfinite(xg.grad).all()


def _saved_bytes(block: torch.nn.Module, x: torch.Tensor) -> int:
    """Bytes of the distinct storages autograd keeps for the backward, besides x and the parameters."""
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = block(x)
    out.sum().backward()
    skip = {x.untyped_storage().data_ptr(), *(p.untyped_storage().data_ptr() for p in block.parameters())}
    return sum(n for ptr, n in storages.items() if ptr not in skip)


def test_training_keeps_only_the_input_and_small_tensors():
    """The memory claim: for the backward the block keeps x (which the layer before keeps anyway)
    and tensors of size B·C·(H + W) or smaller, never a full-size product (the oracle keeps several)."""
    for shape, kwargs in [
        ((2, 16, 56, 56), {}),
        ((2, 16, 14, 14), {}),
        ((2, 16, 14, 14), {"down_sample_mode": "max_pool"}),
    ]:
        x = torch.randn(shape, requires_grad=True)
        full = x.numel() * x.element_size()
        assert _saved_bytes(SCSA(shape[1], **kwargs), x) < 0.25 * full, (shape, kwargs)
        assert _saved_bytes(OracleSCSA(shape[1], **kwargs), x) > 2 * full  # the measure can fail


def test_chooser():
    x = torch.randn(2, 8, 6, 6)
    block = SCSA(8)
    assert scsa.attention.use_fast_path()
    assert block.describe_path(x).startswith("fast path")
    with scsa.attention.fast_path(False):
        assert not scsa.attention.use_fast_path()
        assert "set_fast_path(False)" in block.describe_path(x)
    assert scsa.attention.use_fast_path()  # the context manager restores the state
    assert "dtype" in block.describe_path(torch.zeros(2, 8, 6, 6, dtype=torch.int64))
    assert "device" in block.describe_path(torch.empty(2, 8, 6, 6, device="meta"))
    assert "type" in block.describe_path(torch.nn.Parameter(x))

    paths: list[str] = []  # what each capture runs, seen from inside the block
    handle = block.register_forward_pre_hook(lambda m, args: paths.append(m.describe_path(args[0])))
    eager = block(x)
    vmapped = torch.func.vmap(block)(x.unsqueeze(1)).squeeze(1)  # a torch.func transform: the plain path
    traced = torch.jit.trace(block, x, check_trace=False)
    handle.remove()
    assert paths[0].startswith("fast path")
    assert "torch.func" in paths[1] and "tracing" in paths[2], paths
    scripted = torch.jit.script(block)  # TorchScript compiles the plain path only
    with scsa.attention.fast_path(False):
        plain = block(x)
    for other in (vmapped, scripted(x), traced(x), block.forward_plain(x), plain):
        assert torch.allclose(other, eager, atol=1e-6, rtol=0)


def test_routes():
    block = SCSA(8)

    def path(b: SCSA, x: torch.Tensor) -> str:
        with scsa.attention.native(False):
            return b.describe_path(x)

    assert path(block, torch.randn(1, 8, 16, 40)).endswith("row matmuls")
    assert path(block, torch.randn(1, 8, 15, 40)).endswith("generic")  # small side
    assert path(block, torch.randn(1, 8, 16, 16).to(memory_format=torch.channels_last)).endswith("generic")
    assert path(block, torch.randn(1, 8, 16, 16).bfloat16()).endswith("generic")
    assert path(SCSA(8, down_sample_mode="max_pool"), torch.randn(1, 8, 16, 16)).endswith("generic")
    assert path(SCSA(8, window_size=-1), torch.randn(1, 8, 16, 16)).endswith("row matmuls")


def test_parametrized_weights_forward_and_gradients():
    # a computed weight (weight_norm on a depth-wise conv of each attention) is read through its
    # parametrization, and its gradients reach the parametrization's own parameters
    from torch.nn.utils.parametrizations import weight_norm

    block, oracle = _pair(16)
    for m in (block, oracle):
        weight_norm(m.local_dwc)
        weight_norm(m.q)
        with torch.no_grad():  # a norm different from the weight's own: the parametrization matters
            m.local_dwc.parametrizations.weight.original0.mul_(3.0)
            m.q.parametrizations.weight.original0.mul_(0.5)
    x, g = torch.randn(2, 16, 14, 14), torch.randn(2, 16, 14, 14)
    with torch.no_grad():
        assert torch.allclose(block.eval()(x), oracle.eval()(x), rtol=0, atol=1e-5 * oracle(x).abs().max())
    got, ref = _run(block.train(), x, g), _run(oracle.train(), x, g)
    _assert_matches(got, ref, 1e-5)
