"""Phantom people per frame, and real people lost, with and without the pose-score filter.

    python benchmarks/phantom_people.py                        # every labelled clip, the default
    python benchmarks/phantom_people.py --thresholds 0 0.05 0.08 0.1 0.12 0.15
    python benchmarks/phantom_people.py --model other.onnx     # a retrained keypoint model
    python benchmarks/phantom_people.py --clips opencv_vtest.avi --contact-sheet /tmp/sheets

A *phantom* is a detector box on something that is not a person (traffic cones, a rock, a sign
post, a railing) that the pipeline gives a skeleton. The detector (NanoDet) does not change when
the keypoint model does, so the ground truth is stored as detector boxes:
``benchmarks/data/phantom_labels.json`` lists, per clip and frame, the boxes that were judged
phantoms by eye (every other box of a labelled clip is a real person). They were made by running
this script with ``--contact-sheet``, which draws one crop per raw track (threshold 0) with its
ID, looking at the sheets, and saving the phantom tracks' boxes with ``--mark-phantoms``.

For each clip the script runs the detector and the keypoint model once on every frame (cached in
``--cache``), then, for each threshold, the engine's own filter and tracker on those results
(:func:`engine.plausibility.plausible_people`, :class:`engine.tracking.Tracker` with its
birth rule), and reports:

- phantoms per frame: boxes shown that match a labelled phantom (IoU >= 0.9, the same detector);
- real people lost: raw tracks (threshold 0) made of real boxes none of which is shown any more,
  and the share of real person-frames dropped (people turning away or entering the frame, whose
  skeleton appears a few frames later).

The default ``DEFAULT_MIN_POSE_SCORE`` in engine/plausibility.py was chosen from this table: the
highest threshold that loses no real person on the clips with clear people, with margin below it
(see docs/reliability.md for the figures and the command).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.detectors import create_detector  # noqa: E402
from engine.plausibility import (  # noqa: E402
    DEFAULT_MIN_POSE_SCORE,
    birth_score,
    plausible_people,
    pose_score,
)
from engine.pose import DEFAULT_MODEL, create_pose_estimator  # noqa: E402
from engine.results import Person  # noqa: E402
from engine.runtimes import asset_path  # noqa: E402
from engine.sources import open_source  # noqa: E402
from engine.tracking import Tracker, box_iou  # noqa: E402
from models.metainfo import COCO  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
VIDEOS = REPO.parent / "shared" / "datasets" / "videos"
LABELS = REPO / "benchmarks" / "data" / "phantom_labels.json"
SAME_BOX_IOU = 0.9  # the same detector box (tolerates float noise between CPUs)


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


def track(results: ClipResults, min_pose_score: float) -> list[list[Person]]:
    """The engine's filter and tracker over the clip: the people shown on each frame."""
    tracker = Tracker(COCO.sigmas, min_birth_score=birth_score(min_pose_score))
    shown = []
    for timestamp, people in zip(results.timestamps, results.people):
        fresh = [Person(p.keypoints, p.keypoint_scores, p.bbox, p.bbox_score) for p in people]
        shown.append(tracker.update(plausible_people(fresh, min_pose_score), timestamp))
    return shown


def phantom_flags(people: list[Person], phantom_boxes: list[list[float]]) -> list[bool]:
    if not people or not phantom_boxes:
        return [False] * len(people)
    iou = box_iou(np.stack([p.bbox for p in people]), np.asarray(phantom_boxes))
    return list(iou.max(axis=1) >= SAME_BOX_IOU)


def same_box(a: Person, b: Person) -> bool:
    return float(box_iou(a.bbox[None], b.bbox[None])[0, 0]) >= SAME_BOX_IOU


def evaluate(results: ClipResults, phantoms: dict[str, list], threshold: float) -> dict:
    """Phantoms per frame and real people lost at ``threshold`` against the raw tracks."""
    raw = track(results, 0.0)
    shown = track(results, threshold)
    frames = len(results.people)
    phantom_shown = real_frames = real_dropped = 0
    real_tracks: dict[int, bool] = {}  # raw real track -> shown at least once
    for index, (raw_people, shown_people) in enumerate(zip(raw, shown)):
        boxes = phantoms.get(str(index), [])
        phantom_shown += sum(phantom_flags(shown_people, boxes))
        for person, is_phantom in zip(raw_people, phantom_flags(raw_people, boxes)):
            if is_phantom:
                continue
            visible = any(same_box(person, s) for s in shown_people)
            real_frames += 1
            real_dropped += not visible
            real_tracks[person.track_id] = real_tracks.get(person.track_id, False) or visible
    lost = sorted(tid for tid, seen in real_tracks.items() if not seen)
    return {
        "frames": frames,
        "phantoms_per_frame": phantom_shown / max(frames, 1),
        "real_tracks": len(real_tracks),
        "real_tracks_lost": lost,
        "real_person_frames": real_frames,
        "real_person_frames_dropped": real_dropped,
        "tracks_started": len({p.track_id for people in shown for p in people}),
    }


