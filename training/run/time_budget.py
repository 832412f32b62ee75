"""Training for a given number of minutes (``hfpose-train ... --time-budget MINUTES``).

A lent GPU gives minutes, not epochs: the run has to stop at a step boundary in time to leave a
checkpoint, an exported ONNX and its score, and the learning rate has to have decayed by then.
So the schedule follows the clock: a linear warm-up over ``lr_config.warmup_iters`` steps (at
most a tenth of the steps the measured throughput predicts), then a cosine from the base rate to
``min_lr_ratio`` of it over the training part of the budget. The part kept back for the finish
(``reserve_s``: the last checkpoint, validation, export with its parity check) is not trained in.
"""

from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from hfpose.training.run.checkpointing import LATEST
from hfpose.training.run.onnx_export import FP32_TOLERANCE, export_onnx, verify_onnx
from hfpose.training.run.schedule import linear_warmup

if TYPE_CHECKING:
    from hfpose.training.run.trainer import Trainer

# Steps at the start that compile, autotune or fill caches: not counted in the step time.
_SETTLING_STEPS = 3
MIN_LR_RATIO = 0.01


def default_reserve_s(budget_s: float) -> float:
    """Seconds kept back for the finish: a quarter of the budget, at most two minutes."""
    return min(0.25 * budget_s, 120.0)


@dataclass
class TimeBudget:
    """The clock of one budgeted run; ``start`` is called when the first step begins."""

    budget_s: float
    reserve_s: float
    created: float = field(default_factory=time.perf_counter)
    train_started: float | None = None
    settled_at: float | None = None
    last_step_at: float | None = None
    steps: int = 0

    @property
    def deadline(self) -> float:
        """When training must have stopped (the reserve then remains)."""
        return self.created + self.budget_s - self.reserve_s

    def start(self) -> None:
        if self.train_started is None:
            self.train_started = time.perf_counter()

    def step_done(self) -> None:
        self.steps += 1
        self.last_step_at = time.perf_counter()
        if self.steps == _SETTLING_STEPS:
            self.settled_at = self.last_step_at

    def seconds_per_step(self) -> float | None:
        """Mean step time after the settling steps (None until measured)."""
        if self.settled_at is None or self.last_step_at is None or self.steps <= _SETTLING_STEPS:
            return None
        return (self.last_step_at - self.settled_at) / (self.steps - _SETTLING_STEPS)

    def progress(self) -> float:
        """Fraction of the training time used, 0..1."""
        if self.train_started is None:
            return 0.0
        span = max(self.deadline - self.train_started, 1e-9)
        return min(1.0, max(0.0, (time.perf_counter() - self.train_started) / span))

    def expected_steps(self) -> int | None:
        """Steps the whole training time holds at the measured rate."""
        per_step = self.seconds_per_step()
        if per_step is None:
            return None
        return self.steps + int(max(0.0, self.deadline - time.perf_counter()) / per_step)

    def exhausted(self) -> bool:
        """Whether another step would end after the deadline (at the measured step time, or the
        first steps' time before that)."""
        now = time.perf_counter()
        per_step = self.seconds_per_step()
        if per_step is None and self.train_started is not None and self.steps:
            per_step = (now - self.train_started) / self.steps
        return now + (per_step or 0.0) > self.deadline


class BudgetSchedule:
    """Linear warm-up, then a cosine to ``min_lr_ratio`` x lr at the budget's end.

    Same interface as :class:`hfpose.training.run.schedule.StepLrWithWarmup` (``lr(epoch, step)``);
    ``first_step`` is the global step the budgeted run began at (a resumed run warms up again).
    """

    def __init__(
        self,
        base_lr: float,
        budget: TimeBudget,
        warmup_iters: int,
        warmup_ratio: float,
        first_step: int = 0,
        min_lr_ratio: float = MIN_LR_RATIO,
    ) -> None:
        self.base_lr = base_lr
        self.budget = budget
        self.warmup_iters = warmup_iters
        self.warmup_ratio = warmup_ratio
        self.first_step = first_step
        self.min_lr_ratio = min_lr_ratio

    def lr(self, epoch: int, iteration: int) -> float:
        """Learning rate of global ``iteration`` (``epoch`` is not used: the clock decides)."""
        progress = self.budget.progress()
        floor = self.min_lr_ratio * self.base_lr
        regular = floor + (self.base_lr - floor) * 0.5 * (1 + math.cos(math.pi * progress))
        warmup = self.warmup_iters
        expected = self.budget.expected_steps()
        if expected is not None:
            warmup = min(warmup, max(1, expected // 10))
        return linear_warmup(regular, iteration - self.first_step, warmup, self.warmup_ratio)


FINAL_ONNX = "final.onnx"
RESULT_FILE = "budget_result.json"


def finish_budget_run(trainer: Trainer) -> dict[str, Any]:
    """What a budgeted run always leaves in its work dir: the last weights (``latest.pth``,
    written by the stop), their validation score, ``final.onnx`` (checked against torch with
    ONNX Runtime, as ``hfpose-export`` does) and ``budget_result.json`` saying all of it."""
    budget = trainer.time_budget
    if budget is None:
        raise ValueError("finish_budget_run needs a trainer with a time budget")
    finish_started = time.perf_counter()
    metrics: dict[str, float] = {}
    if trainer.config.loader.has_val:
        metrics = trainer.validate(trainer.position.epoch + 1)
    model = copy.deepcopy(trainer.model).float().cpu().eval()
    model = model.to(memory_format=torch.contiguous_format)
    onnx_path = export_onnx(trainer.config.raw, model, trainer.work_dir / FINAL_ONNX,
                            checkpoint=str(trainer.work_dir / LATEST))  # fmt: skip
    parity = verify_onnx(model, onnx_path)
    per_step = budget.seconds_per_step()
    result = {
        "budget_s": budget.budget_s,
        "reserve_s": budget.reserve_s,
        "steps": budget.steps,
        "samples": budget.steps * trainer.global_batch,
        "samples_per_s": trainer.global_batch / per_step if per_step else None,
        "setup_s": round((budget.train_started or budget.created) - budget.created, 2),
        "finish_s": round(time.perf_counter() - finish_started, 2),
        "total_s": round(time.perf_counter() - budget.created, 2),
        "validation": metrics,
        "onnx": str(onnx_path),
        "onnx_parity": parity,
        "onnx_parity_ok": parity <= FP32_TOLERANCE,
    }
    (trainer.work_dir / RESULT_FILE).write_text(json.dumps(result, indent=1))
    return result
