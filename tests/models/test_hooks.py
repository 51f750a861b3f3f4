"""Hooks see the truth: no attention block's output overwrites a tensor a registered hook can see.

Our backbones let SCSA (Si et al., arXiv 2407.05128) write its output over its input in inference
(``inplace``), which is safe only while nothing else holds that input. A forward pre-hook or forward
hook on the block, or a global module hook, does hold it: then the block must write a fresh tensor.
Checked for every attention of the zoo in eval() under torch.no_grad(), where in-place writes happen.
"""

from __future__ import annotations

import timeit

import pytest
import torch
from torch import nn
from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook

import scsa
from scsa import SCSA
from scsa.attention import _scsa_fast

ATTENTIONS = [a for a in scsa.attention.list_attentions() if a != "none"]
ZOO = tuple(type(scsa.attention.create_attention(a, 16)) for a in ATTENTIONS)


def _model(arch: str, attention: str) -> nn.Module:
    if arch == "mobilenet_v2":
        model = scsa.create_model(arch, attention=attention, num_classes=10, stem="cifar", width_mult=0.25)
    elif arch == "resnet18-post":  # the block after the last norm, before the residual add
        model = scsa.create_model(
            "resnet18", attention=attention, num_classes=10, stem="cifar", attention_position="post"
        )
    else:
        model = scsa.create_model(arch, attention=attention, num_classes=10, stem="cifar")
    torch.manual_seed(0)
    with torch.no_grad():  # BN statistics away from the identity, so that every block computes something
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    return model.eval()


def _attentions(model: nn.Module) -> list[nn.Module]:
    """The outermost zoo blocks of the model."""
    found: list[nn.Module] = []
    inner: set[int] = set()
    for m in model.modules():
        if isinstance(m, ZOO) and id(m) not in inner:
            found.append(m)
            inner.update(id(s) for s in m.modules())
    return found


def _reference(model: nn.Module, x: torch.Tensor) -> tuple[dict[int, torch.Tensor], dict[int, torch.Tensor]]:
    """Each block's input and output from a run that clones them inside the hooks."""
    ins: dict[int, torch.Tensor] = {}
    outs: dict[int, torch.Tensor] = {}
    handles = []
    for m in _attentions(model):
        handles.append(
            m.register_forward_pre_hook(lambda mod, args: ins.setdefault(id(mod), args[0].clone()))
        )
        handles.append(m.register_forward_hook(lambda mod, args, out: outs.setdefault(id(mod), out.clone())))
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return ins, outs


CASES = [("resnet18", a) for a in ATTENTIONS] + [("mobilenet_v2", a) for a in ("scsa", "se", "simam", "cbam")]
CASES.append(("resnet18-post", "scsa"))


@pytest.mark.parametrize(("arch", "attention"), CASES)
def test_hooks_see_the_inputs_and_outputs_the_blocks_had(arch: str, attention: str):
    model = _model(arch, attention)
    blocks = _attentions(model)
    assert blocks, f"no attention found in {arch} with {attention}"
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        expected_logits = model(x)
    ref_in, ref_out = _reference(model, x)
    assert len(ref_in) == len(blocks)

    # 1. a pre-hook records the tensor and a clone taken before the block runs
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    handles = [
        m.register_forward_pre_hook(lambda mod, args: seen.append((args[0], args[0].clone()))) for m in blocks
    ]
    with torch.no_grad():
        logits = model(x)
    for h in handles:
        h.remove()
    assert len(seen) == len(blocks)
    for i, (tensor, before) in enumerate(seen):
        assert torch.equal(tensor, before), (
            f"{arch}/{attention}: block {i}'s input was overwritten after its pre-hook"
        )
    assert torch.equal(logits, expected_logits)

    # 2. forward hooks, on the block and global ones: the inputs and outputs they were given, kept
    ids = {id(m) for m in blocks}
    for register in ("module", "global"):
        got: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

        def hook(mod, args, out, got=got):
            if id(mod) in ids:
                got.setdefault(id(mod), (args[0], out))

        if register == "module":
            handles = [m.register_forward_hook(hook) for m in blocks]
        else:
            handles = [register_module_forward_hook(hook)]
        with torch.no_grad():
            logits = model(x)
        for h in handles:
            h.remove()
        assert torch.equal(logits, expected_logits)
        assert got.keys() == ref_in.keys()
        for key, (inp, out) in got.items():
            assert torch.equal(inp, ref_in[key]), (
                f"{arch}/{attention} ({register} forward hook): input overwritten"
            )
            assert torch.equal(out, ref_out[key]), (
                f"{arch}/{attention} ({register} forward hook): output changed"
            )

    # 3. a global pre-hook
    kept: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def pre_hook(mod, args):
        if id(mod) in ids:
            kept.setdefault(id(mod), (args[0], args[0].clone()))

    handle = register_module_forward_pre_hook(pre_hook)
    with torch.no_grad():
        model(x)
    handle.remove()
    assert len(kept) == len(blocks)
    assert all(torch.equal(t, c) for t, c in kept.values()), (
        f"{arch}/{attention}: global pre-hook input overwritten"
    )


def test_without_hooks_scsa_still_works_in_place():
    # the guarantee costs nothing where nobody looks: no hook, the backbone's SCSA writes over its input
    if not scsa.attention.use_native():
        pytest.skip("in-place output is a C-module route only")
    block = SCSA(16, inplace=True).eval()
    x = torch.randn(2, 16, 12, 12)
    with torch.no_grad():
        assert block(x).data_ptr() == x.data_ptr()
        handle = block.register_forward_pre_hook(lambda m, args: None)
        y = torch.randn(2, 16, 12, 12)
        assert block(y).data_ptr() != y.data_ptr()
        handle.remove()
        assert block(y).data_ptr() == y.data_ptr()  # removed: in place again


def test_the_hook_check_costs_next_to_nothing():
    # four dict truthiness tests per forward; a ResNet-50 SCSA block's forward takes ~100 us and more
    block = SCSA(16)
    per_call = min(timeit.repeat(lambda: _scsa_fast.hooks_see(block), number=1000, repeat=5)) / 1000
    assert per_call < 5e-6, f"hooks_see takes {per_call * 1e6:.2f} us"
