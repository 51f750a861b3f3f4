"""Every block of the attention zoo, through one set of tests parametrised over ``list_attentions()``.

Blocks registered later are picked up automatically; a block that needs a setting for the small
test width, a literal reference or a BatchNorm exception must be added to the tables below, or its
tests fail (nothing is skipped silently). Numbers are checked against the literal implementations of
``zoo_reference.py`` and, where timm ships the same block, against timm's module with copied weights.
"""

from __future__ import annotations

import copy
import functools
import importlib
import itertools

import pytest
import timm
import torch
from torch import nn
from zoo_reference import REFERENCES, build_reference, copy_weights, eca_k

import scsa.attention as zoo
from scsa.attention import registry
from scsa.attention.eca import eca_kernel_size

NAMES = zoo.list_attentions()
C = 32  # the small width of most tests

# Settings for C = 32, each with its reason; every other block runs at its defaults.
SMALL_KWARGS: dict[str, dict] = {
    "sa": {"groups": 8},  # the default falls back to G = 16: one channel per half group, little to check
    "ema": {"factor": 8},  # the paper's 32 groups would leave one channel per group
}
# Blocks with a BatchNorm on full maps (SK's paths, as in the paper). Like the backbone's own BNs they
# cannot train on a single 1×1 map (batch 1, H = W = 1): PyTorch raises ValueError; eval mode works.
BATCHNORM_ON_MAPS = {"sk"}
# Blocks that accept any constructor argument by design.
ACCEPTS_ANYTHING = {"none"}

script_warning = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")


def make(name: str, channels: int = C, **kwargs) -> tuple[nn.Module, dict]:
    kw = {**(SMALL_KWARGS.get(name, {}) if channels == C else {}), **kwargs}
    return zoo.create_attention(name, channels, **kw), kw


def randomize_(module: nn.Module, seed: int = 1) -> nn.Module:
    """Move every parameter and norm statistic away from its (often symmetric) initial value."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=g, dtype=p.dtype))
        for m in module.modules():
            if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d | nn.GroupNorm) and m.weight is not None:
                # positive scales: SCConv divides by their sum
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
            if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
                m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    return module


def assert_rel_close(actual: torch.Tensor, expected: torch.Tensor, rtol: float = 1e-5) -> None:
    """max |actual - expected| <= rtol * max |expected| (the spec's fp32 criterion)."""
    assert actual.shape == expected.shape
    err = (actual.double() - expected.double()).abs().max().item()
    scale = expected.double().abs().max().item()
    assert err <= rtol * scale + 1e-12, f"max abs error {err:.3g} vs scale {scale:.3g} (rtol {rtol})"


# ----------------------------------------------------------------------------------------------
# every registered block


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16], ids=str)
@pytest.mark.parametrize("name", NAMES)
def test_shape_and_dtype_preserved(name, dtype):
    block, _ = make(name)
    randomize_(block)
    x = torch.randn(2, C, 7, 6)
    with torch.no_grad():
        expected = copy.deepcopy(block)(x)
        out = copy.deepcopy(block).to(dtype)(x.to(dtype))
    assert out.shape == x.shape
    assert out.dtype == dtype
    assert torch.isfinite(out).all()
    if dtype == torch.float64:  # nothing silently computed in float32
        assert_rel_close(out, expected, rtol=1e-4)
    if dtype == torch.bfloat16:
        assert (out.float() - expected).abs().mean() <= 0.05 * expected.abs().mean()


@pytest.mark.parametrize("hw", [(1, 1), (3, 3), (7, 7), (13, 5)], ids=lambda hw: f"{hw[0]}x{hw[1]}")
@pytest.mark.parametrize("name", NAMES)
def test_any_size_batch1_forward_backward(name, hw):
    block, _ = make(name)
    randomize_(block).train()
    x = torch.randn(1, C, *hw, requires_grad=True)
    if name in BATCHNORM_ON_MAPS and hw == (1, 1):
        with pytest.raises(ValueError, match="more than 1 value per channel"):
            block(x)
        block.eval()
    out = block(x)
    assert out.shape == x.shape
    assert torch.isfinite(out).all()
    (out * torch.randn_like(out)).sum().backward()
    assert torch.isfinite(x.grad).all()
    for pname, p in block.named_parameters():
        assert p.grad is not None, f"{name}.{pname} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{name}.{pname} has a non-finite gradient"
    with torch.no_grad():
        assert torch.isfinite(block.eval()(x)).all()


