"""SCSA, SMSA and PCSA against the literal spec (tests/oracle.py): numbers, gradients, dtypes, errors."""

from __future__ import annotations

import copy
import itertools

import pytest
import torch

import scsa
from oracle import OracleSCSA
from scsa import PCSA, SCSA, SMSA

RELEASED_KEYS = {
    "local_dwc.weight",
    "local_dwc.bias",
    "global_dwc_s.weight",
    "global_dwc_s.bias",
    "global_dwc_m.weight",
    "global_dwc_m.bias",
    "global_dwc_l.weight",
    "global_dwc_l.bias",
    "norm_h.weight",
    "norm_h.bias",
    "norm_w.weight",
    "norm_w.bias",
    "norm.weight",
    "norm.bias",
    "q.weight",
    "k.weight",
    "v.weight",
}


def randomize_(module: torch.nn.Module) -> torch.nn.Module:
    """Non-trivial norm affines and biases, so no parameter hides behind its init value."""
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn_like(p) * 0.5 + (1.0 if p.dim() == 1 else 0.0))
    return module


def pair(dim: int = 16, **kwargs) -> tuple[SCSA, OracleSCSA]:
    block = randomize_(SCSA(dim, **kwargs))
    oracle = OracleSCSA(dim, **kwargs)
    oracle.load_state_dict(block.state_dict(), strict=True)
    return block, oracle


def rel_err(a: torch.Tensor, b: torch.Tensor, floor: float = 1e-30) -> float:
    """Max abs difference relative to the reference's largest magnitude (the spec's measure)."""
    return ((a - b).abs().max() / b.abs().max().clamp_min(floor)).item()


def assert_param_grads_match(
    block: torch.nn.Module,
    oracle: torch.nn.Module,
    tol: float = 1e-5,
    literal: torch.nn.Module | None = None,
) -> None:
    """``literal``: the oracle run in the block's float dtype; where its own error against ``oracle``
    exceeds ``tol``, the block may err up to 1.5 times that much (no computation in that dtype of
    the literal spec does better)."""
    ref = dict(oracle.named_parameters())
    lit = dict(literal.named_parameters()) if literal is not None else {}
    # Some gradients are zero or nearly so in exact arithmetic (the norm and conv biases under a
    # softmax gate, which is shift invariant along the axis), so what is left is float noise; a
    # tensor's error is judged against its own largest gradient or a tenth of the block's, whichever
    # is larger.
    scale = max(p.grad.abs().max().item() for p in ref.values())
    for name, p in block.named_parameters():
        assert p.grad is not None, name
        bound = tol
        if name in lit:
            bound = max(tol, 1.5 * rel_err(lit[name].grad, ref[name].grad, floor=0.1 * scale))
        assert rel_err(p.grad, ref[name].grad, floor=0.1 * scale) <= bound, name


CONFIGS = [
    {},
    {"head_num": 2, "qkv_bias": True},
    {"head_num": 4, "window_size": 3},
    {"window_size": -1},
    {"down_sample_mode": "max_pool"},
    {"down_sample_mode": "recombination", "window_size": 3},
    {"down_sample_mode": "recombination"},
    {"gate_layer": "softmax"},
    {"gate_layer": "softmax", "down_sample_mode": "max_pool", "head_num": 2},
    {"group_kernel_sizes": (1, 3, 11, 5)},
    {"window_size": 1},
]
SHAPES = [(2, 16, 14, 14), (1, 16, 30, 17), (3, 16, 4, 4), (2, 16, 1, 1), (1, 16, 9, 2), (2, 16, 7, 23)]


def _id(v) -> str:
    return ",".join(f"{k}={v}" for k, v in v.items()) or "defaults"


