"""Distributed training: 2 CPU processes (gloo) give the metrics and weights of 1 process, same global batch.

This holds because both see the same global batches (our samplers shard one seeded order), DDP
averages the gradients of equal halves, and the metrics are summed over processes before they are
computed. The network has no BatchNorm, whose per-process statistics would legitimately differ.
"""

from __future__ import annotations

import pytest
import torch

from scsa.tasks.classification import TrainConfig, train


@pytest.mark.slow
def test_two_process_ddp_matches_one_process(image_folder, tmp_path, make_net):
    def cfg(out, **kw):
        return TrainConfig(
            data=str(image_folder),
            out_dir=str(tmp_path / out),
            overrides={"epochs": 2, "batch_size": 16, "image_size": 8},
            accelerator="cpu",
            checkpoints="last",
            progress=False,
            **kw,
        )

    torch.manual_seed(0)
    one = train(cfg("one"), model=make_net())
    torch.manual_seed(0)  # the same initial weights
    two = train(cfg("two", devices=2, strategy="ddp_spawn"), model=make_net())

    assert len(two.history) == len(one.history) == 2
    for a, b in zip(one.history, two.history):
        assert a["val_images"] == b["val_images"] == 24  # every val image counted once, none twice
        for key in ("train_loss", "train_top1", "val_loss", "val_top1", "val_top5", "lr"):
            assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-5), key
    w1 = torch.load(tmp_path / "one" / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    w2 = torch.load(tmp_path / "two" / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    for name in w1:
        torch.testing.assert_close(w2[name], w1[name], rtol=1e-4, atol=1e-6)
