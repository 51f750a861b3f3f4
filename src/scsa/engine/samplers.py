"""Samplers every task shares: a train order that is a function of ``(seed, epoch)`` only, split
across processes, and a validation split that counts each sample once.

Lightning's distributed sampler is turned off (``use_distributed_sampler=False``) by the tasks: these
shard by rank themselves, so a resumed run draws exactly what the uninterrupted run drew.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler

__all__ = ["SeededSampler", "ShardSampler"]


class SeededSampler(Sampler):
    """Shuffled train order that is a function of ``(seed, epoch)``, split across processes.

    Each process takes every ``num_replicas``-th position of one global permutation (padded by
    wrapping, as ``DistributedSampler`` pads, so every process has as many). With ``sample_seeds``
    (the default) it yields ``(index, sample_seed)``, the seed driving that sample's augmentation;
    otherwise plain indices.
    """

    def __init__(
        self, size: int, seed: int, num_replicas: int = 1, rank: int = 0, sample_seeds: bool = True
    ) -> None:
        self.size, self.seed, self.num_replicas, self.rank = size, seed, num_replicas, rank
        self.sample_seeds = sample_seeds
        self.epoch = 0
        self.per_rank = -(-size // num_replicas)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.per_rank

    def __iter__(self) -> Iterator[int] | Iterator[tuple[int, int]]:
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(self.size, generator=g).tolist()
        order += order[: self.per_rank * self.num_replicas - self.size]
        mine = order[self.rank :: self.num_replicas]
        if not self.sample_seeds:
            return iter(mine)
        base = (self.seed * 1_000_003 + self.epoch) * 10_000_019
        return iter([(i, (base + i) % (2**63)) for i in mine])


class ShardSampler(Sampler):
    """Every ``num_replicas``-th index from ``rank``, in order (validation: each sample once overall)."""

    def __init__(self, size: int, num_replicas: int = 1, rank: int = 0) -> None:
        self.indices = list(range(rank, size, num_replicas))

    def __len__(self) -> int:
        return len(self.indices)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)