@pytest.mark.parametrize("name", NAMES)
def test_device_and_dtype_kwargs_reach_every_tensor(name):
    block, _ = make(name, device="meta", dtype=torch.float64)
    for tname, t in itertools.chain(block.named_parameters(), block.named_buffers()):
        assert t.device.type == "meta", f"{name}.{tname} ignored device"
        if t.is_floating_point():
            assert t.dtype == torch.float64, f"{name}.{tname} ignored dtype"
    block, _ = make(name, device="cpu", dtype=torch.bfloat16)
    out = block(torch.randn(2, C, 5, 5, dtype=torch.bfloat16))
    assert out.dtype == torch.bfloat16


@script_warning
@pytest.mark.parametrize("name", NAMES)
def test_torchscript(name):
    block, _ = make(name)
    randomize_(block).eval()
    scripted = torch.jit.script(block)
    x = torch.randn(2, C, 6, 5)
    with torch.no_grad():
        assert_rel_close(scripted(x), block(x))


@pytest.mark.parametrize("name", NAMES)
def test_timm_create_attn(name):
    """What timm's blocks do with an ``attn_layer``: ``create_attn(layer, channels, device=..., dtype=...)``."""
    cls = zoo.get_attention_class(name)
    block = timm.layers.create_attn(cls, 64, device=None, dtype=torch.float64)
    assert isinstance(block, cls)
    assert block(torch.randn(2, 64, 4, 4, dtype=torch.float64)).shape == (2, 64, 4, 4)


@pytest.mark.parametrize("name", ["scsa", "se", "sa", "sk", "sc", "none"])
def test_timm_resnet_attn_layer(name):
    cls = zoo.get_attention_class(name)  # at its defaults on 64..512 channels
    model = timm.create_model("resnet18", pretrained=False, num_classes=10, block_args={"attn_layer": cls})
    assert sum(isinstance(m, cls) for m in model.modules()) == 8  # one per BasicBlock
    with torch.no_grad():
        out = model.eval()(torch.randn(1, 3, 32, 32))  # layer4 runs on 1×1 maps
    assert out.shape == (1, 10)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", NAMES)
def test_constructor_with_channels_only(name):
    """timm's ``create_attn`` builds ``cls(channels)``; at the paper defaults for a typical width."""
    block = zoo.get_attention_class(name)(128)
    out = block(torch.randn(2, 128, 7, 7))
    assert out.shape == (2, 128, 7, 7)


@pytest.mark.parametrize("name", sorted(set(NAMES) - ACCEPTS_ANYTHING))
def test_bad_channels_and_input_raise(name):
    for bad in (0, -4, True, 3.5):
        with pytest.raises(ValueError):
            zoo.create_attention(name, bad)
    block, _ = make(name)
    with pytest.raises(ValueError, match=r"\(B, 32, H, W\)"):
        block(torch.randn(1, 2 * C, 4, 4))
    with pytest.raises(ValueError):
        block(torch.randn(C, 4, 4))


# ----------------------------------------------------------------------------------------------
# numbers: the literal references of zoo_reference.py

