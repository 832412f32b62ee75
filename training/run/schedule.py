"""The learning rate at each iteration: mmcv's step policy with a linear warm-up."""

from __future__ import annotations

from hfpose.training.run.run_config import LrConfig


class StepLrWithWarmup:
    """mmcv's ``policy: step`` with ``warmup: linear``: lr x gamma at each epoch in ``steps``;
    during the first ``warmup_iters`` iterations the lr rises linearly from warmup_ratio x lr."""

    def __init__(self, base_lr: float, lr_config: LrConfig) -> None:
        self.base_lr = base_lr
        self.steps = lr_config.step
        self.gamma = lr_config.gamma
        self.warmup_iters = lr_config.warmup_iters
        self.warmup_ratio = lr_config.warmup_ratio

    def lr(self, epoch: int, iteration: int) -> float:
        """Learning rate of global ``iteration`` inside 0-based ``epoch``."""
        regular = self.base_lr * self.gamma ** sum(epoch >= s for s in self.steps)
        return linear_warmup(regular, iteration, self.warmup_iters, self.warmup_ratio)


def linear_warmup(rate: float, step: int, warmup_iters: int, warmup_ratio: float) -> float:
    """``rate`` during mmcv's linear warm-up: from ``warmup_ratio`` x rate at step 0 to the full
    rate at ``warmup_iters``."""
    if step < warmup_iters:
        return rate * (1 - (1 - step / warmup_iters) * (1 - warmup_ratio))
    return rate
