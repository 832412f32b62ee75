"""Phantom people per frame, and real people lost, with and without the pose-score filter.

    python benchmarks/phantom_people.py                        # every labelled clip, the default
    python benchmarks/phantom_people.py --thresholds 0 0.05 0.1 0.15 --birth-factors 1 1.5 2
    python benchmarks/phantom_people.py --thresholds 0.1 --body-spans 0 0.4 0.45 0.55 0.65 0.7
    python benchmarks/phantom_people.py --model other.onnx     # a retrained keypoint model
    python benchmarks/phantom_people.py --clips opencv_vtest.avi --static-boxes /tmp/static.png

A *phantom* is a detector box on something that is not a person (traffic cones, a rock, a bike
rack) that the pipeline gives a skeleton. On these static-camera clips they are static: the same
box frame after frame. ``--static-boxes`` groups the boxes that recur (IoU > 0.5) and draws the
groups on the first frame with their best pose scores; looking at them (and at crops of their
best-scoring frames) gave ``benchmarks/data/phantom_labels.json``: per clip, phantom regions, and
regions left out of both counts (a sign people often stand behind). Every other box counts as a
real person: the low-scoring ones were checked by eye and were people partly out of view or seen
from behind. The detector (NanoDet) does not change with the keypoint model, so the labels stay
valid for any keypoint model.

The detector and the keypoint model run once per clip on every frame (cached in ``--cache``);
then, for each threshold, the engine's own filter and tracker run on those results
(:func:`hfpose.engine.people.plausibility.plausible_people`, :class:`hfpose.engine.people.tracking.Tracker` and its birth
rule) and the script reports:

- phantoms per frame: boxes shown that match a phantom region (IoU >= 0.5);
- real people lost: tracks of the unfiltered run (threshold 0) that last a second or more, are
  mostly real boxes, and of which no real box is shown any more;
- real person-frames dropped: real boxes not shown (someone entering, turning away, half hidden:
  their skeleton appears a few frames later or comes back);
- track IDs created per minute of video, and phantom IDs: track IDs shown on a phantom region
  on most of their frames (a person walking past a cone is not one), with how long each is shown
  there (first to last frame). Three trackers in the same run: the engine's (:data:`ENGINE`: a
  new ID after 3 frames in a row that show a person, ``PERSON_EVIDENCE``, 2 s memory), the one
  before it (:data:`CONFIRMED`: 3 frames in a row, no evidence asked) and the original
  (:data:`ORIGINAL`: IDs at once, 1 s memory). ``CONFIRMED`` reproduces the engine of the commit
  before the evidence rule: its own ``benchmarks/phantom_people.py``, run with that tree first
  on ``PYTHONPATH`` (a folder holding an ``hfpose`` link to an extracted ``git archive``), prints
  the same IDs per minute, phantoms per frame and real people lost. ``--body-spans`` gives the
  engine's tracker other ``clear_pose_span`` values (0: a clear pose need not fill its box, the
  engine before that test);
- the body spans that setting has to tell apart: each tentative track that only a clear pose
  could give an ID (detected under ``confident_detection``, moved under ``moved_heights``), with
  the best mean :func:`~hfpose.engine.people.plausibility.body_span` it reaches, on a phantom
  region or not.

Clips without labels (moving cameras, crowds) count every box as a person: phantoms there are
not counted, and a "real person lost" may be an object.

``DEFAULT_MIN_POSE_SCORE`` and ``TRACK_BIRTH_FACTOR`` in engine/people/plausibility.py were chosen from
this table (docs/reliability.md has the figures and the reasons).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import itertools
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hfpose.engine.config import SETTINGS, PipelineConfig
from hfpose.engine.detection.factory import create_detector
from hfpose.engine.keypoints.estimator import DEFAULT_MODEL, create_pose_estimator
from hfpose.engine.people.plausibility import (
    DEFAULT_MIN_POSE_SCORE,
    PERSON_EVIDENCE,
    TRACK_BIRTH_FACTOR,
    TRACK_CONFIRM_FRAMES,
    PersonEvidence,
    birth_score,
    plausible_people,
    pose_score,
)
from hfpose.engine.people.tracking import Tracker, box_iou
from hfpose.engine.results import Person
from hfpose.engine.runtime.model_files import asset_path
from hfpose.engine.sources.opening import open_source
from hfpose.models.metainfo import COCO

REPO = Path(__file__).resolve().parents[1]
VIDEOS = REPO.parent / "shared" / "datasets" / "videos"
LABELS = REPO / "benchmarks" / "data" / "phantom_labels.json"
SAME_BOX_IOU = 0.9  # the same detector box (tolerates float noise between CPUs)
STATIC_IOU = 0.5  # a box in a labelled region: the static object, not a person walking past
MIN_TRACK_S = 1.0  # a real person is lost when a track this long is never shown
VIDEO_SUFFIXES = {".avi", ".mkv", ".mp4", ".mov", ".webm"}
# The tracker's settings: the engine's, those before new tracks had to show a person, and
# those before they needed confirming (also the unfiltered run that says who is real).
ENGINE = {
    "confirm_frames": TRACK_CONFIRM_FRAMES,
    "max_lost_s": PipelineConfig().track_max_lost_s,
    "evidence": PERSON_EVIDENCE,
}
CONFIRMED = {"confirm_frames": TRACK_CONFIRM_FRAMES, "max_lost_s": 2.0, "evidence": None}
ORIGINAL = {"confirm_frames": 1, "max_lost_s": 1.0, "evidence": None}
TRACKERS = {"original": ORIGINAL, "confirmed": CONFIRMED, "engine": ENGINE}


@dataclass
class ClipResults:
    """The models' output on every frame of one clip."""

    timestamps: list[float]
    people: list[list[Person]]  # per frame, one per detector box, nothing filtered


