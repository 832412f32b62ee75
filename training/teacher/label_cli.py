"""``hfpose-teacher-label``: MoveNet Thunder labels for training the shipped model.

Two sources, one command, COCO-format output that records which labels are the teacher's:

``annotated ANN IMG_DIR OUT``
    LSPET / MPII (limb joints labelled by humans, no face): the five face keypoints from Thunder,
    where it can be trusted. Thunder (COCO-trained, PCK@0.1 81 on COCO faces against
    BlazePose-full's 57) replaces the BlazePose face labels of ``hfpose.training.teacher.blazepose_label``, whose
    agreement checks it reuses: Thunder's limbs must agree with the human limbs (shoulders,
    elbows, hips, knees within the torso-length tolerances; mid-ear near the labelled head top),
    and each face point is kept only where Thunder's score reaches ``min_face_score`` (0.3 keeps
    most face points and drops most wrong ones). Human labels always win: limb joints are never
    changed. Thunder sees each person upright: the image is rotated about the person so that
    the labelled hips-to-shoulders vector points up (LSPET's inverted gymnasts), and given the
    box of the labelled joints, head points and a head top estimated from the torso
    (x ``LABEL_BOX_MARGIN``); the engine cuts its square crop around it.
``photos MANIFEST IMAGES_ROOT OUT --repo OWNER/NAME``
    Unlabelled photos of ``../shared/datasets/person_photos`` (extracted with its
    ``extract.py`` under IMAGES_ROOT): people found by the shipped NanoDet, each labelled by
    Thunder on its box, kept when the box is big enough, not tangled with another person's,
    and Thunder is sure of the pose (``PhotoRule``). Every kept keypoint is a pseudo-label;
    those under ``min_keypoint_score`` are unlabelled (v=0). One output per repository, so a
    trainer can weight the sets.

Every output annotation carries ``teacher_keypoints`` (17 x: x, y, score in image pixels, all
joints, whatever was kept: for distillation weighted by the scores), ``pseudo_keypoints``
(17 ints, 1 = the label is the teacher's) and ``pseudo_status``; ``info.pseudo_labels`` records
the model and its sha256, the rule, the counts and the command. Thunder runs through the
engine's MoveNet keypoint family (``hfpose.engine.keypoints.estimator``), the same code the app runs.

A stopped run (Ctrl+C, SIGTERM) keeps the images it labelled beside the output and the same
command continues it (``hfpose.training.teacher.progress``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import shlex
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from functools import partial
from pathlib import Path

import cv2
import numpy as np

from hfpose.engine.runtime.auto import file_sha256
from hfpose.engine.runtime.model_files import ModelError
from hfpose.models.metainfo import COCO
from hfpose.models.processing import affine_points, get_affine_transform
from hfpose.training.dataset.coco_files import (
    extra_points_of,
    read_json,
    relabelled,
    write_json,
)
from hfpose.training.run.stop_signals import StopSignals
from hfpose.training.teacher.blazepose_label import (
    FACE,
    HIPS,
    SHOULDERS,
    AgreementThresholds,
    PersonResult,
    agreement,
    annotated_images,
    checkable_torso,
    labelled_annotation,
    people_by_image,
    rounded_keypoints,
    upright_rotation,
)
from hfpose.training.teacher.movenet import THUNDER_ASSET, Teacher, header
from hfpose.training.teacher.photos import PhotoRule, label_photos, read_manifest, shard_rows
from hfpose.training.teacher.progress import LabelProgress, progress_path

# Joints lie inside the body's outline (wrists inside hands, ankles above the soles): the box of
# the labelled points grows by this much to become a person box like a detector's.
LABEL_BOX_MARGIN = 1.15
# Side of the upright view around a person, in units of the labelled points' enclosing circle
# diameter: room for the engine's square crop (about 1.1x the box) with every rotation.
VIEW_CONTEXT = 1.6
MAX_VIEW_SIDE = 1024  # larger views are shrunk: Thunder sees 256x256 anyway
# The head top sits about this many torso lengths above the mid-shoulder (adult proportions:
# shoulder to crown ~0.18, shoulder to hip ~0.30 of the height). Added to the box's points, so a
# person whose head nobody labelled (COCO's face hidden) still gets a box that holds the head.
HEAD_ABOVE_SHOULDERS = 0.6


@dataclass(frozen=True)
class FaceRule(AgreementThresholds):
    """Face labels for human-labelled sets: ``hfpose.training.teacher.blazepose_label``'s agreement checks plus
    Thunder's own keypoint score as the confidence of each face point."""

    min_face_score: float = 0.3


