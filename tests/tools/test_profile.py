"""Tests of the complexity report, scsa.tools.profile, and of `scsa profile`.

FLOP counts are checked against hand computations written here (the library itself counts with
torch.utils.flop_counter). Speed numbers are only checked for sanity, never against a time.
"""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from scsa import SCSA, list_attentions
from scsa.cli import app
from scsa.tools.profile import (
    count_flops,
    count_params,
    format_markdown,
    measure_throughput,
    measure_train_step,
    profile_attentions,
    resolve_attentions,
    write_report,
)

# The small, fast setting every model-level test uses: ResNet-18, CIFAR stem, 32×32 images.
SMALL = {"stem": "cifar", "image_size": 32, "num_classes": 10}


class Gram(nn.Module):
    """(B, C, H, W) -> (B, C, H, W): adds the channel Gram matrix applied to x (one batched matmul pair)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = x.flatten(2)  # (b, c, n)
        g = t @ t.transpose(1, 2)  # (b, c, c): c*c*n MACs
        return x + (g @ t).view_as(x) * 1e-3  # (b, c, n): c*c*n MACs


class TinyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1, bias=True)
        self.bn = nn.BatchNorm2d(8)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.gram = Gram()
        self.fc = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.gram(self.dw(torch.relu(self.bn(self.conv(x)))))
        return self.fc(x.mean((2, 3)))


def tiny_macs(h: int, w: int) -> int:
    n = h * w
    conv = 8 * 3 * 3 * 3 * n  # c_out * c_in * k * k per output position
    dw = 8 * 3 * 3 * n  # depth-wise: one input channel per output channel
    gram = 2 * 8 * 8 * n
    fc = 8 * 10
    return conv + dw + gram + fc


def _create(attention: str, **kw):
    from scsa.models import create_model

    return create_model("resnet18", num_classes=10, attention=attention, stem="cifar", **kw)


# ----------------------------------------------------------------------------------------------
# params and FLOPs


def test_count_params_exact():
    net = TinyNet()
    # conv 3*8*9 + 8, bn 8 + 8, dw 8*9 + 8, fc 8*10 + 10
    assert count_params(net) == (216 + 8) + 16 + (72 + 8) + (80 + 10)
    shared = nn.Linear(4, 4)
    assert count_params(nn.Sequential(shared, shared)) == 20  # a shared parameter counts once


@pytest.mark.parametrize("batch", [1, 3])
def test_count_flops_matches_hand_count(batch):
    net = TinyNet().train()
    stats = net.bn.running_mean.clone()
    assert count_flops(net, (batch, 3, 16, 12)) == tiny_macs(16, 12)  # per image, whatever the batch
    assert net.training and net.bn.training  # flags restored
    assert torch.equal(net.bn.running_mean, stats)  # counted in eval mode


@pytest.mark.parametrize(("head_num", "size"), [(1, 14), (2, 14), (1, 5)])
def test_count_flops_scsa_block(head_num, size):
    c = 64
    n = (size // 7) ** 2 if size >= 7 else 1  # PCSA tokens: 7×7 average-pool windows, shrunk on small maps
    # SMSA: 4 depth-wise Conv1d groups of c/4 channels, kernels 3+5+7+9, on both axes.
    smsa = (c // 4) * (3 + 5 + 7 + 9) * (size + size)
    # PCSA: depth-wise 1×1 q, k, v on n tokens, then q·kᵀ and attn·v per head (c/h × c/h × n each).
    pcsa = 3 * c * n + 2 * head_num * (c // head_num) ** 2 * n
    assert count_flops(SCSA(c, head_num=head_num), (1, c, size, size)) == smsa + pcsa


class DataDependent(nn.Module):
    """Python control flow on a tensor's value: cannot run on fake tensors."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) if bool(x.abs().sum() >= 0) else x


def test_count_flops_falls_back_to_a_real_pass():
    with pytest.warns(UserWarning, match="shapes-only pass failed"):
        assert count_flops(DataDependent(), (2, 3, 5, 5)) == 4 * 3 * 25


def test_count_flops_rejects_bad_input_size():
    with pytest.raises(ValueError, match="input_size"):
        count_flops(TinyNet(), (0, 3, 8, 8))


def test_scsa_cost_on_resnet18_small_and_positive():
    plain, scsa = _create("none"), _create("scsa")
    size = (1, 3, 32, 32)
    base = count_flops(plain, size)
    extra = count_flops(scsa, size) - base
    assert 0 < extra < 0.02 * base
    # spec: 16·C parameters per block at the defaults; BasicBlock attends on its planes, two blocks a stage
    assert count_params(scsa) - count_params(plain) == 16 * 2 * (64 + 128 + 256 + 512)


# ----------------------------------------------------------------------------------------------
# speed and memory


def test_measure_throughput_leaves_model_alone():
    net = TinyNet().train()
    state = {k: v.clone() for k, v in net.state_dict().items()}
    ips = measure_throughput(net, batch_size=2, image_size=8, warmup=1, iters=2)
    assert math.isfinite(ips) and ips > 0
    assert net.training
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in state.items())
    assert measure_throughput(net, batch_size=2, image_size=8, warmup=0, iters=1, channels_last=True) > 0
    with pytest.raises(ValueError, match="iters"):
        measure_throughput(net, iters=0)


