"""Teacher labels for unlabelled photos of people (``hfpose-teacher-label photos``).

The photos (``../shared/datasets/person_photos``) have no labels at all: the shipped NanoDet
finds the people (the app's own detector, so the boxes look like the ones the student will get)
and MoveNet Thunder labels each box. A person is kept only where the label is likely right,
because a wrong label teaches a wrong pose with full confidence:

- the detector is fairly sure (``min_detection_score``: NanoDet scores a clear, whole skier
  0.43, so the teacher's checks below do most of the filtering) and the box is big enough for a pose to be
  read off it (``min_box_height`` pixels; Thunder sees 256x256, the student 256x192);
- no other detected person overlaps it much (``max_overlap_iou``): MoveNet SinglePose then
  picks one of the two, not necessarily the one in the box's centre. Boxes lying inside it
  (``nested_fraction`` of their area) do not count: NanoDet adds such part-of-body boxes to one
  person (on the street-fashion set this let 78 of 502 "overlapping" boxes through, 23 of them
  then accepted); the part box itself is still refused;
- Thunder is sure: at least ``min_confident_keypoints`` of 17 score ``min_keypoint_score``
  (the same gate as the face labels; 8 lets upper bodies in, which a webcam app sees most) and
  those sure points average ``min_mean_score``;
- Thunder's sure points lie inside the box (``min_inside_fraction`` of them, box grown by 10%):
  otherwise it followed someone else.

Sure points become labels (v=2), the others are unlabelled (v=0); all 17 with their scores stay
in ``teacher_keypoints``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from hfpose.engine.detection.factory import create_detector
from hfpose.models.metainfo import COCO
from hfpose.training.teacher.blazepose_label import rounded_keypoints
from hfpose.training.teacher.movenet import Teacher, header
from hfpose.training.teacher.progress import LabelProgress

if TYPE_CHECKING:
    from hfpose.engine.detection.person_detector import PersonDetector

MANIFEST_COLUMNS = ("repo", "commit", "path", "bytes", "width", "height", "sha256", "category")
INSIDE_MARGIN = 1.1  # the box grows by this much for the "points inside the box" check


@dataclass(frozen=True)
class PhotoRule:
    """Which detected people get a teacher label (see the module docstring for the reasons)."""

    min_detection_score: float = 0.35
    min_box_height: float = 128.0
    max_overlap_iou: float = 0.3
    nested_fraction: float = 0.9
    min_keypoint_score: float = 0.3
    min_confident_keypoints: int = 8
    min_mean_score: float = 0.5
    min_inside_fraction: float = 0.9


def read_manifest(path: Path, repo: str) -> list[dict[str, str]]:
    """The manifest rows of one repository (``extract.py``'s manifest.tsv)."""
    if not path.is_file():
        raise SystemExit(f"manifest not found: {path}")
    lines = path.read_text().splitlines()
    names = lines[0].split("\t")
    missing = [column for column in MANIFEST_COLUMNS if column not in names]
    if missing:
        raise SystemExit(f"{path} is not a person_photos manifest (no {', '.join(missing)})")
    rows = [dict(zip(names, line.split("\t"))) for line in lines[1:] if line]
    rows = [row for row in rows if row["repo"] == repo]
    if not rows:
        raise SystemExit(f"no rows for repository {repo} in {path}")
    return rows


def shard_rows(rows: list[dict[str, str]], shard: str) -> list[dict[str, str]]:
    """Rows I, I+N, I+2N, ... for ``shard`` "I/N" (manifests list a set class by class, so a
    strided part covers every class)."""
    try:
        index, count = (int(part) for part in shard.split("/"))
    except ValueError:
        raise SystemExit(f"--shard must be I/N with whole numbers, not {shard!r}") from None
    if not 0 <= index < count:
        raise SystemExit(f"--shard {shard}: I must be between 0 and N-1")
    return rows[index::count]


def image_file_name(row: dict[str, str]) -> str:
    """Where ``extract.py`` (without --flat) writes the row, relative to its --out folder."""
    return f"{row['repo'].replace('/', '+')}/{row['path']}"


def pairwise_iou(boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N,N) IoU of x1, y1, x2, y2 boxes, zero on the diagonal, and (N,N) the share of box j's
    area inside box i."""
    low = np.maximum(boxes[:, None, :2], boxes[None, :, :2])
    high = np.minimum(boxes[:, None, 2:4], boxes[None, :, 2:4])
    inter = np.prod(np.clip(high - low, 0, None), axis=2)
    area = np.prod(boxes[:, 2:4] - boxes[:, :2], axis=1)
    iou = inter / np.maximum(area[:, None] + area[None, :] - inter, 1e-9)
    np.fill_diagonal(iou, 0.0)
    return iou, inter / np.maximum(area[None, :], 1e-9)


def overlaps(boxes: np.ndarray, rule: PhotoRule) -> np.ndarray:
    """(N,) each box's largest IoU with another box, boxes nested inside it left out."""
    if len(boxes) < 2:
        return np.zeros(len(boxes))
    iou, inside = pairwise_iou(boxes[:, :4])
    return np.where(inside >= rule.nested_fraction, 0.0, iou).max(axis=1)


def box_status(box: np.ndarray, overlap: float, rule: PhotoRule) -> str:
    """``candidate`` or the first box rule the detected person fails (before the teacher runs)."""
    if box[4] < rule.min_detection_score:
        return "unsure_detection"
    if box[3] - box[1] < rule.min_box_height:
        return "small"
    if overlap > rule.max_overlap_iou:
        return "overlapping"
    return "candidate"


def pose_status(box: np.ndarray, pose: np.ndarray, rule: PhotoRule) -> str:
    """``accepted`` or the first rule the teacher's pose of a candidate fails."""
    sure = pose[:, 2] >= rule.min_keypoint_score
    if sure.sum() < rule.min_confident_keypoints or pose[sure, 2].mean() < rule.min_mean_score:
        return "unsure_pose"
    middle = (box[:2] + box[2:4]) / 2
    half = (box[2:4] - box[:2]) / 2 * INSIDE_MARGIN
    inside = np.all(np.abs(pose[sure, :2] - middle) <= half, axis=1)
    if inside.mean() < rule.min_inside_fraction:
        return "outside_box"
    return "accepted"


def label_photos(
    rows: list[dict[str, str]],
    images_root: Path,
    teacher: Teacher,
    rule: PhotoRule,
    limit: int | None = None,
    progress: LabelProgress | None = None,
) -> dict:
    """COCO dict of the accepted people in the rows' images (images without any left out).

    One ``progress`` record per row (its counts, image and people): annotation ids and totals
    come from the records at the end, so a resumed run ends as an uninterrupted one."""
    from tqdm import tqdm

    progress = progress or LabelProgress()
    detector = create_detector("nanodet", backend="cpu", num_threads=teacher.num_threads)
    rows = rows[:limit] if limit else rows
    start = progress.begin(len(rows))
    pending = tqdm(rows[start:], unit="img", mininterval=30, initial=start, total=len(rows))
    for image_id, row in enumerate(pending, start=start + 1):
        progress.add(label_photo(row, image_id, images_root, detector, teacher, rule))
    counts: Counter[str] = Counter()
    images, annotations = [], []
    for record in progress.records:
        counts.update(record["counts"])
        if record["image"] is not None:
            images.append(record["image"])
        for person in record["people"]:
            annotations.append({"id": len(annotations) + 1, **person})
    info = header(
        teacher,
        rule,
        progress.started,
        detector=f"NanoDet-m (assets/detectors/{detector.model_path.name})",
        crop="the detector's box; the engine's MoveNet square crop around it",
        repo=rows[0]["repo"],
        images_scanned=len(rows),
        images=len(images),
        people=len(annotations),
        status_counts=dict(sorted(counts.items())),
        acceptance_rate=round(len(annotations) / max(counts["detected"], 1), 4),
    )
    return {
        "info": {"description": f"teacher labels for {rows[0]['repo']}", "pseudo_labels": info},
        "images": images,
        "annotations": annotations,
        "categories": [
            {
                "id": 1,
                "name": "person",
                "supercategory": "person",
                "keypoints": list(COCO.keypoint_names),
                "skeleton": [[a + 1, b + 1] for a, b in COCO.skeleton],
            }
        ],
    }


def label_photo(
    row: dict[str, str],
    image_id: int,
    images_root: Path,
    detector: PersonDetector,
    teacher: Teacher,
    rule: PhotoRule,
) -> dict:
    """One row's record: how many people met each verdict, its image entry (None without
    anyone kept) and its kept people as annotations without ids."""
    path = images_root / image_file_name(row)
    frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if frame is None:
        raise SystemExit(f"cannot read image {path} (extract it with extract.py)")
    boxes = detector.detect(frame)
    counts: Counter[str] = Counter(detected=len(boxes))
    overlap = overlaps(boxes, rule)
    candidates = []
    for i, box in enumerate(boxes):
        status = box_status(box, float(overlap[i]), rule)
        if status == "candidate":
            candidates.append(i)
        else:
            counts[status] += 1
    people = []
    poses = teacher(frame, boxes[candidates, :4]) if candidates else []
    for i, pose in zip(candidates, poses):
        status = pose_status(boxes[i], pose, rule)
        counts[status] += 1
        if status != "accepted":
            continue
        x1, y1, x2, y2, score = (float(v) for v in boxes[i])
        keypoints = pose.copy()
        keypoints[:, 2] = np.where(pose[:, 2] >= rule.min_keypoint_score, 2, 0)
        keypoints[keypoints[:, 2] == 0, :2] = 0
        people.append(
            {
                "image_id": image_id,
                "category_id": 1,
                "iscrowd": 0,
                "bbox": [round(v, 2) for v in (x1, y1, x2 - x1, y2 - y1)],
                "area": round((x2 - x1) * (y2 - y1), 2),
                "detection_score": round(score, 3),
                "keypoints": rounded_keypoints(keypoints),
                "num_keypoints": int((keypoints[:, 2] > 0).sum()),
                "teacher_keypoints": rounded_keypoints(pose, score_digits=3),
                "pseudo_keypoints": [int(v > 0) for v in keypoints[:, 2]],
                "pseudo_status": "accepted",
            }
        )
    image = None
    if people:
        image = {
            "id": image_id,
            "file_name": image_file_name(row),
            "width": frame.shape[1],
            "height": frame.shape[0],
            **{key: row[key] for key in ("repo", "commit", "sha256", "category")},
            "licence": row.get("licence", ""),
        }
    return {"counts": dict(counts), "image": image, "people": people}
