"""Property tests: random valid configurations never crash, random invalid ones raise ValueError."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scsa import PCSA, SCSA, SMSA

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DTYPES = [torch.float64, torch.float32, torch.bfloat16, torch.float16]


@st.composite
def valid_configs(draw):
    head_num = draw(st.sampled_from([1, 2, 4]))
    dim = 4 * head_num * draw(st.integers(1, 3))
    if dim % 4:
        dim *= 4
    config = {
        "dim": dim,
        "head_num": head_num,
        "window_size": draw(st.sampled_from([-1, 1, 2, 3, 5, 7, 9])),
        "group_kernel_sizes": tuple(
            draw(st.lists(st.sampled_from([1, 3, 5, 7, 9, 11]), min_size=4, max_size=4))
        ),
        "qkv_bias": draw(st.booleans()),
        "down_sample_mode": draw(st.sampled_from(["avg_pool", "max_pool", "recombination"])),
        "gate_layer": draw(st.sampled_from(["sigmoid", "softmax"])),
    }
    shape = (draw(st.integers(1, 3)), dim, draw(st.integers(1, 19)), draw(st.integers(1, 19)))
    return config, shape, draw(st.sampled_from(DTYPES))


@SETTINGS
@given(valid_configs())
def test_random_valid_configs_keep_shape_and_dtype(case):
    config, shape, dtype = case
    block = SCSA(**config).to(dtype)
    x = torch.randn(shape).to(dtype)
    out = block(x)
    assert out.shape == x.shape
    assert out.dtype == dtype
    assert torch.isfinite(out).all()


@SETTINGS
@given(valid_configs(), st.sampled_from(["zeros", "constant", "huge", "huge_random"]))
def test_degenerate_inputs_stay_finite(case, kind):
    config, shape, dtype = case
    block = SCSA(**config).to(dtype)
    x = {
        "zeros": torch.zeros(shape),
        "constant": torch.full(shape, 3.0),
        "huge": torch.full(shape, 1e4),
        "huge_random": torch.randn(shape) * 1e4,
    }[kind].to(dtype)
    assert torch.isfinite(block(x)).all()
    assert torch.isfinite(SMSA(config["dim"], gate_layer=config["gate_layer"]).to(dtype)(x)).all()


def _bad_int():
    return st.one_of(st.integers(-20, 0), st.sampled_from([1.5, "8", None, True]))


@st.composite
def invalid_configs(draw):
    config = {"dim": 16}
    which = draw(
        st.sampled_from(["dim", "head_num", "window_size", "kernels", "mode", "gate", "drop", "dim_vs_heads"])
    )
    if which == "dim":
        config["dim"] = draw(st.one_of(_bad_int(), st.integers(1, 200).filter(lambda d: d % 4)))
    elif which == "head_num":
        config["head_num"] = draw(_bad_int())
    elif which == "dim_vs_heads":
        config["head_num"] = draw(st.sampled_from([3, 5, 6, 7, 32]))
    elif which == "window_size":
        config["window_size"] = draw(st.one_of(st.integers(-50, -2), st.just(0), st.just(2.0)))
    elif which == "kernels":
        ks = draw(st.lists(st.integers(-3, 12), min_size=1, max_size=6))
        if len(ks) == 4 and all(k >= 1 and k % 2 for k in ks):
            ks[0] = 2
        config["group_kernel_sizes"] = tuple(ks)
    elif which == "mode":
        config["down_sample_mode"] = draw(
            st.text(max_size=12).filter(lambda m: m not in {"avg_pool", "max_pool", "recombination"})
        )
    elif which == "gate":
        config["gate_layer"] = draw(st.text(max_size=12).filter(lambda g: g not in {"sigmoid", "softmax"}))
    else:
        config["attn_drop_ratio"] = draw(st.one_of(st.floats(1.0, 10.0), st.floats(-10.0, -1e-6)))
    return config


@SETTINGS
@given(invalid_configs())
def test_random_invalid_configs_raise_value_error(config):
    with pytest.raises(ValueError):
        SCSA(**config)


@SETTINGS
@given(st.integers(1, 64).filter(lambda d: d % 4), st.sampled_from([SMSA, PCSA]))
def test_halves_reject_bad_dim(dim, cls):
    with pytest.raises(ValueError, match="multiple of 4"):
        cls(dim)
