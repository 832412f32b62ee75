"""Fill the COCO face keypoints (nose, eyes, ears) with BlazePose pseudo-labels.

LSPET and MPII label limbs only, so a COCO-17 model trained on them would never learn a face.
BlazePose (``pose_landmark_full.tflite`` in the mediapipe==0.10.21 wheel) predicts the face points;
it is run on each person's crop cut from the human labels, and its face points are kept only
where they can be trusted:

1. the crop: BlazePose's own region-of-interest rule applied to the human labels (centred on the
   labelled mid-hip, side 1.25 x the diameter of the circle there that encloses every labelled
   joint and head point, rotated so that the labelled hips-to-shoulders vector points up), as
   its detector would have cut it; LSPET's inverted gymnasts fail without the rotation;
2. agreement with the human labels, in units of the person's torso length (mid-shoulder to
   mid-hip of the human labels; the size reference of LSP's PCK, and unlike a box it does not
   grow or shrink with the pose of the arms and legs):
   - both labelled shoulders within ``max_shoulder_error``: the head hangs off the shoulders, and
     they pin down left and right (labels that are mirrored relative to BlazePose are refused);
   - at least ``min_agreeing_fraction`` of the labelled shoulders, elbows, hips and knees within
     ``max_joint_error`` (looser, because BlazePose's hips sit about 0.2 torso from LSP's and
     MPII's, and a fraction because LSPET's crowd-sourced labels are noisy themselves);
   - BlazePose's mid-ear within ``max_head_error`` of the labelled head top (where labelled),
     the only human label of the head these datasets have;
3. confidence: each face point is kept only if BlazePose's visibility and presence both reach
   ``min_visibility``; otherwise it stays masked (v=0).

Human limb labels are never changed (BlazePose's hip points sit higher and further apart than
COCO's). Each output annotation gains ``pseudo_keypoints`` (17 ints, 1 where the keypoint is a
BlazePose pseudo-label), ``pseudo_status`` (``accepted`` or the first check that failed) and
``pseudo_lr_mirrored`` (true where the limbs agree with BlazePose only after swapping left and
right: the human labels are probably mirrored, which a trainer may want to skip), and the file's ``info.pseudo_labels`` records the model, its checksum,
the mediapipe version, the thresholds and the acceptance counts.

    hfpose-pseudo-label ../shared/datasets/lspet/lspet_coco17.json \
        ../shared/datasets/lspet/images training/data/lspet_coco17_pseudo.json.gz
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from hfpose.engine.runtime.auto import file_sha256
from hfpose.models.metainfo import COCO
from hfpose.models.processing import PIXEL_STD, affine_points, get_affine_transform
from hfpose.training.dataset.coco_files import (
    extra_points_of,
    read_json,
    relabelled,
    write_json,
)
from hfpose.training.teacher.blazepose_landmarker import (
    BLAZEPOSE_INPUT,
    BLAZEPOSE_MODEL,
    MEDIAPIPE_VERSION,
    BlazePoseLandmarker,
)

# BlazePose's detector-to-landmark ROI: the circle around the mid-hip enclosing the body, x1.25.
CROP_MARGIN = 1.25

# COCO index <- BlazePose landmark index.
FACE_FROM_BLAZEPOSE = {0: 0, 1: 2, 2: 5, 3: 7, 4: 8}
LIMB_FROM_BLAZEPOSE = {
    5: 11, 6: 12, 7: 13, 8: 14, 9: 15, 10: 16,
    11: 23, 12: 24, 13: 25, 14: 26, 15: 27, 16: 28,
}  # fmt: skip
# COCO-17 order -> BlazePose landmark index (the 17 of its 33 points that COCO has).
BLAZEPOSE_FOR_COCO = np.array(
    [{**FACE_FROM_BLAZEPOSE, **LIMB_FROM_BLAZEPOSE}[i] for i in range(17)]
)
# Shoulders, elbows, hips, knees: the joints whose agreement is checked (wrists and ankles move
# fast and are often blurred, so a disagreement there says little about the head).
CHECKED_JOINTS = (5, 6, 7, 8, 11, 12, 13, 14)
SHOULDERS = (5, 6)
HIPS = (11, 12)
FACE = tuple(FACE_FROM_BLAZEPOSE)


@dataclass(frozen=True)
class AgreementThresholds:
    """When a teacher's pose agrees with the human labels (distances in torso lengths); see the
    module docstring for the reasons. Shared by every teacher (``hfpose.training.teacher.label_cli``)."""

    max_shoulder_error: float = 0.25
    max_joint_error: float = 0.35
    min_agreeing_fraction: float = 0.75
    max_head_error: float = 0.75
    min_checked_joints: int = 4


@dataclass(frozen=True)
class Thresholds(AgreementThresholds):
    """BlazePose's acceptance rule: the agreement checks and its face points' confidence."""

    min_visibility: float = 0.9


def _labelled(points: np.ndarray) -> np.ndarray:
    return points[:, 2] > 0


def torso_length(keypoints: np.ndarray) -> float | None:
    """Mid-shoulder to mid-hip distance of the human labels (None without a shoulder and a hip)."""
    shoulders = keypoints[list(SHOULDERS)]
    hips = keypoints[list(HIPS)]
    if not _labelled(shoulders).any() or not _labelled(hips).any():
        return None
    top = shoulders[_labelled(shoulders), :2].mean(axis=0)
    bottom = hips[_labelled(hips), :2].mean(axis=0)
    return float(np.linalg.norm(top - bottom))


def upright_rotation(keypoints: np.ndarray) -> float:
    """Degrees to rotate the crop so that the labelled hips-to-shoulders vector points up.

    The sign follows ``get_affine_transform``: a crop rotated by this angle shows the
    shoulders straight above the hips.
    """
    shoulders = keypoints[list(SHOULDERS)]
    hips = keypoints[list(HIPS)]
    if not _labelled(shoulders).any() or not _labelled(hips).any():
        return 0.0
    up = shoulders[_labelled(shoulders), :2].mean(axis=0) - hips[_labelled(hips), :2].mean(axis=0)
    # Angle of the torso from the image's "up" direction (0, -1).
    return float(math.degrees(math.atan2(up[0], -up[1])))


def person_crop(keypoints: np.ndarray, extra_points: np.ndarray) -> tuple[np.ndarray, float]:
    """Centre and side (pixels) of BlazePose's region of interest, built from the human labels.

    BlazePose's detector centres its ROI on the mid-hip and sizes it as the circle around the
    mid-hip that encloses the whole body, x1.25; the landmark model was trained on such crops.
    The same rule on the labelled joints and head points gives BlazePose the crop it expects
    (measured on 250 LSPET people: a plain box-centred crop left 22% with no pose found, this one
    1%). The circle does not depend on the rotation, so the rotated square fits the person too.
    """
    hips = keypoints[list(HIPS)]
    center = hips[_labelled(hips), :2].mean(axis=0)
    points = np.concatenate([keypoints, extra_points])
    radius = float(np.linalg.norm(points[_labelled(points), :2] - center, axis=1).max())
    return center, max(2.0 * radius * CROP_MARGIN, 1.0)


def crop_transform(center: np.ndarray, side: float, rotation_deg: float) -> np.ndarray:
    """2x3 matrix from image pixels to the BlazePose input crop."""
    scale = np.array([side, side]) / PIXEL_STD
    return get_affine_transform(center, scale, rotation_deg, (BLAZEPOSE_INPUT, BLAZEPOSE_INPUT))


@dataclass
class PersonResult:
    """What BlazePose said about one person; keypoints in original image coordinates."""

    # accepted | too_few_joints | no_pose | shoulders | limbs | head (the first failed check)
    status: str
    keypoints: np.ndarray  # (17,3) the annotation with accepted face points filled
    pseudo_mask: np.ndarray  # (17,) 1 where keypoints holds a pseudo-label
    lr_swapped: bool  # the limbs agree only after swapping BlazePose's left and right


def _mirror(coco_index: int) -> int:
    """The other side's joint (COCO limb pairs are (odd, even): 5<->6, 7<->8, ...)."""
    return coco_index + 1 if coco_index % 2 else coco_index - 1