def model_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def run_models(clip: Path, model: Path, cache_dir: Path, threads: int) -> ClipResults:
    """Detector + keypoint model on every frame (cached per clip and model file)."""
    cache = cache_dir / f"{clip.name}.{model_digest(model)}.npz"
    if not cache.is_file():
        detector = create_detector("nanodet", "cpu", num_threads=threads)
        estimator = create_pose_estimator(str(model), "cpu", num_threads=threads)
        source = open_source(str(clip))
        rows: dict[str, list] = {"frame": [], "time": [], "box": [], "kpt": [], "score": []}
        times = []
        try:
            while (frame := source.read()) is not None:
                times.append(frame.timestamp)
                boxes = detector.detect(frame.image)
                if not len(boxes):
                    continue
                keypoints, scores = estimator.estimate(frame.image, boxes[:, :4])
                rows["frame"] += [len(times) - 1] * len(boxes)
                rows["box"].append(boxes)
                rows["kpt"].append(keypoints)
                rows["score"].append(scores)
        finally:
            source.close()
        cache_dir.mkdir(parents=True, exist_ok=True)
        np.savez(
            cache,
            times=np.asarray(times),
            frame=np.asarray(rows["frame"], dtype=np.int64),
            box=np.concatenate(rows["box"]) if rows["box"] else np.zeros((0, 5)),
            kpt=np.concatenate(rows["kpt"]) if rows["kpt"] else np.zeros((0, 17, 2)),
            score=np.concatenate(rows["score"]) if rows["score"] else np.zeros((0, 17)),
        )
    data = np.load(cache)
    people: list[list[Person]] = [[] for _ in data["times"]]
    for frame, box, kpt, score in zip(data["frame"], data["box"], data["kpt"], data["score"]):
        people[frame].append(
            Person(
                keypoints=kpt.astype(np.float32),
                keypoint_scores=score.astype(np.float32),
                bbox=box[:4].astype(np.float32),
                bbox_score=float(box[4]),
            )
        )
    return ClipResults([float(t) for t in data["times"]], people)


def track(
    results: ClipResults,
    min_pose_score: float,
    birth_factor: float | None = None,
    tracker_settings: dict | None = None,
) -> list[list[Person]]:
    """The engine's filter and tracker over the clip: the people shown on each frame.

    ``birth_factor`` replaces the engine's ``TRACK_BIRTH_FACTOR`` (to compare others);
    ``tracker_settings`` the engine's confirmation and memory (:data:`ENGINE`).
    """
    birth = (
        birth_score(min_pose_score)
        if birth_factor is None
        else min(1.0, birth_factor * min_pose_score)
    )
    tracker = Tracker(
        COCO.sigmas,
        kpt_thr=SETTINGS["kpt_thr"].default,
        min_birth_score=birth,
        **(tracker_settings or ENGINE),
    )
    shown = []
    for timestamp, people in zip(results.timestamps, results.people):
        fresh = [Person(p.keypoints, p.keypoint_scores, p.bbox, p.bbox_score) for p in people]
        shown.append(tracker.update(plausible_people(fresh, min_pose_score), timestamp))
    return shown


