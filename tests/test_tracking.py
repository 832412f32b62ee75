"""Tracking: identities survive a crossing and a short occlusion; similarity measures."""

from __future__ import annotations

import numpy as np
import pytest

from hfpose.engine.people.plausibility import PERSON_EVIDENCE, body_span
from hfpose.engine.people.tracking import Tracker, box_iou, keypoint_oks
from hfpose.models.metainfo import COCO
from tests.helpers import KPT_THR, make_person

FPS = 30.0


def test_box_iou_values():
    boxes = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], float)
    iou = box_iou(boxes, boxes)
    assert iou[0, 0] == pytest.approx(1.0)
    assert iou[0, 1] == pytest.approx(50 / 150)
    assert iou[0, 2] == 0.0


def test_oks_is_one_for_identical_poses_and_falls_with_distance():
    a = make_person(100, 100)
    b = make_person(110, 100)
    area = np.array([200.0 * 100.0])
    same = keypoint_oks(a.keypoints[None], a.keypoint_scores[None], a.keypoints[None],
                        a.keypoint_scores[None], area, COCO.sigmas, KPT_THR)  # fmt: skip
    moved = keypoint_oks(b.keypoints[None], b.keypoint_scores[None], a.keypoints[None],
                         a.keypoint_scores[None], area, COCO.sigmas, KPT_THR)  # fmt: skip
    assert same[0, 0] == pytest.approx(1.0)
    assert 0.0 < moved[0, 0] < 0.9


def test_ids_survive_two_people_crossing():
    """Two identical people walk through each other; detector order is shuffled every frame.

    Only motion tells them apart, so this needs the tracker's constant-velocity prediction.
    """
    tracker = Tracker(COCO.sigmas, max_lost_s=1.0, kpt_thr=KPT_THR)
    rng = np.random.default_rng(0)
    ids_a, ids_b = [], []
    for i in range(45):
        t = i / FPS
        a = make_person(100 + 10 * i, 300)  # walks right
        b = make_person(545 - 10 * i, 300)  # walks left; they overlap for many frames
        people = [a, b]
        rng.shuffle(people)
        tracker.update(people, t)
        ids_a.append(a.track_id)
        ids_b.append(b.track_id)
    assert len(set(ids_a)) == 1 and len(set(ids_b)) == 1
    assert ids_a[0] != ids_b[0]


def test_briefly_occluded_person_keeps_the_id():
    tracker = Tracker(COCO.sigmas, max_lost_s=1.0, kpt_thr=KPT_THR)
    ids = []
    for i in range(60):
        if 20 <= i < 32:  # hidden for 0.4 s while walking on
            tracker.update([], i / FPS)
            continue
        person = make_person(100 + 4 * i, 300)
        tracker.update([person], i / FPS)
        ids.append(person.track_id)
    assert set(ids) == {ids[0]}


def test_person_lost_longer_than_allowed_gets_a_new_id():
    tracker = Tracker(COCO.sigmas, max_lost_s=0.5, kpt_thr=KPT_THR)
    first = make_person(200, 300)
    tracker.update([first], 0.0)
    tracker.update([], 0.3)
    again = make_person(200, 300)
    tracker.update([again], 1.0)
    assert again.track_id != first.track_id


def test_newcomer_gets_a_fresh_id_and_ids_are_unique():
    tracker = Tracker(COCO.sigmas, kpt_thr=KPT_THR)
    a = make_person(100, 300)
    tracker.update([a], 0.0)
    a2, b = make_person(102, 300), make_person(500, 300)
    tracker.update([b, a2], 1 / FPS)
    assert a2.track_id == a.track_id
    assert b.track_id not in (a.track_id, -1)


def test_time_going_backwards_starts_over():
    tracker = Tracker(COCO.sigmas, kpt_thr=KPT_THR)
    a = make_person(100, 300)
    tracker.update([a], 5.0)
    b = make_person(100, 300)
    tracker.update([b], 1.0)  # a seek back: the old track must not continue
    assert b.track_id != a.track_id
    assert tracker.active_track_ids == [b.track_id]