@pytest.mark.parametrize("config", CONFIGS, ids=_id)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_forward_and_backward_match_oracle(config, shape):
    # The oracle in float64 holds the exact values. The float32 block must come within 1e-5 of them;
    # where a token row sums hundreds of products (window_size=1) float32 itself cannot, and the
    # literal spec in float32 errs by as much: there the block may err up to 1.5 times as much as it.
    block, oracle = pair(**config)
    literal = copy.deepcopy(oracle)
    oracle.double()
    x = torch.randn(shape, requires_grad=True)
    x_ref = x.detach().double().requires_grad_()
    x_lit = x.detach().clone().requires_grad_()
    out, ref, out_lit = block(x), oracle(x_ref), literal(x_lit)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert rel_err(out, ref) <= max(1e-5, 1.5 * rel_err(out_lit, ref))
    g = torch.randn_like(x)
    out.backward(g)
    ref.backward(g.double())
    out_lit.backward(g)
    assert rel_err(x.grad, x_ref.grad) <= max(1e-5, 1.5 * rel_err(x_lit.grad, x_ref.grad))
    assert_param_grads_match(block, oracle, literal=literal)


@pytest.mark.parametrize("config", CONFIGS[:9], ids=_id)
def test_eval_mode_matches_oracle(config):
    block, oracle = pair(**config)
    block.eval()
    oracle.eval()
    x = torch.randn(2, 16, 15, 11)
    with torch.no_grad():
        assert rel_err(block(x), oracle(x)) <= 1e-5
    with torch.inference_mode():
        assert rel_err(block(x), oracle(x)) <= 1e-5


@pytest.mark.parametrize("mode", ["avg_pool", "max_pool", "recombination"])
@pytest.mark.parametrize("gate", ["sigmoid", "softmax"])
def test_gradcheck_float64(mode, gate):
    block = randomize_(
        SCSA(8, head_num=2, window_size=3, down_sample_mode=mode, gate_layer=gate, qkv_bias=True)
    ).double()
    x = torch.randn(2, 8, 7, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(block, (x,), eps=1e-6, atol=1e-5, fast_mode=True)
    params = tuple(block.parameters())

    def as_function_of_params(*ps):
        return torch.func.functional_call(block, dict(zip(dict(block.named_parameters()), ps)), (x.detach(),))

    assert torch.autograd.gradcheck(as_function_of_params, params, eps=1e-6, atol=1e-5, fast_mode=True)


def test_gradcheck_global_window():
    block = randomize_(SCSA(8, window_size=-1)).double()
    x = torch.randn(1, 8, 5, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(block, (x,), eps=1e-6, atol=1e-5)
    assert torch.autograd.gradgradcheck(block, (x,), eps=1e-6, atol=1e-4, fast_mode=True)


def test_halves_match_oracle_and_compose():
    block = randomize_(SCSA(16, head_num=2))
    smsa = SMSA(16)
    pcsa = PCSA(16, head_num=2)
    smsa.load_state_dict({k: v for k, v in block.state_dict().items() if k in smsa.state_dict()})
    pcsa.load_state_dict({k: v for k, v in block.state_dict().items() if k in pcsa.state_dict()})
    x = torch.randn(2, 16, 12, 9)
    assert rel_err(pcsa(smsa(x)), block(x)) <= 1e-5
    o_smsa = OracleSCSA(16, use_pcsa=False)
    o_smsa.load_state_dict(smsa.state_dict())
    o_pcsa = OracleSCSA(16, head_num=2, use_smsa=False)
    o_pcsa.load_state_dict(pcsa.state_dict())
    assert rel_err(smsa(x), o_smsa(x)) <= 1e-5
    assert rel_err(pcsa(x), o_pcsa(x)) <= 1e-5


def test_halves_share_code_with_scsa():
    # "built from the same code that SCSA uses": the gate methods are the very same functions
    assert SCSA.smsa_gates is SMSA.smsa_gates
    assert SCSA.pcsa_gate is PCSA.pcsa_gate
    assert SCSA.down_sample is PCSA.down_sample


def test_state_dict_keys_and_parameter_counts():
    assert set(SCSA(64).state_dict()) == RELEASED_KEYS
    rec = SCSA(64, down_sample_mode="recombination")
    assert set(rec.state_dict()) == RELEASED_KEYS | {"conv_d.weight"}
    assert rec.conv_d.weight.shape == (64, 64 * 49, 1, 1)
    assert set(SCSA(64, qkv_bias=True).state_dict()) == RELEASED_KEYS | {"q.bias", "k.bias", "v.bias"}
    assert sum(p.numel() for p in SCSA(64).parameters()) == 1024 == 16 * 64
    assert sum(p.numel() for p in SCSA(512).parameters()) == 8192
    assert SCSA(64).local_dwc.kernel_size == (3,) and SCSA(64).global_dwc_l.kernel_size == (9,)


def test_keyword_compatible_with_release():
    block = SCSA(
        dim=32,
        head_num=1,
        window_size=7,
        group_kernel_sizes=[3, 5, 7, 9],
        qkv_bias=False,
        down_sample_mode="avg_pool",
        attn_drop_ratio=0.0,
        gate_layer="sigmoid",
    )
    assert block.dim == 32 and block.head_dim == 32 and block.scaler == pytest.approx(32**-0.5)


def test_default_window_pools_56_to_8_and_30_to_4():
    block = SCSA(16)
    assert block.down_sample(torch.randn(1, 16, 56, 56)).shape[-2:] == (8, 8)
    assert block.down_sample(torch.randn(1, 16, 30, 30)).shape[-2:] == (4, 4)
    assert block.down_sample(torch.randn(1, 16, 4, 4)).shape[-2:] == (1, 1)
    assert block.down_sample(torch.randn(1, 16, 4, 20)).shape[-2:] == (1, 2)


def test_attention_dropout_is_active_in_training_only():
    block = SCSA(16, attn_drop_ratio=0.5)
    x = torch.randn(2, 16, 14, 14)
    block.eval()
    assert torch.equal(block(x), block(x))
    block.train()
    outs = [block(x) for _ in range(4)]
    assert any(not torch.equal(outs[0], o) for o in outs[1:])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16, torch.float16])
