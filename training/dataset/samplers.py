"""Samplers that make a training run reproducible across process counts and resumes.

Sampling is deterministic: the train batch sampler splits every step into ``world * accumulate``
interleaved shards with torch's ``DistributedSampler`` (or :class:`RatioSampler` for mixed
datasets). Two processes of one step each then see exactly the shards that one process sees as
its two accumulation micro-batches, which is what makes a DDP run reproduce a single-process run
and ``--resume`` continue exactly.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import Dataset, DistributedSampler, Sampler

from hfpose.training.dataset.records import MixedDataset


class RatioSampler(Sampler[int]):
    """Draws ``epoch_length`` indices with the datasets' ratios; shards like DistributedSampler.

    Within a dataset, indices follow a seeded permutation, repeated (with a fresh permutation)
    when the ratio asks for more samples than it has; repeats are offset by the total length so
    their augmentation differs.
    """

    def __init__(self, dataset: MixedDataset, num_replicas: int, rank: int, seed: int) -> None:
        self.dataset = dataset
        self.num_replicas = num_replicas
        self.rank = rank
        self.seed = seed
        self.epoch = 0
        self.num_samples = -(-dataset.epoch_length // num_replicas)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _global_order(self) -> list[int]:
        g = torch.Generator()
        g.manual_seed(self.seed + self.epoch)
        total = len(self.dataset)
        counts = torch.multinomial(
            torch.tensor(self.dataset.ratios), self.dataset.epoch_length, True, generator=g
        ).bincount(minlength=len(self.dataset.datasets))
        chosen: list[int] = []
        for part, count in enumerate(counts.tolist()):
            size = len(self.dataset.datasets[part])
            offset = int(self.dataset.offsets[part])
            for repeat in range(-(-count // size) if size else 0):
                take = min(size, count - repeat * size)
                perm = torch.randperm(size, generator=g)[:take]
                chosen.extend((perm + offset + repeat * total).tolist())
        order = torch.randperm(len(chosen), generator=g).tolist()
        indices = [chosen[i] for i in order]
        padded = self.num_samples * self.num_replicas
        indices += indices[: padded - len(indices)]
        return indices

    def __iter__(self) -> Iterator[int]:
        return iter(self._global_order()[self.rank :: self.num_replicas])

    def __len__(self) -> int:
        return self.num_samples


class StepBatchSampler(Sampler[list[tuple[int, int]]]):
    """Batches of ``(epoch, index)`` for one process: per optimiser step, its ``accumulate``
    micro-batches, each from its own shard of ``world * accumulate``.

    ``skip_steps`` drops the steps an interrupted epoch already did (resume), without loading them.
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        world_size: int = 1,
        rank: int = 0,
        accumulate: int = 1,
        seed: int = 0,
        shuffle: bool = True,
    ) -> None:
        shards = world_size * accumulate
        self.samplers: list[Any] = []
        for micro in range(accumulate):
            shard = rank * accumulate + micro
            if isinstance(dataset, MixedDataset):
                self.samplers.append(RatioSampler(dataset, shards, shard, seed))
            else:
                self.samplers.append(
                    DistributedSampler(
                        dataset, num_replicas=shards, rank=shard, shuffle=shuffle, seed=seed
                    )
                )
        self.batch_size = batch_size
        self.accumulate = accumulate
        self.epoch = 0
        self.skip_steps = 0

    def set_epoch(self, epoch: int, skip_steps: int = 0) -> None:
        self.epoch = epoch
        self.skip_steps = skip_steps
        for sampler in self.samplers:
            sampler.set_epoch(epoch)

    def steps_per_epoch(self) -> int:
        return -(-len(self.samplers[0]) // self.batch_size)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        shards = [list(sampler) for sampler in self.samplers]
        for step in range(self.skip_steps, self.steps_per_epoch()):
            lo, hi = step * self.batch_size, (step + 1) * self.batch_size
            for shard in shards:
                yield [(self.epoch, index) for index in shard[lo:hi]]

    def __len__(self) -> int:
        return (self.steps_per_epoch() - self.skip_steps) * self.accumulate