def with_body_span(span: float) -> dict:
    """The engine's tracker settings, its clear pose asked to span ``span`` of its box."""
    return {**ENGINE, "evidence": dataclasses.replace(PERSON_EVIDENCE, clear_pose_span=span)}


class ClearPoseOnly(Tracker):
    """The engine's tracker without its clear-pose test, recording each tentative track that
    only that test could give an ID: its best mean body span and the box it had then."""

    def __init__(self, evidence: PersonEvidence, **settings) -> None:
        super().__init__(COCO.sigmas, evidence=evidence, **settings)
        # id(track) -> (span, box, track); holding the track keeps its id from being reused
        self.best: dict[int, tuple[float, np.ndarray, object]] = {}

    def _shows_a_person(self, track) -> bool:
        pose, span, detection, moved = track.evidence_means()
        if detection >= self.evidence.confident_detection or moved >= self.evidence.moved_heights:
            return True
        best = self.best.get(id(track))
        if pose >= self.evidence.clear_pose_score and (best is None or span > best[0]):
            self.best[id(track)] = (span, track.bbox.copy(), track)
        return False


def clear_pose_spans(results: ClipResults, labels: dict, threshold: float) -> dict[str, list]:
    """Best mean body spans of the tracks only a clear pose could give an ID, on phantom
    regions and off them (ignore regions left out), highest first."""
    settings = {k: v for k, v in ENGINE.items() if k != "evidence"}
    tracker = ClearPoseOnly(
        PERSON_EVIDENCE,
        kpt_thr=SETTINGS["kpt_thr"].default,
        min_birth_score=birth_score(threshold),
        **settings,
    )
    for timestamp, people in zip(results.timestamps, results.people):
        fresh = [Person(p.keypoints, p.keypoint_scores, p.bbox, p.bbox_score) for p in people]
        tracker.update(plausible_people(fresh, threshold), timestamp)
    spans: dict[str, list] = {"phantom": [], "person": []}
    for span, box, _ in tracker.best.values():
        if on_region(box, labels.get("phantom_regions", [])):
            spans["phantom"].append(round(span, 2))
        elif not on_region(box, labels.get("ignore_regions", [])):
            spans["person"].append(round(span, 2))
    return {kind: sorted(values, reverse=True) for kind, values in spans.items()}


def on_region(box: np.ndarray, regions: list[list[float]]) -> bool:
    return bool(regions) and box_iou(box[None], np.asarray(regions)).max() >= STATIC_IOU


def in_regions(people: list[Person], regions: list[list[float]]) -> list[bool]:
    if not people or not regions:
        return [False] * len(people)
    iou = box_iou(np.stack([p.bbox for p in people]), np.asarray(regions, dtype=np.float64))
    return list(iou.max(axis=1) >= STATIC_IOU)


def same_box(a: Person, b: Person) -> bool:
    return float(box_iou(a.bbox[None], b.bbox[None])[0, 0]) >= SAME_BOX_IOU


def id_figures(
    results: ClipResults, shown: list[list[Person]], phantoms: list[list[float]]
) -> dict:
    """Track IDs created per minute, and how long IDs are shown on phantom regions (IDs shown
    there on most of their frames)."""
    seconds = max(results.timestamps[-1] - results.timestamps[0], 1e-9) if results.timestamps else 1
    on_phantom: dict[int, list[float]] = {}
    frames: dict[int, int] = {}
    for timestamp, people in zip(results.timestamps, shown):
        for person, is_phantom in zip(people, in_regions(people, phantoms)):
            frames[person.track_id] = frames.get(person.track_id, 0) + 1
            if is_phantom:
                on_phantom.setdefault(person.track_id, []).append(timestamp)
    spans = sorted(
        (
            times[-1] - times[0]
            for track_id, times in on_phantom.items()
            if 2 * len(times) > frames[track_id]
        ),
        reverse=True,
    )
    return {
        "seconds": seconds,
        "ids_per_minute": len({p.track_id for people in shown for p in people}) * 60 / seconds,
        "phantom_id_longest_s": max(spans, default=0.0),
        "phantom_ids_1s_or_more": sum(span >= 1.0 for span in spans),
        "phantom_id_seconds": [round(span, 1) for span in spans if span >= 1.0],
    }


