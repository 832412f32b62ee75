"""Smoothing: less jitter on a noisy trajectory, at most one frame of lag, per-track state."""

from __future__ import annotations

import numpy as np
import pytest

from hfpose.engine.people.smoothing import (
    KalmanPointFilter,
    OneEuroFilter,
    SmoothingConfig,
    TrackSmoother,
)
from tests.helpers import make_person

FPS = 30.0


def _trajectory(fps: float = FPS, seconds: float = 6.0, noise_px: float = 2.0, seed: int = 0):
    """17 keypoints following one smooth path (a waving hand), plus detector-like noise."""
    t = np.arange(int(seconds * fps)) / fps
    path = np.stack(
        [300 + 80 * np.sin(2 * np.pi * 0.5 * t), 200 + 50 * np.cos(2 * np.pi * 0.4 * t)], axis=-1
    )
    truth = np.repeat(path[:, None, :], 17, axis=1)
    noisy = truth + np.random.default_rng(seed).normal(0.0, noise_px, truth.shape)
    return t, truth, noisy


def _jitter(points: np.ndarray) -> float:
    """RMS frame-to-frame acceleration: what the eye sees as shimmer."""
    return float(np.sqrt((np.diff(points, n=2, axis=0) ** 2).mean()))


def _lag_frames(smoothed: np.ndarray, truth: np.ndarray) -> float:
    """The delay (in frames, 0.1 steps) that best aligns the output with the truth."""
    frames = np.arange(len(truth))
    errors = []
    shifts = np.arange(0.0, 6.01, 0.1)
    for shift in shifts:
        delayed = np.stack(
            [np.interp(frames - shift, frames, truth[:, 0, d]) for d in range(2)], axis=-1
        )
        errors.append(np.sqrt(((smoothed[:, 0] - delayed) ** 2).mean()))
    return float(shifts[int(np.argmin(errors))])


def _run(method: str, noisy: np.ndarray, t: np.ndarray) -> np.ndarray:
    config = SmoothingConfig(method=method)
    if method == "kalman":
        kalman = KalmanPointFilter(config.process_noise, config.measurement_noise)
        scores = np.ones(noisy.shape[1])
        return np.stack([kalman(p, scores, ti) for p, ti in zip(noisy, t)])
    one_euro = OneEuroFilter(config.min_cutoff, config.beta, config.d_cutoff)
    return np.stack([one_euro(p, ti) for p, ti in zip(noisy, t)])


@pytest.mark.parametrize("method", ["one-euro", "kalman"])
def test_filters_reduce_jitter_without_more_than_one_frame_of_lag(method):
    t, truth, noisy = _trajectory()
    smoothed = _run(method, noisy, t)
    settle = 15  # both filters start from the first measurement; skip half a second
    assert _jitter(smoothed[settle:]) < 0.7 * _jitter(noisy[settle:])
    assert _lag_frames(smoothed[settle:], truth[settle:]) <= 1.0
    assert _lag_frames(noisy[settle:], truth[settle:]) == 0.0  # the measure itself is sound


@pytest.mark.parametrize("method", ["one-euro", "kalman"])
def test_filters_follow_real_time_not_frame_count(method):
    """The same motion sampled at 15 and 60 fps gives the same output at the shared times.

    A filter counting frames would lag four times as long (in seconds) at 15 fps.
    """
    t15, truth15, _ = _trajectory(fps=15.0, seconds=3.0, noise_px=0.0)
    t60, truth60, _ = _trajectory(fps=60.0, seconds=3.0, noise_px=0.0)
    out15 = _run(method, truth15, t15)[:, 0]
    out60 = _run(method, truth60, t60)[::4, 0]
    error15 = np.abs(out15 - truth15[:, 0])[15:].max()
    assert np.abs(out15 - out60)[15:].max() < 0.5 * error15 + 1.0


def test_kalman_trusts_low_score_keypoints_less():
    kalman_sure, kalman_unsure = KalmanPointFilter(), KalmanPointFilter()
    still = np.array([[100.0, 100.0]])
    for i in range(10):
        kalman_sure(still, np.array([0.9]), i / FPS)
        kalman_unsure(still, np.array([0.9]), i / FPS)
    jump = np.array([[130.0, 100.0]])
    moved_sure = kalman_sure(jump, np.array([0.9]), 10 / FPS)[0, 0] - 100
    moved_unsure = kalman_unsure(jump, np.array([0.1]), 10 / FPS)[0, 0] - 100
    assert moved_unsure < 0.5 * moved_sure


@pytest.mark.parametrize("method", ["one-euro", "kalman"])
def test_new_track_starts_from_its_own_measurement(method):
    smoother = TrackSmoother(SmoothingConfig(method=method))
    a = make_person(100, 300)
    a.track_id = 1
    for i in range(5):
        smoother([a], i / FPS)
    b = make_person(500, 300)
    b.track_id = 2
    (out_b,) = smoother([b], 5 / FPS)
    np.testing.assert_allclose(out_b.keypoints, b.keypoints, atol=1e-3)
    np.testing.assert_allclose(out_b.bbox, b.bbox, atol=1e-3)


def test_none_passes_people_through_and_untracked_are_untouched():
    person = make_person(100, 300)
    assert TrackSmoother(SmoothingConfig(method="none"))([person], 0.0)[0] is person
    assert TrackSmoother(SmoothingConfig(method="one-euro"))([person], 0.0)[0] is person


def test_unknown_method_is_refused():
    with pytest.raises(ValueError, match="unknown smoothing"):
        SmoothingConfig(method="wobble")