def contact_sheet(results: ClipResults, clip: Path, out: Path) -> None:
    """One crop per raw track (its best pose), labelled 'ID score', to judge by eye."""
    import cv2

    raw = track(results, 0.0)
    best: dict[int, tuple[float, int, Person]] = {}
    for index, people in enumerate(raw):
        for person in people:
            score = pose_score(person)
            if person.track_id not in best or score > best[person.track_id][0]:
                best[person.track_id] = (score, index, person)
    wanted = {index for _, index, _ in best.values()}
    frames = {}
    source = open_source(str(clip))
    for index in range(len(results.people)):
        frame = source.read()
        if frame is None:
            break
        if index in wanted:
            frames[index] = frame.image
    source.close()
    tiles = []
    for track_id, (score, index, person) in sorted(best.items()):
        image = frames[index]
        x1, y1, x2, y2 = person.bbox
        pad_x, pad_y = 0.5 * (x2 - x1), 0.25 * (y2 - y1)
        crop = image[
            max(0, int(y1 - pad_y)) : int(y2 + pad_y), max(0, int(x1 - pad_x)) : int(x2 + pad_x)
        ]
        tile = cv2.resize(crop, (96, 160))
        cv2.putText(tile, f"{track_id} {score:.2f}", (2, 12), 0, 0.4, (0, 255, 255), 1)
        tiles.append(tile)
    out.mkdir(parents=True, exist_ok=True)
    for start in range(0, len(tiles), 60):
        page = tiles[start : start + 60]
        page += [np.zeros_like(tiles[0])] * (-len(page) % 10)
        rows = [np.hstack(page[i : i + 10]) for i in range(0, len(page), 10)]
        cv2.imwrite(str(out / f"{clip.stem}_{start // 60}.png"), np.vstack(rows))


def mark_phantoms(results: ClipResults, clip: Path, track_ids: set[int]) -> None:
    """Save the boxes of these raw tracks as the clip's phantoms in the labels file."""
    labels = json.loads(LABELS.read_text()) if LABELS.is_file() else {"clips": {}}
    phantoms: dict[str, list] = {}
    for index, people in enumerate(track(results, 0.0)):
        boxes = [[round(float(v), 1) for v in p.bbox] for p in people if p.track_id in track_ids]
        if boxes:
            phantoms[str(index)] = boxes
    labels["clips"][clip.name] = {"phantom_tracks": sorted(track_ids), "phantoms": phantoms}
    LABELS.parent.mkdir(parents=True, exist_ok=True)
    LABELS.write_text(json.dumps(labels, indent=None, separators=(",", ":")) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=Path, default=VIDEOS)
    parser.add_argument("--clips", nargs="*", help="clip file names (default: the labelled ones)")
    parser.add_argument("--model", type=Path, help="keypoint model (default: the shipped one)")
    parser.add_argument(
        "--thresholds", type=float, nargs="*", default=[0.0, DEFAULT_MIN_POSE_SCORE]
    )
    parser.add_argument("--cache", type=Path, default=Path("/tmp/hfpose_phantom_cache"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--contact-sheet", type=Path, metavar="DIR")
    parser.add_argument("--mark-phantoms", type=int, nargs="*", metavar="TRACK_ID")
    parser.add_argument("--json", type=Path, help="write the table as JSON too")
    args = parser.parse_args(argv)

    labels = json.loads(LABELS.read_text())["clips"] if LABELS.is_file() else {}
    model = args.model or asset_path(DEFAULT_MODEL)
    clips = args.clips or sorted(labels)
    print(f"keypoint model {model.name} ({model_digest(model)}); thresholds {args.thresholds}")
    table = []
    for name in clips:
        clip = args.videos / name
        results = run_models(clip, model, args.cache, args.threads)
        if args.contact_sheet:
            contact_sheet(results, clip, args.contact_sheet)
        if args.mark_phantoms is not None:
            mark_phantoms(results, clip, set(args.mark_phantoms))
            labels = json.loads(LABELS.read_text())["clips"]
        phantoms = labels.get(name, {}).get("phantoms", {})
        for threshold in args.thresholds:
            row = {"clip": name, "threshold": threshold, **evaluate(results, phantoms, threshold)}
            table.append(row)
            print(
                f"{name:40s} thr {threshold:4.2f}  phantoms/frame "
                f"{row['phantoms_per_frame']:5.2f}  real tracks lost "
                f"{len(row['real_tracks_lost'])}/{row['real_tracks']} {row['real_tracks_lost']}  "
                f"real person-frames dropped {row['real_person_frames_dropped']}/"
                f"{row['real_person_frames']}  tracks started {row['tracks_started']}"
            )
    if args.json:
        args.json.write_text(json.dumps(table, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