def upright_view(
    image_bgr: np.ndarray, points: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The person turned upright: (view image, box x1 y1 x2 y2 in the view, view -> image 2x3).

    ``points`` (M,3) are the labelled joints and head points (v > 0 used), the COCO joints
    first: the rotation is their ``upright_rotation``, and their torso gives the head's place.
    """
    labelled = points[points[:, 2] > 0, :2]
    head = estimated_head_top(points[:17])
    if head is not None:
        labelled = np.vstack([labelled, head])
    center = (labelled.min(axis=0) + labelled.max(axis=0)) / 2
    radius = float(np.linalg.norm(labelled - center, axis=1).max())
    side = max(2.0 * radius * VIEW_CONTEXT, 16.0)
    size = int(min(math.ceil(side), MAX_VIEW_SIDE))
    rotation = upright_rotation(points[:17])
    to_view = get_affine_transform(center, (side / 200.0, side / 200.0), rotation, (size, size))
    view = cv2.warpAffine(image_bgr, to_view, (size, size), flags=cv2.INTER_LINEAR)
    in_view = affine_points(labelled, to_view)
    low, high = in_view.min(axis=0), in_view.max(axis=0)
    middle, half = (low + high) / 2, (high - low) / 2 * LABEL_BOX_MARGIN
    box = np.concatenate([middle - half, middle + half])
    return view, box, cv2.invertAffineTransform(to_view)


def estimated_head_top(keypoints: np.ndarray) -> np.ndarray | None:
    """Where the head top should be, from the labelled shoulders and hips (None without them)."""
    shoulders, hips = keypoints[list(SHOULDERS)], keypoints[list(HIPS)]
    if not (shoulders[:, 2] > 0).any() or not (hips[:, 2] > 0).any():
        return None
    top = shoulders[shoulders[:, 2] > 0, :2].mean(axis=0)
    bottom = hips[hips[:, 2] > 0, :2].mean(axis=0)
    return top + HEAD_ABOVE_SHOULDERS * (top - bottom)


def label_annotated_person(
    image_bgr: np.ndarray,
    keypoints: np.ndarray,
    extra_points: np.ndarray,
    teacher: Teacher,
    rule: FaceRule,
) -> tuple[PersonResult, np.ndarray | None]:
    """Thunder's face points for one human-labelled person, and its 17 points (None if not run)."""
    keypoints = np.asarray(keypoints, dtype=np.float64).reshape(17, 3)
    extra_points = np.asarray(extra_points, dtype=np.float64).reshape(-1, 3)
    out = keypoints.copy()
    mask = np.zeros(17, dtype=np.int64)
    torso = checkable_torso(keypoints, rule)
    if torso is None:
        return PersonResult("too_few_joints", out, mask, False), None
    view, box, from_view = upright_view(image_bgr, np.concatenate([keypoints, extra_points]))
    predicted = teacher(view, box[None])[0]
    predicted[:, :2] = affine_points(predicted[:, :2], from_view)
    status, swapped = agreement(keypoints, extra_points, predicted[:, :2], torso, rule)
    if status == "accepted":
        for joint in FACE:
            if predicted[joint, 2] >= rule.min_face_score and keypoints[joint, 2] == 0:
                out[joint] = (predicted[joint, 0], predicted[joint, 1], 2.0)
                mask[joint] = 1
    return PersonResult(status, out, mask, swapped), predicted


def label_annotated_set(
    coco: dict,
    image_dir: Path,
    teacher: Teacher,
    rule: FaceRule,
    limit: int | None = None,
    progress: LabelProgress | None = None,
) -> dict:
    """A copy of a limb-only COCO dict with Thunder's face labels, masks and header.

    One ``progress`` record per image, its labelled annotations (verdicts included): the
    counts are summed from them at the end, so a resumed run ends as an uninterrupted one."""
    progress = progress or LabelProgress()
    start = progress.begin(len(people_by_image(coco, limit)))
    for image, people in annotated_images(coco, image_dir, limit, start=start):
        record = []
        for annotation in people:
            result, predicted = label_annotated_person(
                image,
                np.asarray(annotation["keypoints"], dtype=np.float64),
                extra_points_of(annotation),
                teacher,
                rule,
            )
            labelled = labelled_annotation(annotation, result)
            if predicted is not None:
                labelled["teacher_keypoints"] = rounded_keypoints(predicted, score_digits=3)
            record.append(labelled)
        progress.add(record)
    out_annotations = [annotation for record in progress.records for annotation in record]
    counts = dict.fromkeys(("accepted", "too_few_joints", "shoulders", "limbs", "head"), 0)
    face_counts = dict.fromkeys(FACE, 0)
    for annotation in out_annotations:
        counts[annotation["pseudo_status"]] += 1
        for joint in FACE:
            face_counts[joint] += annotation["pseudo_keypoints"][joint]
    lr_swapped = sum(annotation["pseudo_lr_mirrored"] for annotation in out_annotations)
    people = len(out_annotations)
    info = header(
        teacher,
        rule,
        progress.started,
        crop=(
            "the image turned about the person so that the labelled hips-to-shoulders vector "
            f"points up; box = the labelled joints and head points x{LABEL_BOX_MARGIN}; the "
            "engine's MoveNet square crop around it"
        ),
        size_reference="torso length: mid-shoulder to mid-hip of the human labels",
        people=people,
        status_counts=counts,
        acceptance_rate=round(counts["accepted"] / max(people, 1), 4),
        face_keypoints_filled={COCO.keypoint_names[j]: n for j, n in face_counts.items()},
        lr_swapped_people=lr_swapped,
    )
    return relabelled(coco, info, out_annotations, limit)


def _rule_arguments(parser: argparse.ArgumentParser, rule_type: type) -> None:
    for field in fields(rule_type):
        flag = f"--{field.name.replace('_', '-')}"
        parser.add_argument(flag, type=type(field.default), default=field.default)


def _rule_from(args: argparse.Namespace, rule_type: type):
    return rule_type(**{field.name: getattr(args, field.name) for field in fields(rule_type)})


def build_parser() -> argparse.ArgumentParser:

    parser = argparse.ArgumentParser(
        prog="hfpose-teacher-label", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--model", type=Path, help=f"default: assets/{THUNDER_ASSET}")
    parser.add_argument("--threads", type=int, default=1, help="inference threads (default 1)")
    parser.add_argument("--limit", type=int, help="only the first N people/images (trials)")
    commands = parser.add_subparsers(dest="source", required=True)
    annotated = commands.add_parser("annotated", help="face labels for a limb-only COCO json")
    annotated.add_argument("annotations", type=Path, help="COCO keypoint json (.json or .gz)")
    annotated.add_argument("image_dir", type=Path, help="folder of the json's images")
    annotated.add_argument("output", type=Path, help="output json (.json or .json.gz)")
    _rule_arguments(annotated, FaceRule)
    photos = commands.add_parser("photos", help="people found by NanoDet in unlabelled photos")
    photos.add_argument("manifest", type=Path, help="person_photos/manifest.tsv")
    photos.add_argument("images_root", type=Path, help="extract.py's --out folder")
    photos.add_argument("output", type=Path, help="output json (.json or .json.gz)")
    photos.add_argument("--repo", required=True, help="OWNER/NAME: the manifest rows to label")
    photos.add_argument(
        "--shard",
        default="0/1",
        help="I/N: every N-th row from the I-th (a big set in parts, each spread over all of it)",
    )
    _rule_arguments(photos, PhotoRule)
    return parser


def _prepare(args: argparse.Namespace, command: str) -> tuple[Callable[[], dict], LabelProgress]:
    """The labelling to run on checked inputs, and its progress: an earlier stopped run of the
    same command is picked up, one of other inputs or options refused."""
    if args.source == "annotated":
        if not args.annotations.is_file():
            raise SystemExit(f"annotation file not found: {args.annotations}")
        if not args.image_dir.is_dir():
            raise SystemExit(f"image folder not found: {args.image_dir}")
        labeller = partial(label_annotated_set, read_json(args.annotations))
        inputs, images, rule_type = file_sha256(args.annotations), args.image_dir, FaceRule
    else:
        rows = shard_rows(read_manifest(args.manifest, args.repo), args.shard)
        if not args.images_root.is_dir():
            raise SystemExit(f"image folder not found: {args.images_root}")
        labeller = partial(label_photos, rows)
        inputs = hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()
        images, rule_type = args.images_root, PhotoRule
    teacher, rule = Teacher(args.model, args.threads), _rule_from(args, rule_type)
    fingerprint = {  # what the labels depend on; not --threads, only how fast they come
        "source": args.source,
        "input": inputs,
        "image_folder": str(images.resolve()),
        "model": file_sha256(teacher.model_path),
        "rule": asdict(rule),
        "limit": args.limit,
    }
    progress = LabelProgress(progress_path(args.output), fingerprint, command)
    return partial(labeller, images, teacher, rule, args.limit, progress), progress


def _stopped(
    stop: KeyboardInterrupt, progress: LabelProgress | None, output: Path, command: str
) -> str:
    """The stop's one line: what was kept (saved now) and the command that continues."""
    cause = f"stopped by {getattr(stop, 'cause', 'Ctrl+C')}"
    if progress is None or not progress.done:
        return f"{cause}; nothing labelled yet, nothing written to {output}"
    try:
        progress.save()
    except OSError as error:
        return f"{cause}; could not save the {progress.done:,} images labelled: {error}"
    return (
        f"{cause}; {progress.done:,} of {progress.total:,} images labelled, kept in "
        f"{progress.path}; continue with: {command}"
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    command = shlex.join(["hfpose-teacher-label", *argv])
    cv2.setNumThreads(args.threads)
    signals = StopSignals("hfpose-teacher-label")  # also SIGTERM, and under nohup
    progress = None
    with signals.installed_for():  # through the stop's save: a second Ctrl+C does not cut it
        try:
            label, progress = _prepare(args, command)
            labelled = label()
            write_json(labelled, args.output)
            progress.finish()
        except (ModelError, OSError, json.JSONDecodeError) as error:
            raise SystemExit(f"hfpose-teacher-label: {error}") from None
        except KeyboardInterrupt as stop:
            print(f"hfpose-teacher-label: {_stopped(stop, progress, args.output, command)}",
                  file=sys.stderr)  # fmt: skip
            signals.ignore_until_exit()  # the status is chosen: a late Ctrl+C cannot change it
            return getattr(stop, "exit_status", 130)
    info = labelled["info"]["pseudo_labels"]
    summary = ("people", "images", "status_counts", "acceptance_rate", "seconds")
    print(json.dumps({key: info[key] for key in summary if key in info}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
