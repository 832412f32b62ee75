"""Per-track temporal smoothing of keypoints (and boxes), driven by real timestamps.

Heatmap argmax jitters by a pixel or two from frame to frame; smoothing removes the shimmer
without making the skeleton trail behind fast motion. Both filters use the time elapsed between
frames, not a frame count, so variable frame rates and dropped live frames are handled right.

- ``one-euro``: the One-Euro filter (Casiez et al., CHI 2012): an exponential smoother whose
  cut-off rises with speed, so still joints are smoothed hard and moving joints follow quickly.
- ``kalman``: a constant-velocity Kalman filter per keypoint (filterpy), whose measurement noise
  grows as the keypoint's score falls, so unsure keypoints lean on the motion model.
- ``none``: pass-through.

Each track gets its own filter state; a track ID never seen before starts from its first
measurement, so a new person is never pulled towards where someone else was.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from filterpy.kalman import KalmanFilter

from hfpose.engine.results import Person
from hfpose.engine.settings import check_declared, setting

SMOOTHING_METHODS = ("one-euro", "kalman", "none")


def _parameter(
    default: float, name: str, help: str, dialog: tuple[float, float, float, int]
) -> Any:  # noqa: A002
    """A filter parameter: the app's dialog edits it (low, high, step, decimals), the CLI
    leaves it out."""
    low, high, step, decimals = dialog
    return setting(
        default, help, name=name, flag="-", ui_range=(low, high), step=step, decimals=decimals
    )


@dataclass
class SmoothingConfig:
    """Parameters of both filters; ``method`` picks which one runs."""

    method: str = setting(
        "one-euro",
        "keypoint smoothing",
        choices=SMOOTHING_METHODS,
        name="smoothing",
        flag="--smooth",
    )
    # One-Euro: cut-off (Hz) when still, speed coefficient (per px/s), derivative cut-off (Hz).
    min_cutoff: float = _parameter(
        1.0, "one_euro_min_cutoff", "One-Euro cut-off (Hz) when still: lower is steadier",
        (0.001, 100.0, 0.1, 3),
    )  # fmt: skip
    beta: float = _parameter(
        0.05, "one_euro_beta", "One-Euro speed response: higher lags less on fast moves",
        (0.0, 10.0, 0.01, 4),
    )  # fmt: skip
    d_cutoff: float = _parameter(
        1.0, "one_euro_d_cutoff", "One-Euro derivative cut-off (Hz)", (0.001, 100.0, 0.1, 3)
    )
    # Kalman: acceleration noise (px/s^2, std) and measurement noise of a score-1 keypoint (px).
    process_noise: float = _parameter(
        1500.0, "kalman_process_noise", "Kalman process noise (px/s², std): more follows "
        "sudden motion", (1.0, 100000.0, 100.0, 0),
    )  # fmt: skip
    measurement_noise: float = _parameter(
        3.0, "kalman_measurement_noise", "Kalman measurement noise of a sure keypoint (px): "
        "more smooths harder", (0.1, 100.0, 0.5, 1),
    )  # fmt: skip
    # Drop the state of a track not seen for this long (the tracker has forgotten it by then).
    forget_after_s: float = 5.0

    def __post_init__(self) -> None:
        check_declared(self)


def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """One-Euro filter over an array of values (all elements filtered independently)."""

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.05, d_cutoff: float = 1.0) -> None:
        self.min_cutoff = float(min_cutoff)
        self.beta = float(beta)
        self.d_cutoff = float(d_cutoff)
        self._value: np.ndarray | None = None
        self._derivative: np.ndarray | None = None
        self._time: float | None = None

    def __call__(self, value: np.ndarray, timestamp: float) -> np.ndarray:
        value = np.asarray(value, dtype=np.float64)
        if self._value is None or self._value.shape != value.shape or self._time is None:
            self._value, self._derivative, self._time = (
                value.copy(),
                np.zeros_like(value),
                timestamp,
            )
            return value.copy()
        dt = timestamp - self._time
        if dt <= 0.0:
            return self._value.copy()
        derivative = (value - self._value) / dt
        a_d = _alpha(self.d_cutoff, dt)
        self._derivative = a_d * derivative + (1.0 - a_d) * self._derivative
        cutoff = self.min_cutoff + self.beta * np.abs(self._derivative)
        a = _alpha(cutoff, dt)
        self._value = a * value + (1.0 - a) * self._value
        self._time = timestamp
        return self._value.copy()


class KalmanPointFilter:
    """Constant-velocity Kalman filter for M 2-D points, one filterpy filter for all of them.

    The state is every point's position then every point's velocity; points are independent
    (block-diagonal matrices), so this is M separate constant-velocity filters computed at once.
    """

    def __init__(self, process_noise: float = 1500.0, measurement_noise: float = 3.0) -> None:
        self.process_noise = float(process_noise)
        self.measurement_noise = float(measurement_noise)
        self._kf: KalmanFilter | None = None
        self._time: float | None = None

    def _start(self, points: np.ndarray, timestamp: float) -> None:
        n = points.size  # 2M coordinates
        kf = KalmanFilter(dim_x=2 * n, dim_z=n)
        kf.x = np.concatenate([points.reshape(-1), np.zeros(n)])[:, None]
        kf.H = np.hstack([np.eye(n), np.zeros((n, n))])
        # Position known to the measurement noise, velocity unknown (a person can be moving).
        kf.P = np.diag(np.r_[np.full(n, self.measurement_noise**2), np.full(n, 500.0**2)])
        self._kf, self._time = kf, timestamp

    def __call__(self, points: np.ndarray, scores: np.ndarray, timestamp: float) -> np.ndarray:
        points = np.asarray(points, dtype=np.float64)
        n = points.size
        if self._kf is None or self._kf.dim_z != n or self._time is None:
            self._start(points, timestamp)
            return points.copy()
        dt = timestamp - self._time
        if dt <= 0.0:
            return self._kf.x[:n, 0].reshape(points.shape).copy()
        kf = self._kf
        eye = np.eye(n)
        kf.F = np.block([[eye, dt * eye], [np.zeros((n, n)), eye]])
        q = self.process_noise**2
        kf.Q = q * np.block([[dt**4 / 4 * eye, dt**3 / 2 * eye], [dt**3 / 2 * eye, dt**2 * eye]])
        kf.predict()
        point_scores = np.clip(np.asarray(scores, dtype=np.float64), 0.05, 1.0)
        std = self.measurement_noise / point_scores  # low score -> noisy measurement
        kf.update(points.reshape(-1, 1), R=np.diag(np.repeat(std**2, points.shape[-1])))
        self._time = timestamp
        return kf.x[:n, 0].reshape(points.shape).copy()


class TrackSmoother:
    """Smooths each tracked person's keypoints and box with a filter of its own."""

    def __init__(self, config: SmoothingConfig | None = None) -> None:
        self.config = config or SmoothingConfig()
        self._filters: dict[int, OneEuroFilter | KalmanPointFilter] = {}
        self._last_seen: dict[int, float] = {}

    def configure(self, config: SmoothingConfig) -> None:
        """Switch method or parameters; every track restarts from its next measurement."""
        self.config = config
        self.reset()

    def reset(self) -> None:
        self._filters.clear()
        self._last_seen.clear()

    def _new_filter(self) -> OneEuroFilter | KalmanPointFilter:
        c = self.config
        if c.method == "kalman":
            return KalmanPointFilter(c.process_noise, c.measurement_noise)
        return OneEuroFilter(c.min_cutoff, c.beta, c.d_cutoff)

    def __call__(self, people: Sequence[Person], timestamp: float) -> list[Person]:
        """Smoothed copies of ``people``; untracked people (track_id -1) pass unchanged."""
        if self.config.method == "none":
            return list(people)
        smoothed = []
        for person in people:
            if person.track_id < 0:
                smoothed.append(person)
                continue
            track_filter = self._filters.get(person.track_id)
            if track_filter is None:
                track_filter = self._filters[person.track_id] = self._new_filter()
            self._last_seen[person.track_id] = timestamp
            # The box corners ride along as two more points so the box does not jitter either.
            points = np.concatenate([person.keypoints, person.bbox.reshape(2, 2)], axis=0)
            if isinstance(track_filter, KalmanPointFilter):
                scores = np.r_[person.keypoint_scores, person.bbox_score, person.bbox_score]
                out = track_filter(points, scores, timestamp)
            else:
                out = track_filter(points, timestamp)
            k = len(person.keypoints)
            smoothed.append(
                replace(
                    person,
                    keypoints=out[:k].astype(np.float32),
                    bbox=out[k:].reshape(4).astype(np.float32),
                )
            )
        stale = [
            tid
            for tid, seen in self._last_seen.items()
            if timestamp - seen > self.config.forget_after_s or seen > timestamp
        ]
        for tid in stale:
            self._filters.pop(tid, None)
            self._last_seen.pop(tid, None)
        return smoothed