def test_a_flicker_uses_no_id_and_a_person_gets_one_on_the_confirming_frame():
    tracker = Tracker(COCO.sigmas, kpt_thr=KPT_THR, confirm_frames=3)
    cone = make_person(600, 300, height=60, score=0.4)  # a box that comes and goes
    shown = []
    for i in range(12):
        person = make_person(100 + 4 * i, 300)  # someone walking in from frame 0
        people = [person, cone] if i % 3 else [person]  # the cone: 2 frames on, 1 off
        shown.append(tracker.update(people, i / FPS))
    assert [len(frame) for frame in shown[:2]] == [0, 0]  # tentative: no ID, not shown
    assert all(len(frame) == 1 for frame in shown[2:])  # the person alone, from frame 3
    assert {p.track_id for frame in shown for p in frame} == {1}
    assert tracker.active_track_ids == [1]
    # a new person tracked the same way gets the next ID: the flicker used none
    for i in range(3):
        latest = tracker.update([make_person(900, 300), make_person(1200, 300)], (20 + i) / FPS)
    assert sorted(p.track_id for p in latest) == [2, 3]


def _weak(person, detection: float = 0.35):
    """``person`` as a phantom looks to the models: a low pose score and a weak detection."""
    person.bbox_score = detection
    return person


def test_a_static_box_without_a_person_in_it_stays_without_an_id():
    """A cone the detector finds on every frame, scored 0.15: matched, never given an ID, and
    it uses none up; the same scores on a box that walks half its height get one."""
    tracker = Tracker(COCO.sigmas, kpt_thr=KPT_THR, confirm_frames=3, evidence=PERSON_EVIDENCE)
    cone_frames, walker_ids = [], []
    for i in range(60):  # 2 s
        cone = _weak(make_person(600, 300, height=60, score=0.15))
        walker = _weak(make_person(100 + 3 * i, 300, score=0.15))  # 0.45 heights a second
        shown = tracker.update([cone, walker], i / FPS)
        cone_frames.append(any(p is cone for p in shown))
        walker_ids.append(walker.track_id if any(p is walker for p in shown) else None)
    assert not any(cone_frames)
    first = next(i for i, track_id in enumerate(walker_ids) if track_id is not None)
    height = float(walker.bbox[3] - walker.bbox[1])
    assert 3 * first == pytest.approx(height / 2, abs=3)  # from the frame it has moved that far
    assert set(walker_ids[first:]) == {1}


def test_a_static_person_with_a_clear_pose_or_a_confident_detection_gets_an_id_at_once():
    tracker = Tracker(COCO.sigmas, kpt_thr=KPT_THR, confirm_frames=3, evidence=PERSON_EVIDENCE)
    for i in range(3):
        standing = make_person(100, 300)  # pose 0.9, detected at 0.95
        seated = _weak(make_person(600, 300, score=0.15), detection=0.45)  # half out of view
        shown = tracker.update([standing, seated], i / FPS)
    assert [p.track_id for p in shown] == [1, 2]


def _lying_on_a_side(person):
    """``person`` turned a quarter, lying on their side: the joints close to the body's axis,
    in a box as tall as the body is thick."""
    centre = (person.bbox[:2] + person.bbox[2:]) / 2
    offsets = (person.keypoints - centre)[:, ::-1] * np.array([1.0, 0.5], np.float32)
    person.keypoints = centre + offsets
    half = (person.bbox[2:] - person.bbox[:2])[::-1] / 2
    person.bbox = np.concatenate([centre - half, centre + half])
    return person


def test_a_clear_pose_gathered_in_part_of_its_box_gets_no_id_a_body_filling_it_does():
    """A bike rack the keypoint model scores like a person (0.35), static and weakly detected:
    its joints fill the top half of its box only, and it stays without an ID. The same scores on
    a body from head to foot of its box, standing or lying on its side, give one at once."""
    tracker = Tracker(COCO.sigmas, kpt_thr=KPT_THR, confirm_frames=3, evidence=PERSON_EVIDENCE)
    shown_ids = []
    for i in range(30):  # 1 s
        rack = _weak(make_person(600, 300, score=0.35))
        rack.bbox[3] += rack.bbox[3] - rack.bbox[1]  # the box twice as tall as the joints
        standing = _weak(make_person(100, 300, score=0.35))
        lying = _lying_on_a_side(_weak(make_person(300, 600, score=0.35)))
        shown = tracker.update([rack, standing, lying], i / FPS)
        shown_ids.append([p.track_id if p is standing or p is lying else None for p in shown])
    assert body_span(rack) < PERSON_EVIDENCE.clear_pose_span <= body_span(lying)
    assert lying.bbox[2] - lying.bbox[0] > lying.bbox[3] - lying.bbox[1]  # a wide box
    assert shown_ids[:2] == [[], []]
    assert all(ids == [1, 2] for ids in shown_ids[2:])  # from the third frame; never the rack
