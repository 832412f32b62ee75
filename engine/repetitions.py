"""Counting repetitions (a squat's knee, a curl's elbow) in an angle's series, with hysteresis.

A repetition leaves the rest zone (the angle at or under ``low``), reaches ``high`` or more,
and comes back to ``low`` or under. Two thresholds, not one, so jitter around either never
counts twice; a missing value (NaN: a keypoint under the threshold) is skipped without
breaking the repetition it falls in, but a gap longer than ``max_gap_s`` (the person out of
sight) forgets the one under way rather than join two halves of different movements.

All joint angles of :mod:`hfpose.engine.angles` read 0 when the limb is straight or along the
trunk, which is where squats, curls, raises and kicks start and end: the rest zone is low.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from hfpose.engine.angles import ANGLES
from hfpose.engine.settings import check_declared, setting


def _threshold(default: float, name: str, help: str) -> Any:  # noqa: A002 - argparse's word
    """A threshold in degrees, anywhere an angle can be."""
    return setting(default, help, name=name, minimum=-180.0, maximum=180.0, step=5.0,
                   decimals=1, metavar="DEG")  # fmt: skip


@dataclass
class RepetitionConfig:
    """Which angle's repetitions are counted, and the hysteresis thresholds."""

    angle: str = setting(
        "right_knee",
        "the angle whose repetitions are counted (--save-reps, the app's plot)",
        choices=tuple(a.name for a in ANGLES),
        name="reps_angle",
    )
    low: float = _threshold(
        30.0,
        "reps_low",
        "a repetition starts when the angle leaves the rest zone, at or under this (degrees), "
        "and ends when it is back in it",
    )
    high: float = _threshold(
        80.0, "reps_high", "the angle a repetition must reach (degrees, above reps_low)"
    )
    max_gap_s: float = 1.0  # longer without a value: the repetition under way is forgotten

    def __post_init__(self) -> None:
        check_declared(self)
        if self.low >= self.high:
            raise ValueError(f"reps_low ({self.low:g}) must be under reps_high ({self.high:g})")


@dataclass(frozen=True)
class Repetition:
    """One counted repetition: when it left and came back to rest, and its extremes."""

    number: int  # 1, 2, ... per counter
    start_s: float  # the last time at rest before it
    end_s: float  # the first time back at rest
    min_deg: float
    max_deg: float

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    @property
    def range_deg(self) -> float:
        return self.max_deg - self.min_deg


class RepetitionCounter:
    """Counts the repetitions of one person's angle, fed one sample at a time."""

    def __init__(self, low: float, high: float, max_gap_s: float = 1.0) -> None:
        if low >= high:
            raise ValueError(f"the low threshold ({low:g}) must be under the high ({high:g})")
        self.low, self.high, self.max_gap_s = low, high, max_gap_s
        self.repetitions: list[Repetition] = []
        self.reset()

    def reset(self) -> None:
        """Forget the repetition under way (a seek, a new person); the counted ones stay."""
        self._state = "unknown"  # "rest", then "away" once high is reached
        self._last_time: float | None = None
        self._start = 0.0
        self._min = self._max = math.nan

    @property
    def count(self) -> int:
        return len(self.repetitions)

    @property
    def last(self) -> Repetition | None:
        return self.repetitions[-1] if self.repetitions else None

    def update(self, time_s: float, value: float) -> Repetition | None:
        """Take one sample; returns the repetition it completes, if any."""
        if math.isnan(value):
            return None
        if self._last_time is not None and time_s - self._last_time > self.max_gap_s:
            self.reset()
        self._last_time = time_s
        if value <= self.low:
            done = None
            if self._state == "away":
                done = Repetition(
                    self.count + 1, self._start, time_s, min(self._min, value),
                    max(self._max, value),
                )  # fmt: skip
                self.repetitions.append(done)
            self._state = "rest"
            self._start, self._min, self._max = time_s, value, value
            return done
        if self._state == "unknown":
            return None
        self._min, self._max = min(self._min, value), max(self._max, value)
        if value >= self.high:
            self._state = "away"
        return None


def count_repetitions(
    times: list[float], values: list[float], low: float, high: float, max_gap_s: float = 1.0
) -> list[Repetition]:
    """The repetitions in a whole series (NaN for the missing values)."""
    counter = RepetitionCounter(low, high, max_gap_s)
    for time_s, value in zip(times, values):
        counter.update(time_s, value)
    return counter.repetitions
