"""How right are the face pseudo-labels? Hide coco_found's human face labels, label, compare.

coco_found (``../shared/datasets/coco_found``) is the only set here with human face labels: its
people are given to the labellers limbs only, exactly like LSPET and MPII, and the face points
they fill in are compared with COCO's. Reported per labeller (``blazepose``: ``hfpose-pseudo-label``,
``thunder``: ``hfpose-teacher-label annotated``): people accepted, face points filled, and of
those the share within 0.05 / 0.1 / 0.2 torso lengths of the human label (only where COCO
labelled the point), with the left/right-swapped share. ``--gates`` also lists, for Thunder, what
other score gates would keep and how right those points are, from the scores the labels carry.

    python -m hfpose.training.teacher.face_check [--limit N] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from hfpose.models.package_data import shared_datasets
from hfpose.training.dataset.coco_files import read_json
from hfpose.training.teacher.blazepose_label import (
    FACE,
    Thresholds,
    pseudo_label_dataset,
    torso_length,
)
from hfpose.training.teacher.label_cli import FaceRule, Teacher, label_annotated_set

COCO_FOUND = shared_datasets() / "coco_found"
TOLERANCES = (0.05, 0.1, 0.2)
# COCO face point -> its mirror (nose stays)
FACE_MIRROR = {0: 0, 1: 2, 2: 1, 3: 4, 4: 3}


def limbs_only(coco: dict) -> dict:
    """The same people with every face point unlabelled (as LSPET/MPII give them)."""
    annotations = []
    for annotation in coco["annotations"]:
        keypoints = list(annotation["keypoints"])
        keypoints[: 3 * len(FACE)] = [0] * (3 * len(FACE))
        annotations.append({**annotation, "keypoints": keypoints})
    return {**coco, "annotations": annotations}


def face_errors(truth: dict, labelled: dict) -> dict:
    """Distances (torso lengths) of filled face points from the human ones, and swaps."""
    truth_by_id = {a["id"]: np.asarray(a["keypoints"], float).reshape(17, 3) for a in truth}
    errors, swapped, filled, accepted = [], 0, 0, 0
    for annotation in labelled:
        accepted += annotation["pseudo_status"] == "accepted"
        human = truth_by_id[annotation["id"]]
        torso = torso_length(human)
        mask = np.asarray(annotation["pseudo_keypoints"], bool)
        points = np.asarray(annotation["keypoints"], float).reshape(17, 3)
        for joint in FACE:
            if not mask[joint]:
                continue
            filled += 1
            if human[joint, 2] == 0 or not torso:
                continue
            error = np.linalg.norm(points[joint, :2] - human[joint, :2]) / torso
            mirror = FACE_MIRROR[joint]
            if mirror != joint and human[mirror, 2] > 0:
                to_mirror = np.linalg.norm(points[joint, :2] - human[mirror, :2]) / torso
                swapped += bool(to_mirror < error and error > 0.1)
            errors.append(error)
    errors_arr = np.asarray(errors)
    return {
        "people": len(labelled),
        "accepted": accepted,
        "face_points_filled": filled,
        "checked_against_coco": len(errors),
        **{f"within_{t}": round(float((errors_arr <= t).mean()) * 100, 1) for t in TOLERANCES},
        "left_right_swapped_pct": round(100 * swapped / max(len(errors), 1), 1),
        "median_error": round(float(np.median(errors_arr)), 3) if len(errors) else None,
    }


def thunder_gates(truth: dict, labelled: dict, gates: list[float]) -> list[dict]:
    """For accepted people: at each score gate, face points kept and the share within 0.1."""
    truth_by_id = {a["id"]: np.asarray(a["keypoints"], float).reshape(17, 3) for a in truth}
    rows = []
    for gate in gates:
        kept = good = 0
        for annotation in labelled:
            if annotation["pseudo_status"] != "accepted":
                continue
            human = truth_by_id[annotation["id"]]
            torso = torso_length(human)
            teacher = np.asarray(annotation["teacher_keypoints"], float).reshape(17, 3)
            for joint in FACE:
                if human[joint, 2] == 0 or not torso or teacher[joint, 2] < gate:
                    continue
                kept += 1
                good += np.linalg.norm(teacher[joint, :2] - human[joint, :2]) / torso <= 0.1
        rows.append({"gate": gate, "kept": kept, "within_0.1": round(100 * good / max(kept, 1), 1)})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=int, help="only the first N people")
    parser.add_argument("--labellers", nargs="+", default=["blazepose", "thunder"])
    parser.add_argument("--gates", type=float, nargs="*", default=[0.1, 0.2, 0.3, 0.4, 0.5])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    ann_file = COCO_FOUND / "person_keypoints_coco_found.json"
    if not ann_file.is_file():
        raise SystemExit(f"coco_found is not here: {ann_file}")
    coco = read_json(ann_file)
    if args.limit:
        coco = {**coco, "annotations": coco["annotations"][: args.limit]}
    hidden = limbs_only(coco)
    report: dict = {}
    for labeller in args.labellers:
        if labeller == "blazepose":
            labelled = pseudo_label_dataset(hidden, COCO_FOUND / "images", Thresholds())
        else:
            labelled = label_annotated_set(hidden, COCO_FOUND / "images", Teacher(), FaceRule())
            report["thunder_gates"] = thunder_gates(
                coco["annotations"], labelled["annotations"], args.gates
            )
        report[labeller] = face_errors(coco["annotations"], labelled["annotations"])
        print(labeller, json.dumps(report[labeller]))
    if "thunder_gates" in report:
        print("thunder gates", json.dumps(report["thunder_gates"]))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
