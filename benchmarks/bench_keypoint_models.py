"""Per-crop time of every shipped keypoint model, side by side, through the engine.

    python benchmarks/bench_keypoint_models.py                    # ORT CPU and OpenVINO, 1 thread
    python benchmarks/bench_keypoint_models.py --threads 2 --repeats 50 --json out.json

What a user pays per person: ``PoseEstimator.estimate`` on one real person (COCO val image 785
with its labelled box, tests/data/coco): the crop its family cuts, the run and the decoding.
The models take turns within each repetition (round robin), so load from other programs on a
shared machine hits them alike; medians of wall time and of this process's CPU time are
reported (CPU time hardly moves with other programs' load). One thread by default: on two
cores the pipeline gives the keypoint model one (``PipelineConfig.threads_per_model``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import cv2

from hfpose.engine.keypoints.estimator import PoseEstimator
from hfpose.engine.keypoints.families import SHIPPED_MODELS
from hfpose.engine.runtime.discovery import cpu_name, openvino_devices

DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "coco"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(SHIPPED_MODELS))
    parser.add_argument("--backends", nargs="+", help="default: cpu, and openvino if installed")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    backends = args.backends or (["cpu", "openvino"] if openvino_devices() else ["cpu"])

    annotation = json.loads((DATA / "person_785.json").read_text())["annotations"][0]
    x, y, w, h = annotation["bbox"]
    box = [[x, y, x + w, y + h]]
    frame = cv2.imread(str(DATA / "000000000785.jpg"))
    runs = {}
    for model in args.models:
        for backend in backends:
            estimator = PoseEstimator(model, backend, num_threads=args.threads)
            for _ in range(3):  # first calls allocate
                estimator.estimate(frame, box)
            runs[(model, backend)] = (estimator, [], [])
    for _ in range(args.repeats):
        for estimator, walls, cpus in runs.values():
            wall, cpu = time.perf_counter(), time.process_time()
            estimator.estimate(frame, box)
            walls.append((time.perf_counter() - wall) * 1e3)
            cpus.append((time.process_time() - cpu) * 1e3)

    rows = []
    print("| model | backend (what runs) | wall ms / crop | CPU ms / crop |\n|---|---|---|---|")
    for (model, backend), (estimator, walls, cpus) in runs.items():
        row = {
            "model": model,
            "backend": backend,
            "runs": estimator.runtime_info.label,
            "wall_ms": round(statistics.median(walls), 2),
            "cpu_ms": round(statistics.median(cpus), 2),
        }
        rows.append(row)
        print(f"| {model} | {row['runs']} | {row['wall_ms']:.1f} | {row['cpu_ms']:.1f} |")
    command = "python benchmarks/bench_keypoint_models.py " + " ".join(argv or sys.argv[1:])
    print(f"\n`{command.strip()}` on {cpu_name()}, {args.threads} thread(s), median of "
          f"{args.repeats} interleaved repetitions")  # fmt: skip
    if args.json:
        report = {"command": command, "cpu": cpu_name(), "threads": args.threads, "rows": rows}
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
