"""Keypoints of every sample of a dataset from a torch model: validation during training and
``hfpose-test`` on a ``.pth`` checkpoint."""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from hfpose.training.dataset.builder import dataset_layout
from hfpose.training.run.loaders import eval_loader
from hfpose.training.run.run_config import LoaderConfig, TestConfig
from hfpose.training.scoring.evaluation import predict_keypoints, unique_predictions


def predict_with_model(
    model: nn.Module,
    dataset: Any,
    cfg: dict[str, Any],
    device: torch.device,
    amp_dtype: torch.dtype | None = None,
    world_size: int = 1,
    rank: int = 0,
    channels_last: bool = False,
) -> dict[str, np.ndarray]:
    """Keypoints of every sample of ``dataset`` (each process a shard, gathered on all), decoded
    as the config's ``model.test_cfg`` says, batched as its ``data.val_dataloader``."""
    test = TestConfig.from_config(cfg)
    loader_cfg = LoaderConfig.from_config(cfg)
    loader = eval_loader(
        dataset, loader_cfg.val_samples_per_gpu, loader_cfg.workers_per_gpu, world_size, rank
    )
    was_training = model.training
    model.eval()

    def heatmaps(images: np.ndarray) -> np.ndarray:
        batch = torch.from_numpy(images).to(device)
        if channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        context = (
            torch.autocast(device.type, dtype=amp_dtype) if amp_dtype else contextlib.nullcontext()
        )
        with torch.inference_mode(), context:
            return model(batch).float().cpu().numpy()

    try:
        predictions = predict_keypoints(
            heatmaps,
            ({k: (v.numpy() if torch.is_tensor(v) else v) for k, v in b.items()} for b in loader),
            dataset_layout(cfg).flip_pairs,
            flip_test=test.flip_test,
            shift_heatmap=test.shift_heatmap,
            use_dark=test.use_dark,
        )
    finally:
        model.train(was_training)
    if world_size > 1:
        gathered: list[Any] = [None] * world_size
        dist.all_gather_object(gathered, predictions)
        predictions = {k: np.concatenate([g[k] for g in gathered]) for k in predictions}
    return unique_predictions(predictions)
