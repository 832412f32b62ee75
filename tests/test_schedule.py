"""training/run/schedule.py: the learning rate's warm-up and steps."""

from __future__ import annotations

import pytest

from hfpose.training.run.run_config import LrConfig
from hfpose.training.run.schedule import StepLrWithWarmup

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def test_schedule_warms_up_linearly_then_steps_down() -> None:
    lr_config = LrConfig(step=(170, 200), warmup="linear", warmup_iters=500, warmup_ratio=0.001)
    schedule = StepLrWithWarmup(2e-3, lr_config)
    assert schedule.lr(0, 0) == pytest.approx(2e-6)
    assert schedule.lr(0, 250) == pytest.approx(2e-3 * (1 - 0.5 * 0.999))
    assert schedule.lr(5, 500) == pytest.approx(2e-3)
    assert schedule.lr(170, 10**6) == pytest.approx(2e-4)
    assert schedule.lr(200, 10**6) == pytest.approx(2e-5)
