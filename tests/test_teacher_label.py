"""hfpose-teacher-label: MoveNet Thunder face labels for limb-only sets, and photo labels.

The rule's geometry is checked on constructed poses; the command runs the real Thunder ONNX
(assets/) through the engine on real fixtures: COCO val person 442619 (all 17 joints labelled
by humans) and the street/indoor frames of tests/data/frames.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal

import cv2
import numpy as np
import pytest

from hfpose.engine.runtime.model_files import ModelError, asset_path
from hfpose.models.processing import affine_points
from hfpose.training.dataset.coco_files import read_json
from hfpose.training.teacher import label_cli as tl
from hfpose.training.teacher import photos as tp
from hfpose.training.teacher import progress
from hfpose.training.teacher.blazepose_label import torso_length


def _pose_pointing(up_deg: float) -> np.ndarray:
    """17x3 limbs of a person whose hips-to-shoulders vector points ``up_deg`` from image-up."""
    rad = np.radians(up_deg)
    up, across = np.array([np.sin(rad), -np.cos(rad)]), np.array([np.cos(rad), np.sin(rad)])
    hips = np.array([400.0, 300.0])
    keypoints = np.zeros((17, 3))
    for joint, (a, u) in {5: (30, 100), 6: (-30, 100), 11: (20, 0), 12: (-20, 0),
                          15: (25, -90), 16: (-25, -90)}.items():  # fmt: skip
        keypoints[joint] = (*(hips + a * across + u * up), 2)
    return keypoints


@pytest.mark.parametrize("up_deg", [0, 45, 180, -120])
def test_upright_view_turns_the_torso_up_and_boxes_every_labelled_point(up_deg) -> None:
    keypoints = _pose_pointing(up_deg)
    image = np.zeros((800, 800, 3), np.uint8)

    view, box, from_view = tl.upright_view(image, keypoints)

    to_view = cv2.invertAffineTransform(from_view)
    in_view = affine_points(keypoints[keypoints[:, 2] > 0, :2], to_view)
    shoulders, hips = in_view[:2].mean(axis=0), in_view[2:4].mean(axis=0)
    assert shoulders[1] < hips[1] and shoulders[0] == pytest.approx(hips[0], abs=1e-3)
    assert (in_view >= box[:2]).all() and (in_view <= box[2:]).all()
    assert (box[:2] >= 0).all() and (box[2:] <= view.shape[1]).all()  # the box is in the view


def test_pairwise_iou_and_box_rules() -> None:
    boxes = np.array([[0, 0, 100, 200, 0.9], [50, 0, 150, 200, 0.9], [300, 0, 340, 60, 0.9]])
    iou, _ = tp.pairwise_iou(boxes[:, :4])
    assert iou[0, 1] == pytest.approx(1 / 3) and iou[0, 0] == 0 and iou[0, 2] == 0
    rule = tp.PhotoRule(max_overlap_iou=0.3, min_box_height=128)
    overlap = tp.overlaps(boxes, rule)
    assert overlap == pytest.approx([1 / 3, 1 / 3, 0])
    assert tp.box_status(boxes[0], overlap[0], rule) == "overlapping"
    assert tp.box_status(boxes[2], overlap[2], rule) == "small"
    person_and_its_legs = np.array([[0, 0, 100, 300, 0.9], [10, 150, 90, 300, 0.5]])
    overlap = tp.overlaps(person_and_its_legs, rule)  # IoU 0.4, the legs' box all inside
    assert overlap[0] == 0 and overlap[1] == pytest.approx(0.4)
    assert tp.box_status(np.array([0, 0, 100, 200, 0.3]), 0.0, rule) == "unsure_detection"
    assert tp.box_status(boxes[0], 0.0, rule) == "candidate"


def test_pose_rules_refuse_unsure_poses_and_poses_of_someone_else() -> None:
    box = np.array([100, 100, 200, 300, 0.9])
    pose = np.zeros((17, 3))
    pose[:, 0], pose[:, 1], pose[:, 2] = 150, np.linspace(110, 290, 17), 0.8
    rule = tp.PhotoRule()
    assert tp.pose_status(box, pose, rule) == "accepted"
    unsure = pose.copy()
    unsure[:10, 2] = 0.1  # 7 sure points of 17
    assert tp.pose_status(box, unsure, rule) == "unsure_pose"
    barely = pose.copy()
    barely[:, 2] = 0.4  # all 17 past the gate, none clearly
    assert tp.pose_status(box, barely, rule) == "unsure_pose"
    elsewhere = pose.copy()
    elsewhere[:5, 0] = 400  # 5 of 17 sure points far outside the box
    assert tp.pose_status(box, elsewhere, rule) == "outside_box"


@pytest.fixture(scope="module")
def thunder_path():
    try:
        return asset_path(tl.THUNDER_ASSET)
    except ModelError:
        pytest.skip(f"assets/{tl.THUNDER_ASSET} is not converted in this checkout")


@pytest.fixture()
def limbs_only(data_dir, tmp_path):
    """person_785.json with the face removed (LSPET/MPII-like), and the truth."""
    source = json.loads((data_dir / "coco" / "person_785.json").read_text())
    truth = np.asarray(source["annotations"][0]["keypoints"], dtype=np.float64).reshape(17, 3)
    source["annotations"][0]["keypoints"][:15] = [0] * 15
    path = tmp_path / "limbs_only.json"
    path.write_text(json.dumps(source))
    return path, truth


def test_annotated_command_fills_the_face_and_keeps_human_limbs(
    thunder_path, limbs_only, data_dir, tmp_path
) -> None:
    annotations, truth = limbs_only
    output = tmp_path / "out" / "faces.json.gz"

    assert tl.main(["annotated", str(annotations), str(data_dir / "coco"), str(output)]) == 0

    labelled = read_json(output)
    info = labelled["info"]["pseudo_labels"]
    assert info["teacher"] == tl.THUNDER_ASSET and len(info["model_sha256"]) == 64
    assert info["rule"]["min_face_score"] == tl.FaceRule().min_face_score
    assert info["status_counts"]["accepted"] == info["people"] == 1
    annotation = labelled["annotations"][0]
    assert annotation["pseudo_keypoints"] == [1] * 5 + [0] * 12
    assert (
        annotation["keypoints"][15:]
        == json.loads(annotations.read_text())["annotations"][0]["keypoints"][15:]
    )  # human limbs unchanged
    face = np.asarray(annotation["keypoints"][:15]).reshape(5, 3)
    errors = np.linalg.norm(face[:, :2] - truth[:5, :2], axis=1) / torso_length(truth)
    assert (errors < 0.1).all(), errors  # on the face, left and right not swapped
    teacher = np.asarray(annotation["teacher_keypoints"]).reshape(17, 3)
    assert (teacher[:5, 2] >= 0.3).all() and (teacher[:, 2] <= 1).all()


def test_upside_down_person_is_labelled_like_the_upright_one(thunder_path, data_dir) -> None:
    coco = json.loads((data_dir / "coco" / "person_785.json").read_text())
    image = cv2.imread(str(data_dir / "coco" / coco["images"][0]["file_name"]))
    truth = np.asarray(coco["annotations"][0]["keypoints"], dtype=np.float64).reshape(17, 3)
    height, width = image.shape[:2]
    turned = np.ascontiguousarray(image[::-1, ::-1])
    limbs = truth.copy()
    limbs[:5] = 0
    limbs[5:, 0] = width - 1 - limbs[5:, 0]
    limbs[5:, 1] = height - 1 - limbs[5:, 1]
    teacher = tl.Teacher(thunder_path)

    result, _ = tl.label_annotated_person(turned, limbs, np.zeros((0, 3)), teacher, tl.FaceRule())

    assert result.status == "accepted" and result.pseudo_mask[:5].all()
    nose_truth = (width - 1 - truth[0, 0], height - 1 - truth[0, 1])
    assert np.linalg.norm(result.keypoints[0, :2] - nose_truth) / torso_length(truth) < 0.1


def test_labels_of_nobody_there_leave_the_face_empty(thunder_path, data_dir) -> None:
    coco = json.loads((data_dir / "coco" / "person_785.json").read_text())
    image = cv2.imread(str(data_dir / "coco" / coco["images"][0]["file_name"]))
    limbs = np.asarray(coco["annotations"][0]["keypoints"], dtype=np.float64).reshape(17, 3)
    limbs[:5] = 0
    limbs[5:, 0] -= 250  # the limbs of nobody in the picture

    result, predicted = tl.label_annotated_person(
        image, limbs, np.zeros((0, 3)), tl.Teacher(thunder_path), tl.FaceRule()
    )

    assert result.status in {"shoulders", "limbs"} and predicted is not None
    assert not result.pseudo_mask.any() and (result.keypoints[:5] == 0).all()


PHOTO_REPO = "fixtures/tests-data"


@pytest.fixture()
def photo_repo(data_dir, tmp_path):
    """Three real pictures as a person_photos repository: a skier (COCO, all joints labelled),
    a full-body person indoors and a street of small pedestrians; (manifest, images root)."""
    root = tmp_path / "photos"
    pictures = {
        "skier.jpg": data_dir / "coco" / "000000000785.jpg",
        "indoor.jpg": data_dir / "frames" / "intel_one_by_one_f300.jpg",
        "street.jpg": data_dir / "frames" / "street_mmpose_demo_f0.jpg",
    }
    lines = ["repo\tcommit\tpath\tbytes\twidth\theight\tsha256\tcategory\tlicence"]
    for name, source in pictures.items():
        (root / "fixtures+tests-data").mkdir(parents=True, exist_ok=True)
        shutil.copy(source, root / "fixtures+tests-data" / name)
        lines.append(f"{PHOTO_REPO}\t0\t{name}\t0\t0\t0\t0\ttest\ttests/data/README.md")
    lines.append("other/repo\t0\tnot_this.jpg\t0\t0\t0\t0\ttest\t-")
    manifest = tmp_path / "manifest.tsv"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest, root


def test_photos_command_labels_the_people_it_can_trust(
    thunder_path, photo_repo, data_dir, tmp_path
) -> None:
    manifest, root = photo_repo
    repo = PHOTO_REPO
    output = tmp_path / "photos.json"

    assert tl.main(["photos", str(manifest), str(root), str(output), "--repo", repo]) == 0

    labelled = read_json(output)
    info = labelled["info"]["pseudo_labels"]
    assert info["images_scanned"] == 3 and info["repo"] == repo
    counts = info["status_counts"]
    assert counts["detected"] == sum(v for k, v in counts.items() if k != "detected")
    assert counts["accepted"] == info["people"] == len(labelled["annotations"]) >= 1
    names = {image["id"]: image["file_name"] for image in labelled["images"]}
    skier = [a for a in labelled["annotations"] if names[a["image_id"]].endswith("skier.jpg")]
    assert len(skier) == 1
    truth = json.loads((data_dir / "coco" / "person_785.json").read_text())["annotations"][0]
    truth_xy = np.asarray(truth["keypoints"], dtype=np.float64).reshape(17, 3)
    found = np.asarray(skier[0]["keypoints"]).reshape(17, 3)
    sure = found[:, 2] > 0
    assert sure.sum() >= tp.PhotoRule().min_confident_keypoints
    errors = np.linalg.norm(found[sure, :2] - truth_xy[sure, :2], axis=1) / torso_length(truth_xy)
    assert np.median(errors) < 0.1, errors
    assert skier[0]["pseudo_keypoints"] == [int(v) for v in sure]
    assert all(
        image["file_name"].startswith("fixtures+tests-data/") for image in labelled["images"]
    )
    assert (root / labelled["images"][0]["file_name"]).is_file()


def test_face_check_measures_distance_and_counts_swapped_eyes() -> None:
    from hfpose.training.teacher import face_check as fc

    truth = _pose_pointing(0)  # torso 100 px
    truth[:5] = [[400, 150, 2], [390, 140, 2], [410, 140, 2], [380, 145, 2], [420, 145, 0]]
    human = {"id": 1, "keypoints": truth.reshape(-1).tolist()}
    labelled_points = truth.copy()
    labelled_points[1, :2], labelled_points[2, :2] = truth[2, :2], truth[1, :2]  # eyes swapped
    labelled_points[0, 0] += 4  # nose 0.04 torso off
    labelled_points[4] = (420, 145, 2)  # a point COCO did not label: filled, not checked
    labelled = {
        "id": 1,
        "keypoints": labelled_points.reshape(-1).tolist(),
        "pseudo_keypoints": [1] * 5 + [0] * 12,
        "pseudo_status": "accepted",
    }

    report = fc.face_errors([human], [labelled])

    assert report["face_points_filled"] == 5 and report["checked_against_coco"] == 4
    assert report["within_0.05"] == 50.0  # nose and left ear; the swapped eyes are 0.2 off
    assert report["within_0.2"] == 100.0
    assert report["left_right_swapped_pct"] == 50.0
    assert fc.limbs_only({"annotations": [human]})["annotations"][0]["keypoints"][:15] == [0] * 15


def test_shards_split_a_repository_evenly_and_refuse_nonsense() -> None:
    rows = [{"path": str(i)} for i in range(10)]
    parts = [tp.shard_rows(rows, f"{i}/3") for i in range(3)]
    assert sorted(int(r["path"]) for part in parts for r in part) == list(range(10))
    assert [r["path"] for r in parts[1]] == ["1", "4", "7"]
    for bad in ("3/3", "a/2", "1"):
        with pytest.raises(SystemExit):
            tp.shard_rows(rows, bad)


REAL_TEACHER_CALL = tl.Teacher.__call__


class _KilledError(Exception):
    """Stands in for a kill no handler sees (SIGKILL, power): nothing runs on the way out."""


def _teacher_stopping_at_call(monkeypatch, call: int, stop) -> list[int]:
    """Thunder runs for real; at its ``call``-th run (counted in the list returned) ``stop()``
    happens first: a real SIGINT to this process, or a ``_KilledError``."""
    calls: list[int] = []

    def counted(self, frame_bgr, boxes_xyxy):
        calls.append(len(boxes_xyxy))
        if len(calls) == call:
            stop()
        return REAL_TEACHER_CALL(self, frame_bgr, boxes_xyxy)

    monkeypatch.setattr(tl.Teacher, "__call__", counted)
    return calls


def _sigint() -> None:
    os.kill(os.getpid(), signal.SIGINT)


def _kill() -> None:
    raise _KilledError


def _without_time(path) -> dict:
    labelled = read_json(path)
    del labelled["info"]["pseudo_labels"]["seconds"]  # the only part that differs run to run
    return labelled


def test_annotated_run_killed_then_sigint_from_a_patched_teacher_resumes_to_the_same_labels(
    thunder_path, data_dir, tmp_path, monkeypatch, capsys
) -> None:
    """4 images, 14 people: killed after a save of every image, resumed and stopped by Ctrl+C,
    resumed again; the end is what one uninterrupted run gives."""
    from hfpose.training.teacher.face_check import limbs_only

    coco = limbs_only(json.loads((data_dir / "coco" / "test_coco.json").read_text()))
    annotations = tmp_path / "limbs_only.json"
    annotations.write_text(json.dumps(coco))
    command = ["annotated", str(annotations), str(data_dir / "coco")]
    whole = tmp_path / "whole.json.gz"
    assert tl.main([*command, str(whole)]) == 0
    output = tmp_path / "out" / "faces.json.gz"
    sidecar = progress.progress_path(output)

    monkeypatch.setattr(progress, "SAVE_INTERVAL_S", 0.0)
    _teacher_stopping_at_call(monkeypatch, 3, _kill)
    with pytest.raises(_KilledError):
        tl.main([*command, str(output)])
    killed_at = len(read_json(sidecar)["records"])
    assert 0 < killed_at < 4 and not output.exists()

    monkeypatch.setattr(progress, "SAVE_INTERVAL_S", 3600.0)  # only the stop saves
    _teacher_stopping_at_call(monkeypatch, 3, _sigint)
    capsys.readouterr()
    assert tl.main([*command, str(output)]) == 130
    stopped_at = len(read_json(sidecar)["records"])
    assert killed_at < stopped_at < 4 and not output.exists()
    continue_with = shlex.join(["hfpose-teacher-label", *command, str(output)])
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"hfpose-teacher-label: stopped by Ctrl+C (SIGINT); {stopped_at} of 4 images labelled, "
        f"kept in {sidecar}; continue with: {continue_with}"
    )

    calls = _teacher_stopping_at_call(monkeypatch, 0, _kill)
    assert tl.main([*command, str(output)]) == 0
    assert f"resuming: {stopped_at} of 4 images already labelled" in capsys.readouterr().err
    assert 0 < sum(calls) < 14  # the people of the labelled images were not run again
    assert _without_time(output) == _without_time(whole)
    assert not sidecar.exists()


def test_photos_run_sigint_from_a_patched_teacher_refuses_other_options_then_resumes(
    thunder_path, photo_repo, tmp_path, monkeypatch, capsys
) -> None:
    manifest, root = photo_repo
    command = ["photos", str(manifest), str(root)]
    whole = tmp_path / "whole.json"
    assert tl.main([*command, str(whole), "--repo", PHOTO_REPO]) == 0
    output = tmp_path / "photos.json"
    sidecar = progress.progress_path(output)
    _teacher_stopping_at_call(monkeypatch, 2, _sigint)
    assert tl.main([*command, str(output), "--repo", PHOTO_REPO]) == 130
    saved = sidecar.read_bytes()
    monkeypatch.undo()

    with pytest.raises(SystemExit) as refused:
        tl.main([*command, str(output), "--repo", PHOTO_REPO, "--min-mean-score", "0.6"])
    message = str(refused.value)
    assert f"{sidecar} holds 1 of 3 images labelled with a different rule" in message
    assert shlex.join(["hfpose-teacher-label", *command, str(output), "--repo", PHOTO_REPO]) in (
        message
    )
    assert sidecar.read_bytes() == saved and not output.exists()  # nothing lost, nothing mixed

    capsys.readouterr()
    assert tl.main([*command, str(output), "--repo", PHOTO_REPO]) == 0
    assert "resuming: 1 of 3 images already labelled" in capsys.readouterr().err
    assert _without_time(output) == _without_time(whole)
    assert not sidecar.exists()


def test_an_unreadable_progress_file_is_refused_not_overwritten(tmp_path) -> None:
    sidecar = progress.progress_path(tmp_path / "labels.json.gz")
    sidecar.write_text('{"records": [')  # e.g. edited by hand

    with pytest.raises(SystemExit, match="cannot resume from .*: delete it to start over"):
        progress.LabelProgress(sidecar, {"input": "x"}, "hfpose-teacher-label ...")

    assert sidecar.read_text() == '{"records": ['
