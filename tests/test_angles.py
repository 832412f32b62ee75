"""Joint and segment angles on skeletons of known geometry, and repetitions counted on a noisy
series with gaps whose true repetitions are known."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from hfpose.engine.angles import (
    ANGLES,
    angle_table,
    attach_angles,
    compute_angles,
    definitions_markdown,
)
from hfpose.engine.repetitions import RepetitionConfig, RepetitionCounter, count_repetitions
from hfpose.engine.results import Person
from hfpose.models.metainfo import COCO

NAMES = COCO.keypoint_names
FEET = (*NAMES, "left_heel", "left_big_toe", "right_heel", "right_big_toe")


def skeleton(points: dict[str, tuple[float, float]], names=NAMES) -> Person:
    """A person with the given keypoints (score 0.9), the others at the origin."""
    keypoints = np.zeros((len(names), 2), np.float32)
    for name, xy in points.items():
        keypoints[names.index(name)] = xy
    scores = np.full(len(names), 0.9, np.float32)
    return Person(keypoints, scores, np.array([0, 0, 400, 400], np.float32), track_id=1)


def angles_of(person: Person, names=NAMES, kpt_thr: float = 0.3) -> dict[str, float]:
    attach_angles([person], names, kpt_thr)
    return person.angles


# Standing straight, arms hanging in front of the body: shoulders at y=100, hips at y=200.
STANDING = {
    "left_shoulder": (210, 100), "right_shoulder": (190, 100),
    "left_elbow": (210, 150), "right_elbow": (190, 150),
    "left_wrist": (210, 200), "right_wrist": (190, 200),
    "left_hip": (210, 200), "right_hip": (190, 200),
    "left_knee": (210, 300), "right_knee": (190, 300),
    "left_ankle": (210, 400), "right_ankle": (190, 400),
}  # fmt: skip


def test_straight_limbs_read_zero_and_segments_their_direction() -> None:
    a = angles_of(skeleton(STANDING))
    for side in ("left", "right"):
        for joint in ("knee", "hip", "elbow", "shoulder"):
            assert a[f"{side}_{joint}"] == pytest.approx(0.0, abs=1e-9)
        for segment in ("thigh", "shank", "upper_arm", "forearm"):
            assert a[f"{side}_{segment}"] == pytest.approx(-90.0)  # hanging: straight down
    assert a["trunk"] == pytest.approx(90.0)
    assert a["trunk_lean"] == pytest.approx(0.0)


def test_right_angles_at_every_joint() -> None:
    """Sitting on a chair seen from the side, facing right, forearms forward, arm raised
    forward to the horizontal on one side."""
    person = skeleton({
        "right_shoulder": (100, 0), "right_hip": (100, 100), "right_knee": (200, 100),
        "right_ankle": (200, 200), "right_elbow": (100, 50), "right_wrist": (150, 50),
        "left_shoulder": (100, 0), "left_hip": (100, 100), "left_knee": (200, 100),
        "left_ankle": (200, 200), "left_elbow": (150, 0), "left_wrist": (200, 0),
    })  # fmt: skip
    a = angles_of(person)
    assert a["right_knee"] == pytest.approx(90.0)
    assert a["right_hip"] == pytest.approx(90.0)
    assert a["right_elbow"] == pytest.approx(90.0)
    assert a["right_shoulder"] == pytest.approx(0.0)  # upper arm along the trunk
    assert a["left_shoulder"] == pytest.approx(90.0)  # raised forward to the horizontal
    assert a["left_elbow"] == pytest.approx(0.0)
    assert a["right_thigh"] == pytest.approx(0.0)  # hip -> knee points right
    assert a["right_shank"] == pytest.approx(-90.0)
    assert a["right_forearm"] == pytest.approx(0.0)


def test_signs_on_both_sides_and_a_mirrored_person() -> None:
    """Leaning and kicking to the image's right, then the same person mirrored left-right:
    joint angles stay, segment directions mirror (180 - a) and the lean changes sign."""
    pose = {
        "left_shoulder": (260, 100), "right_shoulder": (240, 100),
        "left_hip": (210, 200), "right_hip": (190, 200),
        "left_knee": (280.710678, 270.710678), "right_knee": (190, 300),
        "left_ankle": (280.710678, 370.710678), "right_ankle": (190, 400),
        "left_elbow": (270, 150), "right_elbow": (240, 150),
        "left_wrist": (270, 200), "right_wrist": (240, 200),
    }  # fmt: skip
    a = angles_of(skeleton(pose))
    lean = math.degrees(math.atan2(50, 100))  # shoulders 50 px right of the hips, 100 up
    assert a["trunk_lean"] == pytest.approx(lean)
    assert a["trunk"] == pytest.approx(90.0 - lean)
    assert a["left_thigh"] == pytest.approx(-45.0)  # down and to the right
    assert a["right_thigh"] == pytest.approx(-90.0)
    assert a["left_knee"] == pytest.approx(45.0)  # shank hangs straight down
    mirrored = {name: (400 - x, y) for name, (x, y) in pose.items()}
    m = angles_of(skeleton(mirrored))
    assert m["trunk_lean"] == pytest.approx(-lean)
    assert m["left_thigh"] == pytest.approx(-135.0)  # down and to the left
    for definition in angle_table(NAMES).definitions:
        name = definition.name
        if definition.kind == "segment":
            expected = (180.0 - a[name] + 180.0) % 360.0 - 180.0
            assert m[name] == pytest.approx(180.0 if expected == -180.0 else expected)
        elif definition.kind != "lean":
            assert m[name] == pytest.approx(a[name], abs=1e-4)  # float32 keypoints


def test_keypoints_at_or_under_the_threshold_give_nan_only_where_they_are_used() -> None:
    person = skeleton(STANDING)
    person.keypoint_scores[NAMES.index("left_knee")] = 0.3  # at the threshold: hidden
    a = angles_of(person, kpt_thr=0.3)
    for name in ("left_knee", "left_hip", "left_thigh", "left_shank"):
        assert math.isnan(a[name]), name
    assert not any(math.isnan(a[n]) for n in ("right_knee", "left_elbow", "trunk_lean"))
    person.keypoint_scores[NAMES.index("right_shoulder")] = 0.0  # the trunk's midpoint
    a = angles_of(person, kpt_thr=0.3)
    assert math.isnan(a["trunk_lean"]) and math.isnan(a["trunk"])


def test_coinciding_points_give_nan_not_zero() -> None:
    pose = dict(STANDING, right_knee=STANDING["right_hip"])
    a = angles_of(skeleton(pose))
    assert math.isnan(a["right_knee"]) and math.isnan(a["right_thigh"])


def test_ankle_only_for_skeletons_with_feet() -> None:
    assert "left_ankle" not in angle_table(NAMES).names
    assert len(angle_table(NAMES).names) == len(ANGLES) - 2
    pose = dict(STANDING, left_heel=(205, 400), left_big_toe=(235, 400))
    a = angles_of(skeleton(pose, FEET), FEET)
    assert a["left_ankle"] == pytest.approx(0.0)  # foot square to the shank
    pose["left_big_toe"] = (235, 370)  # toes raised: dorsiflexion
    a = angles_of(skeleton(pose, FEET), FEET)
    assert a["left_ankle"] == pytest.approx(45.0)


def test_many_people_at_once_match_one_by_one() -> None:
    rng = np.random.default_rng(0)
    keypoints = rng.uniform(0, 500, (6, 17, 2))
    scores = rng.uniform(0, 1, (6, 17))
    table = angle_table(NAMES)
    together = compute_angles(keypoints, scores, table, 0.3)
    for i in range(6):
        alone = compute_angles(keypoints[i : i + 1], scores[i : i + 1], table, 0.3)
        np.testing.assert_array_equal(together[i : i + 1], alone)
    finite = together[np.isfinite(together)]
    assert finite.size and finite.min() >= -180 and finite.max() <= 180


# ----------------------------------------------------------------------------- repetitions
FPS = 30.0
PERIOD_S = 2.0
LOW, HIGH = 30.0, 80.0


def _noisy_reps_series() -> tuple[np.ndarray, np.ndarray, list[tuple[float, float]]]:
    """Ten squats (knee 10 -> 110 -> 10 degrees, 2 s each), then a shallow one to 70 that
    must not count; +-4 degrees of noise; gaps of missing values on a peak, a trough and a
    way down. Returns times, values and the true (start, end) of each repetition."""
    rng = np.random.default_rng(7)
    times = np.arange(0.0, 10 * PERIOD_S + PERIOD_S + 1e-9, 1 / FPS)
    phase = 2 * math.pi * times / PERIOD_S
    clean = np.where(times < 10 * PERIOD_S, 60 - 50 * np.cos(phase), 40 - 30 * np.cos(phase))
    values = clean + rng.uniform(-4, 4, times.size)
    for start in (3.0 * PERIOD_S + 0.85, 6 * PERIOD_S - 0.15, 8 * PERIOD_S + 1.3):
        values[(times >= start) & (times < start + 0.3)] = np.nan
    leave = math.acos((60 - LOW) / 50) / (2 * math.pi) * PERIOD_S  # the clean exit from rest
    truth = [(k * PERIOD_S + leave, (k + 1) * PERIOD_S - leave) for k in range(10)]
    return times, values, truth


def test_repetitions_of_a_noisy_sinusoid_with_gaps_match_the_truth() -> None:
    times, values, truth = _noisy_reps_series()
    reps = count_repetitions(times.tolist(), values.tolist(), LOW, HIGH)
    assert len(reps) == len(truth)
    for rep, (start, end) in zip(reps, truth):
        # the last sample at rest before the move, the first back at rest: within the
        # noise's reach of the clean crossing (4 degrees at 126 degrees/s is 1 frame)
        assert start - 2 / FPS <= rep.start_s <= start + 1 / FPS
        assert end - 1 / FPS <= rep.end_s <= end + 2 / FPS
        # one peak fell in a gap: its highest sample is 0.15 s before it, near 105
        assert 6.0 <= rep.min_deg <= LOW and 100.0 <= rep.max_deg <= 114.0
        assert rep.duration_s == pytest.approx(end - start, abs=3 / FPS)
    assert [r.number for r in reps] == list(range(1, 11))


def test_jitter_around_a_threshold_never_counts() -> None:
    counter = RepetitionCounter(LOW, HIGH)
    wobble = [LOW + (5 if i % 2 else -5) for i in range(40)] + [HIGH - 1, HIGH + 1] * 20
    for i, value in enumerate(wobble):
        counter.update(i / FPS, value)
    assert counter.count == 0  # never back to rest after reaching HIGH
    counter.update(len(wobble) / FPS, LOW - 1)
    assert counter.count == 1


def test_a_long_gap_forgets_the_repetition_under_way() -> None:
    counter = RepetitionCounter(LOW, HIGH, max_gap_s=1.0)
    for t, value in ((0.0, 10), (0.5, 100), (0.6, math.nan), (2.0, 10)):
        counter.update(t, value)
    assert counter.count == 0  # 1.5 s without a value between the peak and the rest
    for t, value in ((2.5, 100), (3.0, 10)):
        counter.update(t, value)
    assert counter.count == 1 and counter.last.start_s == 2.0


def test_thresholds_must_be_in_order() -> None:
    with pytest.raises(ValueError, match="reps_low"):
        RepetitionConfig(low=90.0, high=80.0)
    with pytest.raises(ValueError, match="unknown reps_angle"):
        RepetitionConfig(angle="left_tail")


def test_the_readme_shows_the_table_the_engine_uses() -> None:
    readme = Path(__file__).resolve().parents[1] / "README.md"
    assert definitions_markdown() in readme.read_text(encoding="utf-8")
