"""``--time-budget``: the clock's arithmetic and the schedule that follows it.

The whole budgeted run (stop, checkpoint, validation, export with parity) is rehearsed in
tests/test_lease_kit.py; here the parts are checked on a clock set by hand.
"""

from __future__ import annotations

import time

import pytest

from hfpose.training.run.time_budget import (
    MIN_LR_RATIO,
    BudgetSchedule,
    TimeBudget,
    default_reserve_s,
)
from hfpose.training.run.train_cli import main as train_main


def _budget_at(progress_s: float, budget_s: float = 100.0, reserve_s: float = 20.0) -> TimeBudget:
    """A budget whose training began ``progress_s`` seconds ago (created just before)."""
    now = time.perf_counter()
    budget = TimeBudget(budget_s, reserve_s, created=now - progress_s)
    budget.train_started = now - progress_s
    return budget


def test_reserve_is_a_quarter_of_the_budget_at_most_two_minutes() -> None:
    assert default_reserve_s(60) == 15
    assert default_reserve_s(600) == 120


def test_cosine_runs_from_the_base_rate_to_its_floor_over_the_training_time() -> None:
    base = 1e-3
    rates = []
    for elapsed in (0.0, 40.0, 79.9, 200.0):  # the training part is 100 - 20 = 80 s
        budget = _budget_at(elapsed)
        rates.append(BudgetSchedule(base, budget, 0, 0.001).lr(0, 1000))
    assert rates[0] == pytest.approx(base, rel=1e-3)
    assert rates[1] == pytest.approx(base * (1 + MIN_LR_RATIO) / 2, rel=1e-2)
    assert rates[2] == pytest.approx(base * MIN_LR_RATIO, rel=1e-2)
    assert rates[3] == pytest.approx(base * MIN_LR_RATIO)


def test_warm_up_counts_from_the_run_s_first_step_and_fits_the_expected_steps() -> None:
    budget = _budget_at(0.0)
    schedule = BudgetSchedule(1e-3, budget, warmup_iters=200, warmup_ratio=0.001, first_step=50)
    assert schedule.lr(0, 50) == pytest.approx(1e-6, rel=1e-2)
    assert schedule.lr(0, 150) == pytest.approx(0.5e-3, rel=1e-2)
    # at 1 s a step the 80 s hold 80 steps: the warm-up shrinks to a tenth of them
    budget.steps, budget.settled_at = 13, time.perf_counter() - 10.0
    budget.last_step_at = budget.settled_at + 10.0
    assert budget.seconds_per_step() == pytest.approx(1.0)
    assert 85 <= budget.expected_steps() <= 93
    assert schedule.lr(0, 50 + 10) == pytest.approx(schedule.lr(0, 50 + 500))


def test_exhausted_when_the_next_step_would_end_past_the_deadline() -> None:
    budget = _budget_at(70.0)  # 10 s of training time left
    budget.steps, budget.settled_at = 13, time.perf_counter() - 30.0
    budget.last_step_at = budget.settled_at + 30.0  # 3 s a step
    assert not budget.exhausted()
    budget.last_step_at = budget.settled_at + 120.0  # 12 s a step
    assert budget.exhausted()


def test_a_bad_budget_is_refused_with_its_reason(capsys) -> None:
    with pytest.raises(SystemExit):
        train_main(["hf_hrnet_18_coco_256x192", "--time-budget", "0"])
    assert "--time-budget must be a positive number" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train_main(["hf_hrnet_18_coco_256x192", "--time-budget", "1", "--time-reserve", "60"])
    assert "--time-reserve must be" in capsys.readouterr().err
