"""Precise BatchNorm statistics: population mean/var of the current weights, nothing else touched."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from scsa.tasks.classification.precise_bn import PreciseBN, recompute_bn_stats


def _net() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Dropout(0.5), nn.Flatten(), nn.Linear(4 * 36, 2)
    )


def test_statistics_are_the_population_statistics():
    net = _net()
    net.train()
    batches = [torch.randn(8, 3, 8, 8) * (i + 1) + i for i in range(3)]
    feats = torch.cat([net[0](x) for x in batches]).detach()  # inputs of the BatchNorm
    assert recompute_bn_stats(net, batches) == 3
    bn = net[1]
    torch.testing.assert_close(bn.running_mean, feats.mean(dim=(0, 2, 3)))
    # the average of per-batch unbiased variances (equal batches): close to the population variance
    per_batch = torch.stack([f.var(dim=(0, 2, 3)) for f in feats.split(8)])
    torch.testing.assert_close(bn.running_var, per_batch.mean(0), rtol=1e-3, atol=1e-4)
    assert bn.momentum == 0.1 and net.training and bn.training  # modes and momentum restored


def test_no_batch_changes_nothing_and_eval_mode_is_kept():
    net = _net().eval()
    net[1].running_mean.fill_(3.0)
    assert recompute_bn_stats(net, []) == 0
    assert torch.equal(net[1].running_mean, torch.full((4,), 3.0)) and not net.training
    assert recompute_bn_stats(nn.Linear(2, 2), [torch.randn(1, 2)]) == 0  # no BatchNorm at all


def test_dropout_stays_off_while_collecting():
    net = _net().train()
    calls = []
    net[2].register_forward_hook(lambda m, i, o: calls.append(m.training))
    recompute_bn_stats(net, [torch.randn(2, 3, 8, 8)])
    assert calls == [False]


def test_callback_rejects_bad_counts():
    with pytest.raises(ValueError, match="precise_bn needs a number of batches >= 1"):
        PreciseBN(0)