# Extra configurations beyond the defaults that change the computation.
EXTRA_REFERENCE_CONFIGS = [
    ("sk", C, {"attn_norm_layer": "batchnorm"}),
    ("ela", C, {"kernel_size": 5, "conv_groups": C // 8}),  # ELA-S
    ("fca", C, {"dct_size": 14}),  # frequencies scaled to a 14×14 grid
    ("sc", C, {"alpha": 0.75}),
    ("scsa", C, {"head_num": 2, "window_size": 3}),
]
REFERENCE_CASES = (
    [pytest.param(n, C, None, id=f"{n}-C{C}") for n in NAMES]
    + [pytest.param(n, 128, {}, id=f"{n}-C128-paper") for n in NAMES]
    + [
        pytest.param(n, c, kw, id=f"{n}-{'-'.join(map(str, kw.values()))}")
        for n, c, kw in EXTRA_REFERENCE_CONFIGS
    ]
)


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize(("name", "channels", "kwargs"), REFERENCE_CASES)
def test_matches_literal_reference(name, channels, kwargs, training):
    if name not in REFERENCES:
        pytest.fail(f"no literal reference for {name!r} in zoo_reference.py")
    block, kw = make(name, channels, **(kwargs or {}))
    randomize_(block).train(training)
    ref = build_reference(name, block, channels, **kw)
    for batch, h, w in [(2, 7, 5), (1, 3, 4), (1, 14, 14)]:
        # batch 2 in training: a BatchNorm on pooled maps (SK's "batchnorm" option) needs it
        x = torch.randn(2 if training else batch, channels, h, w)
        with torch.no_grad():
            assert_rel_close(block(x), ref(x))


def test_eca_kernel_size_follows_the_paper():
    assert [eca_kernel_size(c) for c in range(1, 4097)] == [eca_k(c) for c in range(1, 4097)]
    assert [zoo.ECA(c).conv.kernel_size[0] for c in (4, 64, 128, 256, 512, 2048)] == [1, 3, 5, 5, 5, 7]


def test_simam_on_a_single_pixel():
    x = torch.randn(2, 8, 1, 1)
    torch.testing.assert_close(zoo.SimAM(8)(x), x * torch.sigmoid(torch.tensor(0.5)))


# ----------------------------------------------------------------------------------------------
# numbers: timm's own modules where timm ships the block


def _timm_cls(module: str, name: str):
    mod = importlib.import_module(f"timm.layers.{module}")
    if not hasattr(mod, name):
        pytest.skip(f"the installed timm {timm.__version__} has no timm.layers.{module}.{name}")
    return getattr(mod, name)


def _timm_se(block):
    theirs = _timm_cls("squeeze_excite", "SEModule")(C, rd_channels=block.fc1.out_channels)
    theirs.load_state_dict(block.state_dict())
    return theirs


def _timm_eca(block):
    # timm clamps the kernel to >= 3; from C = 8 on it agrees with the paper (see ECA's docstring)
    theirs = _timm_cls("eca", "EcaModule")(C)
    theirs.load_state_dict(block.state_dict())
    return theirs


def _timm_cbam(block):
    theirs = _timm_cls("cbam", "CbamModule")(C, rd_channels=block.fc1.out_channels, mlp_bias=False)
    mapping = {"channel.fc1.weight": "fc1.weight", "channel.fc2.weight": "fc2.weight"}
    mapping["spatial.conv.conv.weight"] = "spatial_conv.weight"
    for p in ("weight", "bias", "running_mean", "running_var"):
        mapping[f"spatial.conv.bn.{p}"] = f"spatial_norm.{p}"
    copy_weights(theirs, block, mapping)
    return theirs


def _timm_ca(block):
    theirs = _timm_cls("coord_attn", "CoordAttn")(
        C, rd_channels=block.conv1.out_channels, bias=True, act_layer=nn.Hardswish, norm_layer=nn.BatchNorm2d
    )
    theirs.load_state_dict(block.state_dict())
    return theirs


def _timm_ela(block):
    # timm's defaults differ on purpose (per-axis weights, GroupNorm(1), SiLU before the gate);
    # configured like the paper and given our shared weights on both axes, the numbers must agree.
    norm16 = functools.partial(nn.GroupNorm, 16)
    theirs = _timm_cls("coord_attn", "EfficientLocalAttn")(
        C, kernel_size=7, bias=False, act_layer=nn.Identity, norm_layer=norm16
    )
    mapping = {"conv_h.weight": "conv.weight", "conv_w.weight": "conv.weight"}
    for axis, p in itertools.product(("h", "w"), ("weight", "bias")):
        mapping[f"norm_{axis}.{p}"] = f"gn.{p}"
    copy_weights(theirs, block, mapping)
    return theirs


def _timm_sk(block):
    theirs = _timm_cls("selective_kernel", "SelectiveKernel")(
        C, C, kernel_size=[3, 5], groups=32, rd_channels=block.fc_reduce.out_channels, split_input=False
    )
    mapping = {"attn.fc_reduce.weight": "fc_reduce.weight", "attn.fc_select.weight": "fc_select.weight"}
    for p in ("weight", "bias", "running_mean", "running_var"):
        mapping[f"attn.bn.{p}"] = f"attn_norm.{p}"
        for i in range(2):
            mapping[f"paths.{i}.bn.{p}"] = f"paths.{i}.norm.{p}"
    for i in range(2):
        mapping[f"paths.{i}.conv.weight"] = f"paths.{i}.conv.weight"
    copy_weights(theirs, block, mapping)
    return theirs


# name -> (our settings that match timm's block, builder of timm's block with our weights)
TIMM_TWINS = {
    "se": ({}, _timm_se),
    "eca": ({}, _timm_eca),
    "cbam": ({"spatial_norm_layer": "batchnorm"}, _timm_cbam),  # timm keeps the released code's BN
    "ca": ({}, _timm_ca),
    "ela": ({}, _timm_ela),
    "sk": ({"attn_norm_layer": "batchnorm"}, _timm_sk),  # timm keeps the paper's BN on the squeeze
}


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("name", sorted(TIMM_TWINS))
def test_matches_timm(name, training):
    kwargs, build_timm = TIMM_TWINS[name]
    block, _ = make(name, **kwargs)
    randomize_(block).train(training)
    theirs = build_timm(block).train(training)
    x = torch.randn(2, C, 7, 5)
    with torch.no_grad():
        assert_rel_close(block(x), theirs(x))


# ----------------------------------------------------------------------------------------------
# every block at every width of the paper's backbones (group-like knobs default to None)


def _make_divisible(v: float, divisor: int = 8) -> int:
    # torchvision's rounding of MobileNetV2 widths: nearest multiple of 8, never more than 10% down
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


def backbone_widths() -> list[int]:
    """Channels an attention block sees in resnet18..152, resnext50_32x4d and mobilenet_v2 (× 1.0, × 0.5).

    Both places: "mid" (the paper's: a bottleneck's middle width, a BasicBlock's width, MobileNetV2's
    hidden width) and "post" (a block's output width).
    """
    planes = (64, 128, 256, 512)
    widths = set(planes)  # ResNet mid (Basic and Bottleneck) and BasicBlock post
    widths |= {4 * p for p in planes}  # Bottleneck post (expansion 4), also ResNeXt's
    widths |= {p * 4 // 64 * 32 for p in planes}  # ResNeXt-50 32x4d mid: planes · 4/64 · 32 groups
    settings = ((1, 16, 1), (6, 24, 2), (6, 32, 3), (6, 64, 4), (6, 96, 3), (6, 160, 3), (6, 320, 1))
    for mult in (1.0, 0.5):
        inp = _make_divisible(32 * mult)
        for t, c, n in settings:
            out = _make_divisible(c * mult)
            for _ in range(n):
                widths |= {round(inp * t), out}  # hidden (mid), output (post)
                inp = out
    return sorted(widths)


WIDTHS = backbone_widths()


def test_backbone_widths_cover_the_failing_cases():
    # the widths that broke the paper's defaults (issue 3) must be in the list
    assert {64, 96, 144, 192, 576, 960, 32, 24, 8, 48, 80, 288, 480, 1024, 2048} <= set(WIDTHS)


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("name", NAMES)
def test_builds_at_every_backbone_width(name, width):
    block = zoo.create_attention(name, width).train()
    x = torch.randn(1, width, 3, 3)
    with torch.no_grad():
        out = block(x)
    assert out.shape == x.shape
    assert torch.isfinite(out).all()


# block -> its group-like knobs with the paper's value (SCConv's 16 norm groups: the unofficial code's)
PAPER_KNOBS: dict[str, dict] = {
    "sa": {"groups": 64},
    "ema": {"factor": 32},
    "sk": {"groups": 32},
    "fca": {"freq_sel_method": "top16"},
    "ela": {"norm_groups": 16},
    "sc": {"norm_groups": 16, "conv_groups": 2},
}


def _seeded(name: str, channels: int, **kwargs) -> nn.Module:
    torch.manual_seed(123)
    return zoo.create_attention(name, channels, **kwargs)


def _assert_same_block(a: nn.Module, b: nn.Module, channels: int) -> None:
    """Same configuration (every submodule's repr: groups, shapes), same tensors, same output, bit for bit."""
    assert repr(a) == repr(b)
    ta = dict(itertools.chain(a.named_parameters(), a.named_buffers()))
    tb = dict(itertools.chain(b.named_parameters(), b.named_buffers()))
    assert ta.keys() == tb.keys()
    for k in ta:
        assert torch.equal(ta[k], tb[k]), k
    x = torch.randn(2, channels, 5, 4)
    with torch.no_grad():
        assert torch.equal(a.eval()(x), b.eval()(x))


@pytest.mark.parametrize("name", sorted(PAPER_KNOBS))
def test_defaults_are_the_paper_values_where_they_fit(name):
    paper = PAPER_KNOBS[name]
    fitting = []
    for width in WIDTHS:
        try:
            explicit = _seeded(name, width, **paper)
        except ValueError:
            continue  # the fallback's widths: checked below and by the build test
        fitting.append(width)
        _assert_same_block(_seeded(name, width), explicit, width)
    assert {256, 512, 1024, 2048} <= set(fitting)  # every paper value fits these widths


# (block, width, what the default resolves to there): below the paper's value, the largest that fits
FALLBACKS = [
    ("sa", 64, {"groups": 32}),
    ("sa", 96, {"groups": 48}),
    ("sa", 144, {"groups": 36}),
    ("sa", 960, {"groups": 60}),
    ("ema", 144, {"factor": 24}),
    ("ema", 80, {"factor": 20}),
    ("sk", 144, {"groups": 24}),
    ("sk", 48, {"groups": 24}),
    ("fca", 24, {"freq_sel_method": "top8"}),
    ("fca", 8, {"freq_sel_method": "top8"}),
    ("fca", 12, {"freq_sel_method": "top4"}),
    ("ela", 24, {"norm_groups": 12}),
    ("ela", 8, {"norm_groups": 8}),
    ("sc", 24, {"norm_groups": 12}),
    ("sc", 12, {"norm_groups": 12, "conv_groups": 1}),  # squeezed upper part: 3 channels
]


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize(
    ("name", "channels", "resolved"),
    [pytest.param(n, c, kw, id=f"{n}-C{c}") for n, c, kw in FALLBACKS],
)
def test_fallback_default(name, channels, resolved, training):
    block = _seeded(name, channels)
    _assert_same_block(block, _seeded(name, channels, **resolved), channels)
    with pytest.raises(ValueError, match="does not fit"):  # the paper's value itself does not
        zoo.create_attention(name, channels, **PAPER_KNOBS[name])
    randomize_(block).train(training)
    ref = build_reference(name, block, channels, **resolved)
    x = torch.randn(2, channels, 7, 5)
    with torch.no_grad():
        assert_rel_close(block(x), ref(x))


# ----------------------------------------------------------------------------------------------
# constructor validation


BAD_ARGUMENTS = [
    ("se", C, {"reduction": 0}, "reduction"),
    ("se", C, {"act_layer": "nope"}, "act_layer"),
    ("cbam", C, {"spatial_kernel_size": 6}, "spatial_kernel_size"),
    ("cbam", C, {"spatial_norm_layer": "nope"}, "spatial_norm_layer"),
    ("eca", C, {"kernel_size": 4}, "kernel_size"),
    ("eca", C, {"gamma": 0}, "gamma"),
    ("ca", C, {"reduction": 0}, "reduction"),
    ("ca", C, {"norm_layer": nn.BatchNorm2d(4)}, "norm_layer"),
    # an explicit group-like value that does not fit C stays an error (only None falls back)
    ("sa", 96, {"groups": 64}, r"groups=64 does not fit: channels=96 must be a multiple of 2 \* groups"),
    ("sa", 64, {"groups": 0}, "groups must be an integer >= 1"),
    ("sa", 31, {}, "channels must be even"),  # no G at all: every group is halved
    ("ema", 144, {"factor": 32}, "factor=32 does not fit: channels=144 must be a multiple of factor"),
    ("ela", 24, {"norm_groups": 16}, "norm_groups=16 does not fit: channels=24"),
    ("ela", C, {"conv_groups": 5}, "conv_groups"),
    ("cpca", C, {"reduction": 0}, "reduction"),
    ("fca", 24, {"freq_sel_method": "top16"}, "'top16' does not fit: channels=24 .* 16"),
    ("fca", 24, {"freq_sel_method": "low16"}, "'low16' does not fit"),
    ("fca", C, {"freq_sel_method": "top3"}, "freq_sel_method"),
    ("fca", C, {"dct_size": 5}, "dct_size"),
    ("sk", 144, {"groups": 32}, "groups=32 does not fit: channels=144 must be a multiple of groups"),
    ("sk", C, {"kernel_sizes": (3,)}, "at least 2 paths"),
    ("sk", C, {"kernel_sizes": (3, 4)}, "odd"),
    ("sc", 24, {"norm_groups": 16}, "norm_groups=16 does not fit: channels=24"),
    ("sc", 12, {"conv_groups": 2}, r"conv_groups=2 does not fit: .*upper part \(3 channels\)"),
    ("sc", 7, {}, "divisible by 2"),
    ("sc", C, {"gate_threshold": 1.5}, "gate_threshold"),
    ("sc", C, {"alpha": 1.0}, "alpha"),
    ("sc", 16, {"squeeze_ratio": 16}, "keep a channel"),
    ("simam", C, {"e_lambda": 0}, "e_lambda"),
]


@pytest.mark.parametrize(("name", "channels", "kwargs", "match"), BAD_ARGUMENTS)
def test_bad_arguments_raise_a_clear_error(name, channels, kwargs, match):
    with pytest.raises(ValueError, match=match):
        zoo.create_attention(name, channels, **kwargs)


# ----------------------------------------------------------------------------------------------
# registry


def test_every_documented_name_is_registered():
    documented = {"scsa", "smsa", "pcsa", "se", "cbam", "eca", "ca", "sa", "ema", "ela", "cpca", "fca"}
    documented |= {"sk", "sc", "simam", "none"}
    assert documented <= set(NAMES)


def test_unknown_name_raises():
    with pytest.raises(ValueError, match=r"unknown attention 'nope'.*known: .*se"):
        zoo.create_attention("nope", C)
    assert isinstance(zoo.create_attention("SE", C), zoo.SqueezeExcite)  # names are case-insensitive


def test_users_can_register_a_block(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))

    class Doubler(nn.Module):
        def __init__(self, channels, scale=2.0, device=None, dtype=None):
            super().__init__()
            self.scale = scale

        def forward(self, x):
            return x * self.scale

    zoo.register_attention("Doubler", Doubler)
    assert "doubler" in zoo.list_attentions()
    block = zoo.create_attention("doubler", C, scale=3.0)
    assert isinstance(block, Doubler)
    assert block.scale == 3.0
    zoo.register_attention("doubler", Doubler)  # the same class again is fine
    with pytest.raises(ValueError, match="already registered"):
        zoo.register_attention("doubler", zoo.SqueezeExcite)
    zoo.register_attention("doubler", zoo.SqueezeExcite, overwrite=True)
    assert zoo.get_attention_class("doubler") is zoo.SqueezeExcite
    with pytest.raises(ValueError, match="identifier"):
        zoo.register_attention("my-block", Doubler)