def limb_check(
    human: np.ndarray,
    teacher_xy: np.ndarray,
    torso: float,
    thresholds: AgreementThresholds,
    swap: bool,
) -> str | None:
    """The first failed limb check ("shoulders" or "limbs"), or None when the limbs agree.

    ``teacher_xy`` (17,2): the teacher's points in COCO order, image pixels.
    """
    errors = {}
    for coco in CHECKED_JOINTS:
        if human[coco, 2] > 0:
            teacher = teacher_xy[_mirror(coco) if swap else coco]
            errors[coco] = float(np.linalg.norm(teacher - human[coco, :2])) / torso
    if any(errors.get(j, 0.0) > thresholds.max_shoulder_error for j in SHOULDERS):
        return "shoulders"
    agreeing = np.mean([error <= thresholds.max_joint_error for error in errors.values()])
    if agreeing < thresholds.min_agreeing_fraction:
        return "limbs"
    return None


def checkable_torso(keypoints: np.ndarray, thresholds: AgreementThresholds) -> float | None:
    """The torso length when enough joints are labelled to check a teacher against, else None."""
    checked = [j for j in CHECKED_JOINTS if keypoints[j, 2] > 0]
    torso = torso_length(keypoints)
    if len(checked) < thresholds.min_checked_joints or not torso:
        return None
    return torso