def evaluate(
    results: ClipResults,
    labels: dict,
    threshold: float,
    birth_factor: float | None = None,
    tracker_settings: dict | None = None,
) -> dict:
    """Phantoms per frame and real people lost at ``threshold`` against the raw tracks."""
    phantoms, ignored = labels.get("phantom_regions", []), labels.get("ignore_regions", [])
    raw = track(results, 0.0, tracker_settings=ORIGINAL)
    shown = track(results, threshold, birth_factor, tracker_settings)
    phantom_raw = phantom_shown = real_frames = real_dropped = 0
    real_tracks: dict[int, list[float]] = {}  # raw track -> times it was seen on a real box
    real_seen: dict[int, bool] = {}  # raw track -> a real box of it shown at least once
    phantom_boxes: dict[int, int] = {}  # raw track -> its boxes in phantom regions
    for timestamp, raw_people, shown_people in zip(results.timestamps, raw, shown):
        phantom_shown += sum(in_regions(shown_people, phantoms))
        flags = zip(raw_people, in_regions(raw_people, phantoms), in_regions(raw_people, ignored))
        for person, is_phantom, is_ignored in flags:
            phantom_raw += is_phantom
            if is_phantom:
                phantom_boxes[person.track_id] = phantom_boxes.get(person.track_id, 0) + 1
            if is_phantom or is_ignored:
                continue
            visible = any(same_box(person, s) for s in shown_people)
            real_frames += 1
            real_dropped += not visible
            real_tracks.setdefault(person.track_id, []).append(timestamp)
            real_seen[person.track_id] = real_seen.get(person.track_id, False) or visible
    people = [
        tid
        for tid, times in real_tracks.items()
        if times[-1] - times[0] >= MIN_TRACK_S and len(times) > phantom_boxes.get(tid, 0)
    ]
    frames = max(len(results.people), 1)
    return {
        "frames": len(results.people),
        "phantoms_per_frame_raw": phantom_raw / frames,
        "phantoms_per_frame": phantom_shown / frames,
        "real_people": len(people),
        "real_people_lost": sorted(tid for tid in people if not real_seen[tid]),
        "real_person_frames": real_frames,
        "real_person_frames_dropped": real_dropped,
        "tracks_started": len({p.track_id for people in shown for p in people}),
        **id_figures(results, shown, phantoms),
    }


