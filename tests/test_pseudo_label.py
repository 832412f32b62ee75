"""BlazePose face pseudo-labels: crop geometry, agreement rule, real model on a real person."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest

from hfpose.models.processing import affine_points
from hfpose.training.dataset.coco_files import read_json
from hfpose.training.teacher import blazepose_label as pl
from hfpose.training.teacher.blazepose_landmarker import BLAZEPOSE_INPUT, BlazePoseLandmarker

SHOULDER_PAIR, HIP_PAIR = (5, 6), (11, 12)


def _torso_keypoints(up_deg: float) -> np.ndarray:
    """A 17x3 pose whose hips-to-shoulders vector points ``up_deg`` away from the image's up."""
    rad = math.radians(up_deg)
    up = np.array([math.sin(rad), -math.cos(rad)])
    across = np.array([-up[1], up[0]])
    hip_mid = np.array([300.0, 250.0])
    keypoints = np.zeros((17, 3))
    for joint, point in {
        5: hip_mid + 100 * up + 30 * across,
        6: hip_mid + 100 * up - 30 * across,
        11: hip_mid + 20 * across,
        12: hip_mid - 20 * across,
        15: hip_mid - 90 * up + 25 * across,
        16: hip_mid - 90 * up - 25 * across,
    }.items():
        keypoints[joint] = (*point, 2)
    return keypoints


@pytest.mark.parametrize("up_deg", [0, 30, 90, 135, 180, -100])
def test_crop_rotates_any_torso_upright_and_holds_every_point(up_deg: float) -> None:
    keypoints = _torso_keypoints(up_deg)
    shoulder_mid = keypoints[list(SHOULDER_PAIR), :2].mean(axis=0)
    hip_mid = keypoints[list(HIP_PAIR), :2].mean(axis=0)
    head_top = np.array([[*(shoulder_mid + 0.6 * (shoulder_mid - hip_mid)), 2]])
    rotation = pl.upright_rotation(keypoints)
    center, side = pl.person_crop(keypoints, head_top)
    in_crop = affine_points(keypoints[:, :2], pl.crop_transform(center, side, rotation))

    shoulders = in_crop[list(SHOULDER_PAIR)].mean(axis=0)
    hips = in_crop[list(HIP_PAIR)].mean(axis=0)
    assert shoulders[1] < hips[1]
    assert shoulders[0] == pytest.approx(hips[0], abs=1e-3)  # float32 in cv2
    assert hips == pytest.approx([BLAZEPOSE_INPUT / 2] * 2, abs=1e-3)  # BlazePose's ROI centre
    head_in_crop = affine_points(head_top[:, :2], pl.crop_transform(center, side, rotation))
    labelled = np.concatenate([in_crop[keypoints[:, 2] > 0], head_in_crop])
    assert labelled.min() >= 0 and labelled.max() <= BLAZEPOSE_INPUT


def _blazepose_like(human: np.ndarray) -> np.ndarray:
    """33 BlazePose points whose limbs sit exactly on the human labels."""
    blaze = np.zeros((33, 2))
    for coco, index in pl.LIMB_FROM_BLAZEPOSE.items():
        blaze[index] = human[coco, :2]
    return blaze


def test_blazepose_to_coco_order_keeps_every_limb_on_its_joint() -> None:
    human = _torso_keypoints(0)
    in_coco_order = _blazepose_like(human)[pl.BLAZEPOSE_FOR_COCO]
    labelled = human[:, 2] > 0
    np.testing.assert_array_equal(in_coco_order[labelled], human[labelled, :2])
    assert [pl.BLAZEPOSE_FOR_COCO[i] for i in range(5)] == [0, 2, 5, 7, 8]  # nose, eyes, ears


def test_limb_check_accepts_agreement_and_refuses_mirrored_labels() -> None:
    human = _torso_keypoints(0)
    human[[7, 8, 13, 14]] = [[340, 200, 2], [260, 200, 2], [325, 300, 2], [275, 300, 2]]
    blaze = _blazepose_like(human)[pl.BLAZEPOSE_FOR_COCO]
    torso = pl.torso_length(human)
    assert pl.limb_check(human, blaze, torso, pl.Thresholds(), swap=False) is None

    mirrored = human.copy()
    for joint in pl.CHECKED_JOINTS:
        mirrored[joint] = human[pl._mirror(joint)]
    assert pl.limb_check(mirrored, blaze, torso, pl.Thresholds(), swap=False) == "shoulders"
    assert pl.limb_check(mirrored, blaze, torso, pl.Thresholds(), swap=True) is None

    one_knee_off = human.copy()
    one_knee_off[13, :2] += (0, 0.5 * torso)  # one of 8 joints: 87.5% still agree
    assert pl.limb_check(one_knee_off, blaze, torso, pl.Thresholds(), swap=False) is None
    one_knee_off[[7, 14], :2] += (0, 0.5 * torso)  # 3 of 8 off: 62.5% agree
    assert pl.limb_check(one_knee_off, blaze, torso, pl.Thresholds(), swap=False) == "limbs"


