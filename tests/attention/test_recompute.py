"""attention_outputs_recomputed: SCSA's output saved as a recipe, same gradients, other hooks kept.

SCSA: Si et al., arXiv 2407.05128. The context manager lives in ``scsa.attention.recompute``; the
recipe (``output_recompute``) in the fast path. The backbones' use of it is tested in
``tests/models/test_memory.py``.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import pytest
import torch
from torch import nn

from scsa import SCSA
from scsa.attention._scsa_fast import output_recompute
from scsa.attention.recompute import attention_outputs_recomputed


class Scale(nn.Module):
    """Multiplies its input by 2 in place: after it, SCSA's output is no longer what SCSA returned."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul_(2.0)


class Recomputed(nn.Module):
    """Runs ``model`` under attention_outputs_recomputed."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with attention_outputs_recomputed():
            return self.model(x)


def scsa_then_conv(*middle: nn.Module) -> nn.Sequential:
    """ReLU → SCSA → [middle] → 1×1 conv, the place SCSA has in a ResNet bottleneck."""
    return nn.Sequential(nn.ReLU(), SCSA(32), *middle, nn.Conv2d(32, 16, 1)).train()


def saved_storages(fn) -> dict[int, int]:
    """Bytes of every distinct storage that autograd saved while ``fn()`` ran, by address."""
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return storages


def forward(model: nn.Module, x: torch.Tensor, recompute: bool = True) -> torch.Tensor:
    with attention_outputs_recomputed() if recompute else contextlib.nullcontext():
        return model(x)


def grads(
    model: nn.Module, x: torch.Tensor, recompute: bool, create_graph: bool = False
) -> list[torch.Tensor]:
    """Gradients of a fixed function of the output w.r.t. the input and every parameter."""
    x = x.detach().clone().requires_grad_()
    y = forward(model, x, recompute)
    loss = (y * torch.linspace(-1, 1, y.numel()).view_as(y)).square().sum()
    return list(torch.autograd.grad(loss, [x, *model.parameters()], create_graph=create_graph))


def test_the_output_is_saved_as_a_recipe_and_the_gradients_are_the_same() -> None:
    model, x = scsa_then_conv(), torch.randn(2, 32, 24, 20)
    outputs: list[torch.Tensor] = []
    model[1].register_forward_hook(lambda m, i, o: outputs.append(o))
    plain = saved_storages(lambda: forward(model, x, recompute=False))
    stored = saved_storages(lambda: forward(model, x))  # the counting hooks are the outer ones
    s_plain, s = outputs
    assert s_plain.untyped_storage().data_ptr() in plain
    assert output_recompute(s) is not None and torch.equal(output_recompute(s)(), s)
    # the conv kept the recipe, not s; everything else reached the outer hooks
    assert s.untyped_storage().data_ptr() not in stored
    assert sum(plain.values()) - sum(stored.values()) == s.untyped_storage().nbytes() == 2 * 32 * 24 * 20 * 4
    del s, s_plain, outputs[:]
    expected = grads(model, x, recompute=False)
    got = grads(model, x, recompute=True)
    assert all(torch.equal(a, b) for a, b in zip(got, expected))


def test_an_output_modified_in_place_is_saved_as_it_is() -> None:
    model, x = scsa_then_conv(Scale()), torch.randn(2, 32, 24, 20)
    outputs: list[torch.Tensor] = []
    model[2].register_forward_hook(lambda m, i, o: outputs.append(o))
    stored = saved_storages(lambda: forward(model, x))
    s = outputs.pop()
    assert output_recompute(s) is None
    assert s.untyped_storage().data_ptr() in stored
    del s
    # a recomputation would give the conv half the input it saw, hence another weight gradient
    expected = grads(model, x, recompute=False)
    got = grads(model, x, recompute=True)
    assert all(torch.equal(a, b) for a, b in zip(got, expected))


def test_double_backward() -> None:
    model = scsa_then_conv().double()
    x = torch.randn(2, 32, 16, 16, dtype=torch.float64)
    first = [grads(model, x, recompute=r, create_graph=True) for r in (False, True)]
    assert all(torch.equal(a, b) for a, b in zip(*first))
    # second order through the conv's saved input: d(dL/dW)/dx runs through the unpacked recipe
    second = []
    for recompute in (False, True):
        xr = x.clone().requires_grad_()
        y = forward(model, xr, recompute)
        (dw,) = torch.autograd.grad(y.square().sum(), model[2].weight, create_graph=True)
        second.append(torch.autograd.grad(dw.square().sum(), xr)[0])
    assert second[0].abs().sum() > 0
    assert torch.equal(second[0], second[1])


def test_outer_hooks_pack_and_unpack_everything_else() -> None:
    # offloading, checkpointing or a count keep working inside: all but s go through them
    model, x = scsa_then_conv(), torch.randn(2, 32, 24, 20)
    counts = []
    for recompute in (False, True):
        calls = {"pack": 0, "unpack": 0}

        def pack(t: torch.Tensor, calls: dict[str, int] = calls) -> torch.Tensor:
            calls["pack"] += 1
            return t

        def unpack(t: torch.Tensor, calls: dict[str, int] = calls) -> torch.Tensor:
            calls["unpack"] += 1
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, unpack):
            y = forward(model, x, recompute)
        y.sum().backward()
        counts.append(calls)
    assert counts[1]["pack"] == counts[0]["pack"] - 1 > 0
    assert counts[1]["unpack"] == counts[0]["unpack"] - 1 > 0


def test_non_reentrant_checkpoint_around_it() -> None:
    from torch.utils.checkpoint import checkpoint

    model, x = scsa_then_conv(), torch.randn(2, 32, 24, 20)

    def run(recompute: bool) -> list[torch.Tensor]:
        xr = x.clone().requires_grad_()
        y = checkpoint(forward, model, xr, recompute, use_reentrant=False)
        loss = (y * torch.linspace(-1, 1, y.numel()).view_as(y)).square().sum()
        return list(torch.autograd.grad(loss, [xr, *model.parameters()]))

    expected = grads(model, x, recompute=False)
    assert all(torch.equal(a, b) for a, b in zip(run(True), expected))
    assert all(torch.equal(a, b) for a, b in zip(run(False), expected))


@contextlib.contextmanager
def hooks_pushed() -> Iterator[list[int]]:
    """Counts the saved-tensor hooks pushed inside (by wrapping torch's push)."""
    calls: list[int] = []
    original = torch.autograd.graph.saved_tensors_hooks.__enter__

    def enter(self) -> None:
        calls.append(1)
        original(self)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch.autograd.graph.saved_tensors_hooks, "__enter__", enter)
        yield calls


def test_a_no_op_where_hooks_do_not_apply() -> None:
    model, x = scsa_then_conv(), torch.randn(2, 32, 16, 16)
    with hooks_pushed() as calls:
        with attention_outputs_recomputed():
            model(x)
        assert len(calls) == 1  # the check of the check: it does push in eager training
        with torch.no_grad(), attention_outputs_recomputed():
            model(x)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.jit.trace(Recomputed(model), (x,), check_trace=False)
        assert len(calls) == 1
    # torch.func transforms refuse saved-tensor hooks: pushing one there would raise
    params = dict(model.named_parameters())

    def loss(p: dict[str, torch.Tensor]) -> torch.Tensor:
        with attention_outputs_recomputed():
            return torch.func.functional_call(model, p, (x,)).square().sum()

    got = torch.func.grad(loss)(params)  # by SCSA's plain path, which torch.func takes
    expected = torch.autograd.grad(model(x).square().sum(), list(params.values()))
    assert all(torch.allclose(got[n], e, rtol=1e-4, atol=1e-5) for n, e in zip(params, expected))
