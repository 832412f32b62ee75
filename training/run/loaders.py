"""DataLoaders for training and evaluation, set up so that forked workers neither hang nor
fight the model for cores."""

from __future__ import annotations

import signal

from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler


def _worker_init(_worker_id: int) -> None:
    """Workers do one sample at a time: extra torch threads only fight the model. Ctrl+C reaches
    every process of the terminal's group; the main process alone acts on it (it saves, then
    shuts its workers down), so no worker prints a traceback or fails the run by dying first."""
    import torch

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(1)


def _serial_opencv() -> None:
    """Stop OpenCV's thread pool before DataLoader workers fork.

    A child forked while the parent's pool exists inherits the pool's state but not its threads,
    and its first parallel cv2 call (warpAffine) waits for them forever: seen as a hang of the
    first batch whenever the main process had warped an image before (``workers_per_gpu: 0``
    validation, a benchmark). Workers crop one person at a time, so one thread is all they need.
    """
    import cv2

    cv2.setNumThreads(1)


def train_loader(
    dataset: Dataset, batch_sampler: Sampler, workers: int, pin_memory: bool
) -> DataLoader:
    """One loader for every epoch of a run (``batch_sampler.set_epoch`` reorders it)."""
    if workers:
        _serial_opencv()
    return DataLoader(
        dataset,
        batch_sampler=batch_sampler,
        num_workers=workers,
        pin_memory=pin_memory,
        worker_init_fn=_worker_init if workers else None,
        # one loader serves every epoch (set_epoch reorders its batch sampler): a new one
        # per epoch forked a worker and refilled the prefetch queue, 2 s measured per epoch
        persistent_workers=bool(workers),
        prefetch_factor=4 if workers else None,
    )


def eval_loader(
    dataset: Dataset, batch_size: int, workers: int, world_size: int = 1, rank: int = 0
) -> DataLoader:
    """Every sample once, in order; each of ``world_size`` processes takes its shard."""
    sampler = None
    if world_size > 1:
        sampler = DistributedSampler(dataset, world_size, rank, shuffle=False)
    if workers:
        _serial_opencv()
    return DataLoader(
        dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
        worker_init_fn=_worker_init if workers else None,
    )  # fmt: skip
