"""capture(): the documented shapes for every SCSA block, outputs unchanged, no hooks left behind."""

from __future__ import annotations

import pytest
import torch

from scsa.attention import PCSA, SCSA, SMSA
from scsa.explain import CaptureMismatchError, attention_blocks, capture
from scsa.models import create_model


def _model() -> torch.nn.Module:
    return create_model("scsa_resnet18", num_classes=10, stem="cifar").eval()


@pytest.mark.parametrize("grad", [False, True])
def test_shapes_for_every_block_and_outputs_bit_identical(grad):
    model = _model()
    x = torch.randn(2, 3, 24, 20)
    with torch.set_grad_enabled(grad):
        before = model(x)
        with capture(model, attention=True) as records:
            during = model(x)
        after = model(x)
    assert torch.equal(before, during) and torch.equal(before, after)
    blocks = attention_blocks(model)
    assert len(blocks) == 8 and set(records) == {n for n, _ in blocks}
    sizes = {"layer1": (24, 20), "layer2": (12, 10), "layer3": (6, 5), "layer4": (3, 3)}
    for name, blk in blocks:
        rec = records[name]
        c, heads = blk.dim, blk.head_num
        h, w = sizes[name.split(".")[0]]
        assert rec["a_h"].shape == (2, c, h, 1)
        assert rec["a_w"].shape == (2, c, 1, w)
        assert rec["spatial"].shape == (2, h, w)
        assert rec["channel_gate"].shape == (2, c, 1, 1)
        assert rec["attention"].shape == (2, heads, c // heads, c // heads)
        assert not any(t.requires_grad for t in rec.values())
        assert torch.allclose(rec["attention"].sum(-1), torch.ones(()), atol=1e-5)  # softmax rows
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


def test_recomputed_gates_rebuild_the_block_output():
    torch.manual_seed(0)
    block = SCSA(16, head_num=2, window_size=3).eval()
    for p in block.parameters():  # away from the initial values, so every gate matters
        p.data.normal_(0, 0.5)
    x = torch.randn(3, 16, 9, 7)
    with torch.no_grad(), capture(block, attention=True) as rec:
        y = block(x)
    r = rec[""]
    rebuilt = x * r["a_h"] * r["a_w"] * r["channel_gate"]
    assert torch.allclose(rebuilt, y, rtol=1e-5, atol=1e-6)
    assert r["attention"].shape == (3, 2, 8, 8)


def test_smsa_and_pcsa_alone():
    seq = torch.nn.Sequential(SMSA(8), PCSA(8)).eval()
    with torch.no_grad(), capture(seq) as rec:
        seq(torch.randn(1, 8, 5, 6))
    assert set(rec["0"]) == {"a_h", "a_w", "spatial"} and set(rec["1"]) == {"channel_gate"}


def test_a_block_that_no_longer_matches_its_definition_is_reported():
    block = SCSA(8).eval()
    seen = block.register_forward_hook(lambda m, a, out: out * 1.5)  # as if the forward changed
    with pytest.raises(CaptureMismatchError, match="output"), torch.no_grad(), capture(block) as _:
        block(torch.randn(1, 8, 6, 6))
    seen.remove()


def test_a_model_without_scsa_is_refused():
    with pytest.raises(ValueError, match="no SCSA"), capture(create_model("resnet18", num_classes=2)):
        pass
