"""``torch.fx.symbolic_trace`` of every block of the zoo and of whole backbones: the traced module
gives the eager numbers at every size, and still refuses a wrong input with the eager ValueError
(the input check is one leaf call in the graph, as are SCSA's dtype choice and window shrink).
"""

from __future__ import annotations

import pytest
import torch

import scsa
from scsa.attention import create_attention, list_attentions

ATTENTIONS = list_attentions()


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return torch.allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ATTENTIONS)
def test_symbolic_trace_of_every_block(name: str):
    torch.manual_seed(0)
    block = create_attention(name, 32).eval()
    gm = torch.fx.symbolic_trace(block)
    for h in (1, 3, 7, 9, 16):
        x = torch.randn(2, 32, h, h + 1)
        with torch.no_grad():
            got = gm(x)
            with scsa.attention.fast_path(False):  # SCSA's readable definition, which FX records
                plain = block(x)
            eager = block(x)
        assert torch.allclose(got, plain, rtol=0, atol=1e-6), (name, h)
        assert _close(got, eager), (name, h)
    if name != "none":
        with pytest.raises(ValueError, match=r"expects input of shape \(B, 32, H, W\), got \[2, 16, 8, 8\]"):
            gm(torch.randn(2, 16, 8, 8))
        assert any("check_input" in str(n.target) for n in gm.graph.nodes)


def test_the_check_survives_dead_code_elimination():
    gm = torch.fx.symbolic_trace(create_attention("se", 16))
    gm.graph.eliminate_dead_code()
    gm.recompile()
    with pytest.raises(ValueError, match="SqueezeExcite expects"):
        gm(torch.randn(1, 8, 4, 4))


@pytest.mark.parametrize(
    "name", [a if a == "scsa" else pytest.param(a, marks=pytest.mark.slow) for a in ATTENTIONS if a != "none"]
)
def test_symbolic_trace_of_a_backbone(name: str):
    torch.manual_seed(0)
    model = scsa.create_model("resnet18", attention=name, num_classes=10, stem="cifar").eval()
    gm = torch.fx.symbolic_trace(model)
    for size in (8, 20):  # layer4's map 1x1 and 3x3
        x = torch.randn(2, 3, size, size)
        with torch.no_grad():
            assert _close(gm(x), model(x)), (name, size)


@pytest.mark.slow
def test_feature_extraction_through_fx():
    from torchvision.models.feature_extraction import create_feature_extractor, get_graph_node_names

    model = scsa.create_model("scsa_mobilenet_v2", num_classes=10, stem="cifar", width_mult=0.25).eval()
    _, nodes = get_graph_node_names(model)
    attn = [n for n in nodes if ".attn" in n]
    assert attn
    extractor = create_feature_extractor(model, return_nodes=[attn[-1], nodes[-1]])
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        out = extractor(x)
        assert _close(out[nodes[-1]], model(x))
