"""A crowd's crops over two cores, the two ways ``PoseEstimator(crowd_mode=...)`` offers, per
CPU runtime: ``split`` (cut in parts, one one-thread request or interpreter each, side by side)
and ``threads`` (one call on two intra-op threads), beside one call on one thread.

    python benchmarks/bench_crowd_modes.py                       # every CPU runtime installed
    python benchmarks/bench_crowd_modes.py --runtime openvino-bf16 --people 1 5 7 12

The people are NanoDet's boxes on a frame of mmpose_demo_street.mp4 (tests/data/frames, 12
people), the first N of them. Every way runs once per round, the ways taking turns, and medians
are reported: wall ms per frame (what the pipeline waits; on a busy machine it measures the
neighbours too) and CPU ms per frame of all the process's threads (the work; steadier under
load). ``auto`` picks between ``split`` and ``threads`` with a shorter form of this measurement
(:func:`hfpose.engine.runtime.auto.crowd_ways`, its figures in the probe cache).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import cv2

from hfpose.engine.detection.factory import create_detector
from hfpose.engine.keypoints.estimator import DEFAULT_MODEL, PoseEstimator
from hfpose.engine.runtime.model_files import asset_path

FRAME = Path(__file__).resolve().parents[1] / "tests/data/frames/street_mmpose_demo_f0.jpg"
# name: (backend, precision); OpenVINO "fast" is bf16 only where the CPU has it natively
RUNTIMES = {
    "onnxruntime": ("cpu", "fp32"),
    "openvino-f32": ("openvino", "fp32"),
    "openvino-bf16": ("openvino", "fast"),
    "litert": ("litert", "fp32"),
}
DEFAULT_MODEL_PATH = asset_path(DEFAULT_MODEL)


def bench_runtime(name: str, frame, boxes, people: list[int], rounds: int) -> None:
    backend, precision = RUNTIMES[name]
    ways = {
        "one thread": PoseEstimator(
            DEFAULT_MODEL_PATH, backend, num_threads=1, crop_workers=1, precision=precision
        ),
        **{
            mode: PoseEstimator(
                DEFAULT_MODEL_PATH,
                backend,
                num_threads=1,
                crop_workers=2,
                precision=precision,
                crowd_mode=mode,
            )
            for mode in ("split", "threads")
        },
    }
    info = ways["split"].runtime_info
    if info.fallback_reason or (precision == "fast" and info.precision != "bf16"):
        print(f"{name}: not run here ({info.fallback_reason or 'no native bf16'})")
        return
    print(f"{name}: {info.label}")
    for count in people:
        chosen = boxes[:count]
        wall = {way: [] for way in ways}
        cpu = {way: [] for way in ways}
        for estimator in ways.values():
            estimator.estimate(frame, chosen)  # first call: kernels chosen, memory allocated
        for _ in range(rounds):
            for way, estimator in ways.items():
                started, started_cpu = time.perf_counter(), time.process_time()
                estimator.estimate(frame, chosen)
                wall[way].append(1000.0 * (time.perf_counter() - started))
                cpu[way].append(1000.0 * (time.process_time() - started_cpu))
        cells = [
            f"{way}: {statistics.median(wall[way]):6.1f} wall / {statistics.median(cpu[way]):6.1f}"
            " CPU"
            for way in ways
        ]
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(f"  {count:2d} people, ms per frame: {'; '.join(cells)} (load {load:.1f})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runtime", nargs="+", choices=list(RUNTIMES), default=list(RUNTIMES))
    parser.add_argument("--people", nargs="+", type=int, default=[1, 2, 5, 7, 12])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    frame = cv2.imread(str(FRAME))
    boxes = create_detector("nanodet", "cpu", num_threads=1).detect(frame)
    boxes = boxes[(-boxes[:, 4]).argsort(kind="stable")]
    print(f"{FRAME.name}: {len(boxes)} people found; {os.cpu_count()} cores")
    for name in args.runtime:
        bench_runtime(name, frame, boxes, [n for n in args.people if n <= len(boxes)], args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