def test_measure_train_step_on_a_copy_and_memory_estimate():
    net = TinyNet()
    state = {k: v.clone() for k, v in net.state_dict().items()}
    small = measure_train_step(net, batch_size=2, image_size=16, steps=2, warmup=1)
    big = measure_train_step(net, batch_size=8, image_size=16, steps=1, warmup=0)
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in state.items())
    assert small["step_time_s"] > 0 and small["memory_method"] == "estimate_saved_tensors"
    param_bytes = 4 * count_params(net)
    # weights, grads and momentum, plus at least the input and the first conv's output saved for backward
    floor = 3 * param_bytes + 4 * 2 * (3 + 8) * 16 * 16
    assert small["peak_memory_bytes"] >= floor
    # saved activations grow with the batch; parameters do not
    assert big["peak_memory_bytes"] - small["peak_memory_bytes"] >= 4 * 6 * (3 + 8) * 16 * 16


# ----------------------------------------------------------------------------------------------
# the report


def test_resolve_attentions():
    assert resolve_attentions("scsa, smsa ,scsa") == ["none", "scsa", "smsa"]
    assert resolve_attentions(["SCSA", "none"]) == ["none", "scsa"]
    everything = resolve_attentions("all")
    assert everything[0] == "none" and sorted(everything) == list_attentions()
    with pytest.raises(ValueError, match=r"unknown attention\(s\) 'bogus'.*known: .*scsa"):
        resolve_attentions("scsa,bogus")


def test_profile_attentions_rows_are_sane():
    rows = profile_attentions(
        "resnet18",
        "scsa",
        batch_size=2,
        progress=False,
        measure_train=True,
        warmup=1,
        iters=1,
        train_steps=1,
        train_warmup=0,
        **SMALL,
    )
    assert [r["attention"] for r in rows] == ["none", "scsa"]
    base, scsa = rows
    assert base["params_delta"] == base["flops_delta"] == base["peak_memory_delta"] == 0
    assert base["throughput_delta_pct"] == 0 and base["train_step_delta_pct"] == 0
    assert scsa["params"] == count_params(_create("scsa"))
    assert scsa["params_delta"] > 0 and scsa["flops_delta"] > 0
    for r in rows:
        assert r["throughput"] > 0 and r["train_step_s"] > 0 and r["peak_memory_bytes"] > 4 * r["params"]
        assert r["model"] == "resnet18" and r["image_size"] == 32 and r["device"] == "cpu"
    table = format_markdown(rows)
    assert table.splitlines()[0].startswith("| Model | Attention | Params (M)")
    assert "| — |" in table.splitlines()[2]  # the reference row shows no deltas


def test_profile_attentions_with_a_builder_and_no_speed():
    calls = []

    def build(attention: str) -> nn.Module:
        calls.append(attention)
        return nn.Sequential(nn.Conv2d(3, 8, 1), SCSA(8) if attention == "scsa" else nn.Identity())

    rows = profile_attentions(build, ["scsa"], image_size=8, measure_speed=False, progress=False)
    assert calls == ["none", "scsa"]
    assert "throughput" not in rows[0] and rows[1]["params_delta"] == count_params(SCSA(8))
    assert "Throughput" not in format_markdown(rows)
    with pytest.raises(ValueError, match="attention_kwargs"):
        profile_attentions(build, ["scsa"], measure_speed=False, attention_kwargs={"smsa": {}})

    def broken(attention: str) -> nn.Module:
        return nn.Identity() if attention == "none" else SCSA(6)

    with pytest.raises(ValueError, match=r"cannot build broken with attention 'scsa': dim must be"):
        profile_attentions(broken, "scsa", image_size=8, measure_speed=False, progress=False)


def test_write_report_rejects_unknown_suffix(tmp_path):
    with pytest.raises(ValueError, match=r"\.md"):
        write_report([{"attention": "none"}], tmp_path / "report.txt")


# ----------------------------------------------------------------------------------------------
# the command line

CLI = ["profile", "-m", "resnet18", "--stem", "cifar", "--image-size", "32", "--num-classes", "10"]
CLI_FAST = [*CLI, "--batch-size", "2", "--warmup", "0", "--iters", "1", "--no-progress"]


@pytest.mark.parametrize("suffix", [".md", ".csv", ".json"])
def test_cli_writes_reports(tmp_path, suffix):
    path = tmp_path / "sub" / f"report{suffix}"
    speed = ["--speed"] if suffix == ".json" else ["--no-speed"]  # timing once is enough
    res = CliRunner().invoke(app, [*CLI_FAST, *speed, "-a", "scsa,none", "--out", str(path)])
    assert res.exit_code == 0, res.output
    assert "| Model | Attention |" in res.output and "| scsa |" in res.output
    text = path.read_text()
    if suffix == ".json":
        rows = json.loads(text)
    elif suffix == ".csv":
        rows = list(csv.DictReader(text.splitlines()))
    else:
        rows = [
            {"attention": line.split("|")[2].strip()}
            for line in text.splitlines()[2:]
            if line.startswith("|")
        ]
    assert [r["attention"] for r in rows] == ["none", "scsa"]
    if suffix != ".md":
        assert int(rows[0]["params_delta"]) == 0 and int(rows[1]["params_delta"]) > 0
    if suffix == ".json":
        assert rows[1]["throughput"] > 0 and rows[1]["batch_size"] == 2


def test_cli_train_and_no_speed():
    res = CliRunner().invoke(
        app, [*CLI_FAST, "-a", "scsa", "--no-speed", "--train", "--train-steps", "1", "--train-warmup", "0"]
    )
    assert res.exit_code == 0, res.output
    assert "Train step (ms)" in res.output and "Peak mem (MiB)" in res.output
    assert "Throughput" not in res.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-a", "scsa,bogus"], "unknown attention(s) 'bogus'"),
        (["-a", "scsa", "--out", "report.txt"], "report path must end in one of"),
    ],
)
def test_cli_bad_input_is_a_clear_error(args, message):
    res = CliRunner().invoke(app, [*CLI, "--no-speed", "--no-progress", *args])
    assert res.exit_code == 2
    assert message in res.output
