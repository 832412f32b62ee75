"""Do the skeletons stay the same when people are detected only every Nth frame?

    python benchmarks/bench_det_interval.py                  # the clips below, N = 1 3 5 10
    python benchmarks/bench_det_interval.py --intervals 1,5,0.17s   # frames, and seconds
    python benchmarks/bench_det_interval.py --clip CLIP --intervals 1,5 --max-frames 90

Between detections the keypoint stage follows each person by their keypoints in the previous
frame. An interval is a number of frames (``5``) or, ending in ``s``, the longest time between
detections (``0.17s``: ``PipelineConfig.det_interval_s``), which becomes frames at each clip's
frame rate as in the engine (printed as ``N``). For every clip this runs the engine's own
detect and pose steps (:class:`hfpose.engine.processor.PoseProcessor`, no tracking or
smoothing: the raw keypoints) once per interval on the same frames, and compares each
interval's people with those of the first interval (``1``: detection on every frame), frame by
frame:

- ``found``: share of the reference people matched by a person of the variant with OKS >= 0.5
  (the same person, roughly the same pose);
- ``oks``: mean OKS of every reference person against their match (0 when unmatched), on the
  keypoints the reference is sure of (COCO formula, the reference box's area);
- ``same``: share of reference people matched with OKS >= 0.9 (the same skeleton to a few
  pixels);
- ``oks_found``: mean OKS of the people found (how alike the skeletons of the same person are,
  apart from who is in the frame);
- ``extra``: variant people per frame matched by no reference person (the detector on every
  frame misses people now and then whom following keeps: the reference flickers too);
- ``detected``: share of frames on which the detector ran (detector calls per frame);
- ``cpu_ms``: CPU time per frame of the interval's keypoint steps (crops, model, decoding),
  plus its detector calls at the mean CPU time of one detection on this clip (the cost side).
  The intervals run in turn on each frame in one process, so load drifts hit them alike.

``--lag 2`` (the default on two or more cores) follows people as the threaded ``Pipeline``
does, whose keypoint stage runs two frames at once: by their keypoints two frames back, or the
previous frame's detections. ``--lag 1`` is ``PoseTracker``'s one frame back.

The detector runs once per frame for all intervals (its boxes are cached by frame), so the
comparison costs one detection per frame plus each interval's keypoints. ``bench_pipeline.py``
measures the speed of the whole threaded pipeline.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from hfpose.engine.config import FALLBACK_FPS, PipelineConfig
from hfpose.engine.people.tracking import keypoint_oks
from hfpose.engine.processor import FrameWork, PoseProcessor
from hfpose.engine.results import Person
from hfpose.engine.sources.opening import open_source

REPO = Path(__file__).resolve().parents[1]
VIDEOS = REPO.parent / "shared" / "datasets" / "videos"
DEFAULT_CLIPS = (
    (VIDEOS / "intel_asl_book.mkv", 109),  # one person, 640x480, 30 fps
    (VIDEOS / "intel_one-by-one-person-detection.mp4", 300),  # people walk in one by one
    (VIDEOS / "mmaction2_basketball_structuralize.mp4", 150),  # 2 kids, moving camera
    (VIDEOS / "opencv_vtest.avi", 60),  # 5-8 pedestrians, 10 fps
    (VIDEOS / "mmpose_demo_street.mp4", 5),  # 12 pedestrians, 5 fps
    (REPO / "tests" / "data" / "videos" / "intel_asl_walk_1s5.mp4", 45),
)


class _CachedDetector:
    """The real detector, run once per frame and shared by every interval's processor."""

    def __init__(self, detector) -> None:
        self.detector = detector
        self.frame_index = -1
        self.cpu_seconds = 0.0  # of the real detections, one per frame
        self._cache: dict[int, np.ndarray] = {}

    def detect(self, image: np.ndarray) -> np.ndarray:
        if self.frame_index not in self._cache:
            started = time.process_time()
            self._cache[self.frame_index] = self.detector.detect(image)
            self.cpu_seconds += time.process_time() - started
        return self._cache[self.frame_index].copy()

    @property
    def runtime_info(self):
        return self.detector.runtime_info


def agreement(
    reference: list[list[Person]], variant: list[list[Person]], sigmas, kpt_thr: float
) -> dict[str, float]:
    """The measures of the module doc, over all frames."""
    people = found = same = extra = shown = 0
    oks_sum = matched_oks = 0.0
    for ref, var in zip(reference, variant):
        # A reference person with no keypoint it is sure of has no pose to compare.
        ref = [p for p in ref if (p.keypoint_scores > kpt_thr).any()]
        people += len(ref)
        shown += len(var)
        if not ref or not var:
            extra += len(var)
            continue
        ref_kpts = np.stack([p.keypoints for p in ref])
        ref_scores = np.stack([p.keypoint_scores for p in ref])
        areas = np.array([(p.bbox[2] - p.bbox[0]) * (p.bbox[3] - p.bbox[1]) for p in ref])
        var_kpts = np.stack([p.keypoints for p in var])
        # Every keypoint of the variant counts where the reference is sure of it.
        oks = keypoint_oks(var_kpts, np.ones(var_kpts.shape[:2]), ref_kpts, ref_scores, areas,
                           sigmas, kpt_thr)  # fmt: skip
        matched_var = set()
        for flat in np.argsort(-oks, axis=None):
            v, r = np.unravel_index(flat, oks.shape)
            if oks[v, r] <= 0.0:
                break
            if v in matched_var or np.isnan(oks[:, r]).all():
                continue
            matched_var.add(v)
            oks_sum += oks[v, r]
            found += oks[v, r] >= 0.5
            matched_oks += oks[v, r] if oks[v, r] >= 0.5 else 0.0
            same += oks[v, r] >= 0.9
            oks[:, r] = np.nan  # this reference person is taken
        extra += len(var) - len(matched_var)
    frames = max(1, len(reference))
    return {
        "found": found / max(1, people),
        "oks": oks_sum / max(1, people),
        "same": same / max(1, people),
        "oks_found": matched_oks / max(1, found),
        "extra_per_frame": extra / frames,
        "people_per_frame": people / frames,
        "variant_people_per_frame": shown / frames,
    }