def agreement(
    human: np.ndarray,
    extra_points: np.ndarray,
    teacher_xy: np.ndarray,
    torso: float,
    thresholds: AgreementThresholds,
) -> tuple[str, bool]:
    """(status, lr_swapped): ``accepted`` or the first failed check (shoulders, limbs, head);
    ``lr_swapped`` when the limbs agree only after swapping the teacher's left and right.

    ``teacher_xy`` (17,2) in COCO order; the head check compares the teacher's mid-ear with the
    labelled head top (the last of ``extra_points``), where there is one.
    """
    failed = limb_check(human, teacher_xy, torso, thresholds, swap=False)
    if failed:
        swapped = limb_check(human, teacher_xy, torso, thresholds, swap=True) is None
        return failed, swapped
    if len(extra_points) and extra_points[-1, 2] > 0:
        mid_ear = (teacher_xy[3] + teacher_xy[4]) / 2
        if np.linalg.norm(mid_ear - extra_points[-1, :2]) / torso > thresholds.max_head_error:
            return "head", False
    return "accepted", False


def label_person(
    image_rgb: np.ndarray,
    keypoints: np.ndarray,
    extra_points: np.ndarray,
    landmarker: BlazePoseLandmarker,
    thresholds: Thresholds,
) -> PersonResult:
    """Run BlazePose on one person's crop and fill the face points it can be trusted with.

    ``extra_points`` (M,3) are the dataset's head/torso points outside COCO's slots, head top
    last (LSP: neck, head top; MPII: pelvis, thorax, upper neck, head top), or (0,3).
    """
    keypoints = np.asarray(keypoints, dtype=np.float64).reshape(17, 3)
    extra_points = np.asarray(extra_points, dtype=np.float64).reshape(-1, 3)
    out = keypoints.copy()
    mask = np.zeros(17, dtype=np.int64)
    torso = checkable_torso(keypoints, thresholds)
    if torso is None:
        return PersonResult("too_few_joints", out, mask, False)

    rotation = upright_rotation(keypoints)
    center, side = person_crop(keypoints, extra_points)
    to_crop = crop_transform(center, side, rotation)
    crop = cv2.warpAffine(
        image_rgb, to_crop, (BLAZEPOSE_INPUT, BLAZEPOSE_INPUT), flags=cv2.INTER_LINEAR
    )
    landmarks = landmarker(crop)
    if landmarks is None:
        return PersonResult("no_pose", out, mask, False)
    blaze_xy = affine_points(landmarks[:, :2], cv2.invertAffineTransform(to_crop))

    status, swapped = agreement(
        keypoints, extra_points, blaze_xy[BLAZEPOSE_FOR_COCO], torso, thresholds
    )
    if status != "accepted":
        return PersonResult(status, out, mask, swapped)

    confidence = np.minimum(landmarks[:, 3], landmarks[:, 4])
    for coco, blaze in FACE_FROM_BLAZEPOSE.items():
        if confidence[blaze] >= thresholds.min_visibility:
            out[coco] = (blaze_xy[blaze, 0], blaze_xy[blaze, 1], 2.0)
            mask[coco] = 1
    return PersonResult("accepted", out, mask, False)


def rounded_keypoints(points: np.ndarray, score_digits: int = 0) -> list[float]:
    """(17,3) -> a flat list: x, y to 0.01 px; the third column an int (v) or a rounded score."""
    flat = []
    for x, y, third in np.asarray(points, dtype=np.float64).reshape(-1, 3):
        flat += [round(float(x), 2), round(float(y), 2)]
        flat.append(round(float(third), score_digits) if score_digits else int(third))
    return flat


def people_by_image(coco: dict, limit: int | None = None) -> dict[int, list[dict]]:
    """The first ``limit`` annotations of a COCO dict grouped by image, in file order."""
    annotations = coco["annotations"][:limit] if limit else coco["annotations"]
    by_image: dict[int, list[dict]] = {}
    for annotation in annotations:
        by_image.setdefault(annotation["image_id"], []).append(annotation)
    return by_image


def annotated_images(
    coco: dict, image_dir: Path, limit: int | None = None, progress: bool = True, start: int = 0
) -> Iterator[tuple[np.ndarray, list[dict]]]:
    """Each image of a COCO dict (BGR) with its annotations, the first ``limit`` of them, from
    the ``start``-th image (a resumed run reads none of those already labelled).

    An image that cannot be read stops the labelling: a label file with people silently
    missing would look complete.
    """
    from tqdm import tqdm

    images = {image["id"]: image for image in coco["images"]}
    by_image = list(people_by_image(coco, limit).items())
    for image_id, people in tqdm(
        by_image[start:],
        disable=not progress,
        unit="img",
        mininterval=30,
        initial=start,
        total=len(by_image),
    ):
        path = image_dir / images[image_id]["file_name"]
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise SystemExit(f"cannot read image {path}")
        yield bgr, people