def static_boxes(results: ClipResults, clip: Path, out: Path, min_frames: int = 40) -> None:
    """Print and draw the boxes that recur on ``min_frames`` frames or more (for labelling)."""
    import cv2

    representatives: list[np.ndarray] = []
    members: list[list[float]] = []
    for people in results.people:
        for person in people:
            if representatives:
                iou = box_iou(person.bbox[None], np.stack(representatives))[0]
                if iou.max() > STATIC_IOU:
                    members[int(iou.argmax())].append(pose_score(person))
                    continue
            representatives.append(person.bbox.astype(np.float64))
            members.append([pose_score(person)])
    source = open_source(str(clip))
    image = source.read().image
    source.close()
    for box, scores in zip(representatives, members):
        if len(scores) < min_frames:
            continue
        x1, y1, x2, y2 = (int(v) for v in box)
        print(f"  [{x1}, {y1}, {x2}, {y2}]  {len(scores)} frames, pose score mean "
              f"{np.mean(scores):.3f} max {np.max(scores):.3f}")  # fmt: skip
        cv2.rectangle(image, (x1, y1), (x2, y2), (0, 0, 255), 1)
        cv2.putText(image, f"{np.max(scores):.2f}", (x1, y1 - 2), 0, 0.4, (0, 0, 255), 1)
    cv2.imwrite(str(out), image)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=Path, default=VIDEOS)
    parser.add_argument("--clips", nargs="*", help="clip file names (default: every video)")
    parser.add_argument("--model", type=Path, help="keypoint model (default: the shipped one)")
    parser.add_argument(
        "--thresholds", type=float, nargs="*", default=[0.0, DEFAULT_MIN_POSE_SCORE]
    )
    parser.add_argument(
        "--birth-factors",
        type=float,
        nargs="*",
        default=[None],
        help=f"new-track score / threshold to compare (default the engine's {TRACK_BIRTH_FACTOR})",
    )
    parser.add_argument(
        "--body-spans",
        type=float,
        nargs="*",
        default=[None],
        help=f"the engine's clear_pose_span to compare (default {PERSON_EVIDENCE.clear_pose_span}; "
        "0: off)",
    )
    parser.add_argument("--cache", type=Path, default=Path("/tmp/hfpose_phantom_cache"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--static-boxes", type=Path, metavar="PNG", help="draw recurring boxes")
    parser.add_argument("--json", type=Path, help="write the table as JSON too")
    args = parser.parse_args(argv)

    labels = json.loads(LABELS.read_text())["clips"]
    model = args.model or asset_path(DEFAULT_MODEL)
    clips = args.clips or sorted(
        p.name for p in args.videos.iterdir() if p.suffix in VIDEO_SUFFIXES
    )
    print(f"keypoint model {model.name} ({model_digest(model)}); thresholds {args.thresholds}")
    table = []
    for name in clips:
        clip = args.videos / name
        results = run_models(clip, model, args.cache, args.threads)
        if args.static_boxes:
            print(f"{name}: boxes on 40 frames or more")
            static_boxes(results, clip, args.static_boxes.with_stem(f"{clip.stem}_static"))
        clip_labels = labels.get(name, {})
        for threshold in args.thresholds:
            spans = clear_pose_spans(results, clip_labels, threshold)
            print(
                f"{name[:24]:24s} thr {threshold:4.2f}: tracks only a clear pose could give an "
                f"ID, best body span: on phantoms {spans['phantom']}, people {spans['person']}"
            )
        settings = itertools.product(
            args.thresholds, args.birth_factors, args.body_spans, TRACKERS.items()
        )
        for threshold, factor, span, (tracker_name, tracker_settings) in settings:
            factor = TRACK_BIRTH_FACTOR if factor is None else factor
            span = PERSON_EVIDENCE.clear_pose_span if span is None else span
            if tracker_name == "engine":
                tracker_settings = with_body_span(span)
            row = {
                "clip": name,
                "threshold": threshold,
                "birth_factor": factor,
                "body_span": span,  # the engine's, in this comparison
                "tracker": tracker_name,
                **evaluate(results, clip_labels, threshold, factor, tracker_settings),
            }
            table.append(row)
            print(
                f"{name[:24]:24s} {tracker_name:9s} thr {threshold:4.2f} x{factor:3.1f}  "
                f"phantoms/frame {row['phantoms_per_frame_raw']:4.2f} -> "
                f"{row['phantoms_per_frame']:4.2f}  real people lost "
                f"{len(row['real_people_lost'])}/{row['real_people']} {row['real_people_lost']}  "
                f"real person-frames dropped {row['real_person_frames_dropped']}/"
                f"{row['real_person_frames']}  IDs {row['tracks_started']} "
                f"({row['ids_per_minute']:.0f}/min)  phantom IDs >= 1 s "
                f"{row['phantom_ids_1s_or_more']} {row['phantom_id_seconds']} s  body span {span}"
            )
    print_summary(table, labels)
    if args.json:
        args.json.write_text(json.dumps(table, indent=1) + "\n")
    return 0


def print_summary(table: list[dict], labels: dict) -> None:
    """One line per clip and setting: the three trackers side by side."""
    print(
        "\nclip (seconds, labelled?) | thr | engine's body span | IDs/min original -> confirmed "
        "-> engine | phantom IDs >= 1 s (longest s) | real people lost"
    )
    rows: dict[tuple, dict[str, dict]] = {}
    for row in table:
        key = (row["clip"], row["threshold"], row["birth_factor"], row["body_span"])
        rows.setdefault(key, {})[row["tracker"]] = row
    for (clip, threshold, _, span), by_tracker in rows.items():
        runs = [by_tracker[name] for name in TRACKERS]
        seconds = runs[0]["seconds"]
        labelled = "labelled" if clip in labels else "unlabelled"
        ids = " -> ".join(f"{r['ids_per_minute']:.0f}" for r in runs)
        phantoms = " -> ".join(
            f"{r['phantom_ids_1s_or_more']} ({r['phantom_id_longest_s']:.1f})" for r in runs
        )
        lost = " -> ".join(f"{len(r['real_people_lost'])}/{r['real_people']}" for r in runs)
        print(
            f"{clip} ({seconds:.1f} s, {labelled}) | {threshold:.2f} | {span:.2f} | {ids} | "
            f"{phantoms} | {lost}"
        )


if __name__ == "__main__":
    sys.exit(main())