def test_dtypes(dtype):
    block = randomize_(SCSA(16, head_num=2))
    x = torch.randn(2, 16, 14, 10)
    ref = block(x).double()
    block_d = block.to(dtype)
    out = block_d(x.to(dtype))
    assert out.dtype == dtype and out.shape == x.shape
    tol = {torch.float64: 1e-5, torch.float32: 1e-5, torch.bfloat16: 3e-2, torch.float16: 5e-3}[dtype]
    assert rel_err(out.double(), ref) <= tol
    out.float().sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in block_d.parameters())


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_huge_inputs_stay_finite(dtype):
    block = SCSA(16, gate_layer="softmax").to(dtype)
    for x in (torch.full((1, 16, 9, 9), 1e4), torch.randn(1, 16, 9, 9) * 1e4, torch.zeros(1, 16, 9, 9)):
        assert torch.isfinite(block(x.to(dtype))).all()


def test_autocast_runs_norms_and_softmax_in_float32():
    block = randomize_(SCSA(16, gate_layer="softmax"))
    x = torch.randn(2, 16, 14, 14) * 300
    ref = block(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = block(x)
        a_h, a_w = block.smsa_gates(x)
        gate = block.pcsa_gate(x)
    assert a_h.dtype == torch.float32 and a_w.dtype == torch.float32 and gate.dtype == torch.float32
    assert torch.isfinite(out).all()
    assert rel_err(out.float(), ref) <= 5e-2


@pytest.mark.parametrize("config", [{}, {"down_sample_mode": "recombination", "window_size": 3}], ids=_id)
def test_channels_last_same_numbers_and_format(config):
    block, oracle = pair(**config)
    x = torch.randn(2, 16, 14, 10)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    out = block(x_cl)
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert rel_err(out, oracle(x)) <= 1e-5
    block.eval()
    with torch.no_grad():
        out = block(x_cl)
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert rel_err(out, oracle(x)) <= 1e-5


def test_forward_does_not_modify_input():
    block = SCSA(16).eval()
    x = torch.randn(2, 16, 14, 14)
    x0 = x.clone()
    with torch.no_grad():
        block(x)
    assert torch.equal(x, x0)


def test_device_and_dtype_kwargs_and_timm_attn_layer():
    block = SCSA(32, device="cpu", dtype=torch.float64)
    assert all(p.dtype == torch.float64 for p in block.parameters())
    assert SMSA(8, dtype=torch.float64).local_dwc.weight.dtype == torch.float64
    assert PCSA(8, dtype=torch.float64).q.weight.dtype == torch.float64
    timm = pytest.importorskip("timm")
    model = timm.create_model("resnet18", block_args={"attn_layer": SCSA}, num_classes=3, pretrained=False)
    assert any(isinstance(m, SCSA) for m in model.modules())
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 3)