def labelled_annotation(annotation: dict, result: PersonResult) -> dict:
    """A copy of ``annotation`` with the labeller's keypoints, mask and verdict."""
    labelled = dict(annotation)
    labelled["keypoints"] = rounded_keypoints(result.keypoints)
    labelled["num_keypoints"] = int((result.keypoints[:, 2] > 0).sum())
    labelled["pseudo_keypoints"] = result.pseudo_mask.tolist()
    labelled["pseudo_status"] = result.status
    labelled["pseudo_lr_mirrored"] = result.lr_swapped
    return labelled


def pseudo_label_dataset(
    coco: dict,
    image_dir: Path,
    thresholds: Thresholds,
    limit: int | None = None,
    progress: bool = True,
) -> dict:
    """Return a copy of the COCO dict with face pseudo-labels, masks and a header filled in."""
    landmarker = BlazePoseLandmarker()
    counts = dict.fromkeys(
        ("accepted", "too_few_joints", "no_pose", "shoulders", "limbs", "head"), 0
    )
    face_counts = [0] * len(FACE)
    lr_swapped = 0
    out_annotations = []
    started = time.perf_counter()
    try:
        for bgr, people in annotated_images(coco, image_dir, limit, progress):
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            for annotation in people:
                result = label_person(
                    rgb,
                    np.asarray(annotation["keypoints"], dtype=np.float64),
                    extra_points_of(annotation),
                    landmarker,
                    thresholds,
                )
                counts[result.status] += 1
                lr_swapped += result.lr_swapped
                for i, coco_index in enumerate(FACE):
                    face_counts[i] += int(result.pseudo_mask[coco_index])
                out_annotations.append(labelled_annotation(annotation, result))
    finally:
        landmarker.close()
    seconds = time.perf_counter() - started

    people = len(out_annotations)
    header = {
        "model": BLAZEPOSE_MODEL,
        "model_sha256": file_sha256(landmarker.model_path),
        "mediapipe_version": MEDIAPIPE_VERSION,
        "coco_from_blazepose": {str(k): v for k, v in FACE_FROM_BLAZEPOSE.items()},
        "crop": (
            f"square centred on the labelled mid-hip, side {CROP_MARGIN} x the diameter of the "
            "circle there enclosing the labelled joints and head points, rotated so that "
            f"hips-to-shoulders points up, resized to {BLAZEPOSE_INPUT}x{BLAZEPOSE_INPUT}"
        ),
        "thresholds": asdict(thresholds),
        "checked_joints": list(CHECKED_JOINTS),
        "size_reference": "torso length: mid-shoulder to mid-hip of the human labels",
        "people": people,
        "status_counts": counts,
        "acceptance_rate": round(counts["accepted"] / max(people, 1), 4),
        "face_keypoints_filled": dict(zip(COCO.keypoint_names[:5], face_counts, strict=True)),
        "lr_swapped_people": lr_swapped,
        "seconds": round(seconds, 1),
        "command": " ".join(["hfpose-pseudo-label", *sys.argv[1:]]),
    }
    return relabelled(coco, header, out_annotations, limit)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("annotations", type=Path, help="COCO keypoint json (face joints absent)")
    parser.add_argument("image_dir", type=Path, help="folder holding the json's file_name images")
    parser.add_argument("output", type=Path, help="output json (.json or .json.gz)")
    for name, default in asdict(Thresholds()).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(default), default=default)
    parser.add_argument("--limit", type=int, help="only the first N annotations (for trials)")
    args = parser.parse_args(argv)

    if not args.annotations.is_file():
        raise SystemExit(f"annotation file not found: {args.annotations}")
    if not args.image_dir.is_dir():
        raise SystemExit(f"image folder not found: {args.image_dir}")
    try:
        coco = read_json(args.annotations)
    except (OSError, json.JSONDecodeError) as error:
        raise SystemExit(f"cannot read {args.annotations}: {error}") from None
    thresholds = Thresholds(**{name: getattr(args, name) for name in asdict(Thresholds())})
    labelled = pseudo_label_dataset(coco, args.image_dir, thresholds, args.limit)
    write_json(labelled, args.output)
    header = labelled["info"]["pseudo_labels"]
    print(json.dumps({k: header[k] for k in ("people", "status_counts", "acceptance_rate",
                                              "face_keypoints_filled", "lr_swapped_people",
                                              "seconds")}))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