def interval_seconds(interval: str, fps: float) -> float:
    """``det_interval_s`` for an interval given as frames (``5``) or seconds (``0.17s``)."""
    if interval.endswith("s"):
        return float(interval[:-1])
    return int(interval) / fps


def run_clip(clip: Path, max_frames: int, intervals: list[str], backend: str, lag: int) -> dict:
    frames = []
    with open_source(clip) as source:
        info = source.info
        while len(frames) < max_frames:
            frame = source.read()
            if frame is None:
                break
            frames.append(frame)
    fps = info.fps if info.fps_reported else None
    processors = {}
    for interval in intervals:
        seconds = interval_seconds(interval, fps or FALLBACK_FPS)
        config = PipelineConfig(source=str(clip), backend=backend, det_interval_s=seconds)
        processors[interval] = PoseProcessor(config, fps)
    cached = _CachedDetector(processors[intervals[0]].detector)
    for processor in processors.values():
        processor.detector = cached
    people: dict[str, list[list[Person]]] = {n: [] for n in intervals}
    detections = dict.fromkeys(intervals, 0)
    pose_cpu = dict.fromkeys(intervals, 0.0)
    for frame in frames:
        cached.frame_index = frame.index
        for n, processor in processors.items():
            work = FrameWork(frame, epoch=0, born=0.0)
            processor.detect_step(work)
            started = time.process_time()
            boxes = processor.pose_begin(work, processor.pose_lag(lag))
            processor.pose_done(work, boxes, processor.pose_people(work, boxes))
            pose_cpu[n] += time.process_time() - started
            detections[n] += work.boxes is not None
            people[n].append(work.people)
    reference = intervals[0]
    sigmas = processors[reference].dataset_info.sigmas
    kpt_thr = processors[reference].config.kpt_thr
    detect_ms = 1000.0 * cached.cpu_seconds / len(frames)  # one real detection per frame
    rows = {}
    for n in intervals:
        row = agreement(people[reference], people[n], sigmas, kpt_thr)
        row["detected"] = detections[n] / len(frames)
        row["cpu_ms"] = 1000.0 * pose_cpu[n] / len(frames) + row["detected"] * detect_ms
        rows[n] = {k: round(v, 3) for k, v in row.items()}
        rows[n]["frames_between"] = processors[n].det_frames
    return {"clip": clip.name, "frames": len(frames), "fps": fps, "reference": reference,
            "lag": lag, "detect_cpu_ms": round(detect_ms, 1), "intervals": rows}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clip", action="append", type=Path, help="video(s); default: see doc")
    parser.add_argument("--intervals", default="1,3,5,10", help="frames (5) or seconds (0.17s); "
                        "the first is the reference (1: detection on every frame)")  # fmt: skip
    parser.add_argument("--max-frames", type=int, help="frames per clip (default: see doc)")
    parser.add_argument("--backend", default="auto")
    parser.add_argument(
        "--lag",
        type=int,
        default=PipelineConfig(source="").pose_frames_in_flight,
        help="follow people by their keypoints this many frames back: the Pipeline's frames "
        "in flight in its keypoint stage (default: as on this machine); 1: PoseTracker's",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    intervals = args.intervals.split(",")
    clips = [(c, args.max_frames or 300) for c in args.clip] if args.clip else [
        (c, args.max_frames or n) for c, n in DEFAULT_CLIPS if c.exists()]  # fmt: skip
    results = []
    for clip, count in clips:
        result = run_clip(clip, count, intervals, args.backend, args.lag)
        results.append(result)
        print(f"{result['clip']}, {result['frames']} frames at {result['fps']} fps, following "
              f"{args.lag} frame(s) back, against interval {result['reference']}; one detection "
              f"{result['detect_cpu_ms']} CPU ms:")  # fmt: skip
        for n, row in result["intervals"].items():
            print(f"  {n:<6s} N={row['frames_between']:<3d} detected {row['detected']:.0%}  "
                  f"cpu {row['cpu_ms']:.1f} ms/frame  found {row['found']:.1%}  "
                  f"oks {row['oks']:.3f}  same {row['same']:.1%}  oks of found "
                  f"{row['oks_found']:.3f}  extra/frame {row['extra_per_frame']:.2f}  "
                  f"people/frame {row['variant_people_per_frame']:.2f} (reference "
                  f"{row['people_per_frame']:.2f})", flush=True)  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