BAD_CONFIGS = [
    ({"dim": 6}, "multiple of 4"),
    ({"dim": 0}, "multiple of 4"),
    ({"dim": 16, "head_num": 3}, "head_num must divide dim"),
    ({"dim": 16, "head_num": 0}, "head_num"),
    ({"dim": 16, "down_sample_mode": "bilinear"}, "down_sample_mode"),
    ({"dim": 16, "gate_layer": "relu"}, "gate_layer"),
    ({"dim": 16, "group_kernel_sizes": (3, 5, 7, 8)}, "odd"),
    ({"dim": 16, "group_kernel_sizes": (3, 5, 0, 9)}, "odd"),
    ({"dim": 16, "group_kernel_sizes": (3, 5, 7)}, "exactly 4"),
    ({"dim": 16, "window_size": 0}, "window_size"),
    ({"dim": 16, "window_size": -2}, "window_size"),
    ({"dim": 16, "attn_drop_ratio": 1.5}, "attn_drop_ratio"),
]


@pytest.mark.parametrize(("kwargs", "match"), BAD_CONFIGS, ids=lambda v: str(v))
def test_bad_configuration_raises_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match) as info:
        SCSA(**kwargs)
    bad = [v for k, v in kwargs.items() if k != "dim"] or [kwargs["dim"]]
    assert str(bad[-1]).strip("()") in str(info.value).replace("[", "(").replace("]", ")")


@pytest.mark.parametrize("cls", [SCSA, SMSA, PCSA])
def test_wrong_input_shape_names_expected_and_received(cls):
    block = cls(16)
    with pytest.raises(ValueError, match=r"\(B, 16, H, W\).*\[2, 8, 5, 5\]"):
        block(torch.randn(2, 8, 5, 5))
    with pytest.raises(ValueError, match=r"\[16, 5, 5\]"):
        block(torch.randn(16, 5, 5))


def test_registry_creates_the_blocks():
    assert {"scsa", "smsa", "pcsa", "none"} <= set(scsa.list_attentions())
    assert isinstance(scsa.create_attention("scsa", 32, window_size=-1), SCSA)
    with pytest.raises(ValueError, match="unknown attention"):
        scsa.create_attention("nope", 32)


def test_every_switch_combination_builds_and_runs():
    x = torch.randn(1, 8, 9, 9)
    for mode, gate, ws, bias in itertools.product(
        ("avg_pool", "max_pool", "recombination"), ("sigmoid", "softmax"), (-1, 1, 4, 7), (False, True)
    ):
        block = SCSA(8, head_num=2, window_size=ws, down_sample_mode=mode, gate_layer=gate, qkv_bias=bias)
        assert block(x).shape == x.shape


def test_four_channels_on_one_pixel_axis():
    # GroupNorm(4, 4) sees one value per group here; F.group_norm would refuse it, the block must not
    block = SCSA(4).train()
    out = block(torch.randn(1, 4, 1, 1))
    assert out.shape == (1, 4, 1, 1) and torch.isfinite(out).all()
