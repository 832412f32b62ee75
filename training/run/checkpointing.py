"""A training run's checkpoints: what they hold, how a run is resumed from one, which are kept.

A checkpoint is ``{'meta', 'state_dict', 'optimizer', 'scaler', 'rng'}`` (the authors' layout
plus the trainer's state) and loads with ``weights_only=True``: random states and the config are
stored as plain Python types and tensors. ``latest.pth`` is rewritten after every epoch (and on
Ctrl+C or --max-steps), ``epoch_N.pth`` is a hard link to it every ``checkpoint_config.interval``
epochs, of which the newest ``max_keep_ckpts`` are kept, and ``best.pth`` holds the weights of
the best validation.
"""

from __future__ import annotations

import os
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hfpose.models.checkpoint import check_compatible, read_checkpoint, save_checkpoint
from hfpose.training.run.run_config import CheckpointConfig

LATEST = "latest.pth"
BEST = "best.pth"


class TrainingError(RuntimeError):
    """Training cannot go on; the message says why and what was kept."""


def capture_rng_state(device: torch.device) -> dict[str, Any]:
    """Python's, numpy's, torch's (and CUDA's) random states as plain types and tensors."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": [version, list(internal), gauss],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "torch": torch.get_rng_state(),
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any], device: torch.device) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def plain(value: Any) -> Any:
    """Config values as plain Python types (weights_only checkpoints accept nothing else)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


@dataclass
class RunPosition:
    """Where a run stands: epochs completed, optimiser steps done in all and inside the current
    (interrupted) epoch, and the best validation so far (``metric``, ``value``, ``epoch``)."""

    epoch: int = 0
    global_step: int = 0
    epoch_step: int = 0
    best: dict[str, Any] = field(default_factory=dict)

    def meta(self) -> dict[str, Any]:
        """The checkpoint ``meta`` keys that record the position (mmcv's ``epoch``, ``iter``)."""
        return {
            "epoch": self.epoch,
            "iter": self.global_step,
            "epoch_step": self.epoch_step,
            "best": dict(self.best),
        }

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> RunPosition:
        return cls(
            int(meta["epoch"]),
            int(meta["iter"]),
            int(meta.get("epoch_step", 0)),
            dict(meta.get("best", {})),
        )


def save_training_state(
    path: Path,
    model: nn.Module,
    meta: dict[str, Any],
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    device: torch.device,
) -> None:
    """Weights, optimiser, loss scaler and every random state: enough to continue exactly."""
    save_checkpoint(
        path,
        model,
        meta,
        optimizer=optimizer.state_dict(),
        scaler=scaler.state_dict(),
        rng=capture_rng_state(device),
    )


def load_training_state(
    path: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    device: torch.device,
    input_size_wh: tuple[int, int],
    global_batch: int,
) -> RunPosition:
    """Restore what :func:`save_training_state` wrote; refuse a checkpoint this run cannot
    continue (no trainer state, another network, another global batch)."""
    checkpoint = read_checkpoint(path)
    meta = checkpoint.get("meta", {})
    if "optimizer" not in checkpoint or "rng" not in checkpoint:
        raise TrainingError(f"{path} has no trainer state (optimizer, rng): cannot resume it")
    problems = check_compatible(model, checkpoint, input_size_wh)
    if problems:
        raise TrainingError(f"--resume: {path} does not fit this config: " + "; ".join(problems))
    model.load_state_dict(checkpoint["state_dict"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    scaler.load_state_dict(checkpoint.get("scaler", {}))
    position = RunPosition.from_meta(meta)
    if int(meta.get("global_batch", global_batch)) != global_batch:
        raise TrainingError(
            f"{path} was trained with global batch {meta['global_batch']}, this run has "
            f"{global_batch}: the data order and schedule would not continue; resume "
            "with the same GPUs x samples_per_gpu x cumulative_iters"
        )
    restore_rng_state(checkpoint["rng"], device)
    return position


def keep_epoch(work_dir: Path, epoch: int, total_epochs: int, config: CheckpointConfig) -> None:
    """After ``latest.pth`` was written for ``epoch``: keep it as ``epoch_N.pth`` when the
    interval (or the last epoch) says so, and drop the oldest beyond ``max_keep_ckpts``."""
    if epoch % config.interval and epoch != total_epochs:
        return
    kept = work_dir / f"epoch_{epoch}.pth"
    kept.unlink(missing_ok=True)
    try:
        os.link(work_dir / LATEST, kept)
    except OSError:
        shutil.copyfile(work_dir / LATEST, kept)
    if config.max_keep_ckpts <= 0:
        return
    epochs = sorted((int(p.stem.split("_")[1]), p) for p in work_dir.glob("epoch_*.pth"))
    for _, path in epochs[: -config.max_keep_ckpts]:
        path.unlink(missing_ok=True)