@pytest.fixture(scope="module")
def landmarker():
    pytest.importorskip("mediapipe")
    model = BlazePoseLandmarker()
    yield model
    model.close()


@pytest.fixture(scope="module")
def skier(data_dir):
    """COCO val2017 person 442619 with all 17 keypoints labelled by humans."""
    coco = json.loads((data_dir / "coco" / "person_785.json").read_text())
    image = cv2.imread(str(data_dir / "coco" / coco["images"][0]["file_name"]))
    keypoints = np.asarray(coco["annotations"][0]["keypoints"], dtype=np.float64).reshape(17, 3)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB), keypoints


@pytest.mark.parametrize("turned", [False, True], ids=["upright", "upside_down"])
def test_face_pseudo_labels_land_on_the_human_labelled_face(landmarker, skier, turned) -> None:
    image, truth = skier
    if turned:  # 180 degrees: the crop's alignment must undo it
        height, width = image.shape[:2]
        image = np.ascontiguousarray(image[::-1, ::-1])
        truth = truth.copy()
        truth[:, 0] = width - 1 - truth[:, 0]
        truth[:, 1] = height - 1 - truth[:, 1]
    without_face = truth.copy()
    without_face[:5] = 0

    result = pl.label_person(image, without_face, np.zeros((0, 3)), landmarker, pl.Thresholds())

    assert result.status == "accepted"
    assert result.pseudo_mask.tolist() == [1] * 5 + [0] * 12
    np.testing.assert_array_equal(result.keypoints[5:], truth[5:])  # limbs stay human
    errors = np.linalg.norm(result.keypoints[:5, :2] - truth[:5, :2], axis=1)
    assert (errors / pl.torso_length(truth) < 0.15).all(), errors  # left/right not swapped


def test_labels_of_somewhere_else_leave_the_face_masked(landmarker, skier) -> None:
    image, truth = skier
    displaced = truth.copy()
    displaced[:5] = 0
    displaced[5:, 0] -= 200  # the limbs of nobody in the picture: BlazePose cannot agree

    result = pl.label_person(image, displaced, np.zeros((0, 3)), landmarker, pl.Thresholds())

    assert result.status in {"no_pose", "shoulders", "limbs"}
    assert not result.pseudo_mask.any()
    assert (result.keypoints[:5] == 0).all()


def test_mirrored_human_labels_are_refused_and_flagged(landmarker, skier) -> None:
    image, truth = skier
    mirrored = truth.copy()
    mirrored[:5] = 0
    for joint in range(5, 17):  # observer-centric labelling: every left/right limb swapped
        mirrored[joint] = truth[pl._mirror(joint)]

    result = pl.label_person(image, mirrored, np.zeros((0, 3)), landmarker, pl.Thresholds())

    assert result.status == "shoulders"
    assert result.lr_swapped
    assert not result.pseudo_mask.any()


def test_command_writes_gzip_json_with_mask_and_header(landmarker, data_dir, tmp_path) -> None:
    source = json.loads((data_dir / "coco" / "person_785.json").read_text())
    for annotation in source["annotations"]:
        annotation["keypoints"][:15] = [0] * 15
    annotations = tmp_path / "limbs_only.json"
    annotations.write_text(json.dumps(source))
    output = tmp_path / "out" / "pseudo.json.gz"

    assert pl.main([str(annotations), str(data_dir / "coco"), str(output)]) == 0

    labelled = read_json(output)
    header = labelled["info"]["pseudo_labels"]
    assert header["mediapipe_version"] == "0.10.21"
    assert header["model"].endswith("pose_landmark_full.tflite")
    assert header["thresholds"]["min_visibility"] == pl.Thresholds().min_visibility
    assert header["status_counts"]["accepted"] == header["people"] == 1
    annotation = labelled["annotations"][0]
    assert annotation["pseudo_keypoints"] == [1] * 5 + [0] * 12
    assert annotation["keypoints"][15:] == source["annotations"][0]["keypoints"][15:]
    assert annotation["num_keypoints"] == 17
    assert annotation["pseudo_status"] == "accepted" and annotation["pseudo_lr_mirrored"] is False


def test_lspet_sample_gets_face_labels(landmarker, shared_dir, tmp_path) -> None:
    lspet = shared_dir / "datasets" / "lspet"
    coco = read_json(lspet / "lspet_coco17.json")
    labelled = pl.pseudo_label_dataset(coco, lspet / "images", pl.Thresholds(), limit=20)
    header = labelled["info"]["pseudo_labels"]
    assert header["people"] == 20
    assert header["acceptance_rate"] > 0.3
    for annotation in labelled["annotations"]:
        mask = np.asarray(annotation["pseudo_keypoints"], dtype=bool)
        keypoints = np.asarray(annotation["keypoints"]).reshape(17, 3)
        assert not mask[5:].any()
        assert (keypoints[mask, 2] > 0).all() and (keypoints[:5][~mask[:5], 2] == 0).all()
