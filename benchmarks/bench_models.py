"""Latency of the keypoint model on every available backend (batch 1, batched vs per crop) and
of each person detector, all measured in one run so their ratios are comparable.

    python benchmarks/bench_models.py                       # shipped or random-init HF-HRNet-18
    python benchmarks/bench_models.py --model m.onnx --batches 1,4,8 --repeats 30 --json out.json
    python benchmarks/bench_models.py --baseline blazepose --threads 1   # ratios to BlazePose-full

Why interleaved, and why CPU time too: the machine is shared, so load drifts during a run. Each
repetition times the batched call and the per-crop calls back to back, and we report medians,
so a load spike hits both sides of a comparison alike; the process's CPU time is reported
beside the wall time because it hardly changes with other programs' load (with ``--threads 1``
it is the cleanest comparison of two ways to do the same work). ``hfpose.engine.keypoints.estimator.BATCHED_BACKENDS``
follows this measurement.

Detectors are also scored where ../shared is present: people found (IoU >= 0.5, one box per
person) among the 28 annotated in mmpose's COCO and PoseTrack18 test frames.

Without ``--model`` the shipped model is used, or (until one ships) a randomly initialised
HF-HRNet-18 256x192 exported with ``hfpose.training.export.export_cli`` (needs torch; subnormal weights are flushed
by the runtimes, so its speed is the trained model's). The torch backend is measured on the
same random weights saved as a .pth.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hfpose.engine.detection.factory import create_detector  # noqa: E402
from hfpose.engine.keypoints.estimator import DEFAULT_MODEL  # noqa: E402
from hfpose.engine.runtime.backends import create_session
from hfpose.engine.runtime.discovery import available_backends
from hfpose.engine.runtime.model_files import ModelError, asset_path, read_onnx_metadata

SHARED_DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
SHARED_VIDEOS = SHARED_DATASETS / "videos"
SHARED_TESTDATA = SHARED_DATASETS / "mmpose_testdata"
DETECTOR_FRAMES = (
    ("mmpose_demo_street.mp4", 0),
    ("opencv_vtest.avi", 100),
    ("intel_asl_book.mkv", 30),
    ("intel_one-by-one-person-detection.mp4", 300),
)


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000.0


def time_call(call: Callable[[], object]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process): CPU time barely moves when other programs
    load the machine, so it still compares two ways of doing the same work."""
    wall, cpu = time.perf_counter(), time.process_time()
    call()
    return time.perf_counter() - wall, time.process_time() - cpu


def summarise(samples: list[tuple[float, float]]) -> tuple[float, float]:
    return round(median_ms([s[0] for s in samples]), 2), round(
        median_ms([s[1] for s in samples]), 2
    )


def random_init_model(folder: Path, config: str) -> tuple[Path, Path]:
    """Export a randomly initialised model and save the same weights as a .pth."""
    from hfpose.models.checkpoint import save_checkpoint
    from hfpose.models.config import load_config
    from hfpose.models.hf_hrnet import build_model
    from hfpose.training.run.onnx_export import export_onnx

    cfg = load_config(config)
    network = build_model(cfg)
    onnx_path = export_onnx(cfg, network, folder / f"{config}_random.onnx")
    pth_path = folder / f"{config}_random.pth"
    save_checkpoint(pth_path, network, {"config_name": cfg["config_name"]})
    return onnx_path, pth_path


def bench_keypoint_model(
    model: Path, backend: str, batches: list[int], repeats: int, config: str | None, threads: int
) -> dict:
    session = create_session(model, backend, config, num_threads=threads)
    info = session.runtime_info
    _, channels, height, width = session.input_shape
    rng = np.random.default_rng(0)
    row: dict = {"backend": backend, "runs_on": info.label, "precision": info.precision}
    if info.fallback_reason:
        row["fallback"] = info.fallback_reason
    for size in batches:
        crops = rng.normal(0, 1, (size, channels, height, width)).astype(np.float32)
        for _ in range(3):  # warm-up: first calls allocate and pick kernels
            session.run(crops)
            session.run(crops[:1])
        batched, per_crop = [], []
        for _ in range(repeats):
            batched.append(time_call(lambda c=crops: session.run(c)))
            if size > 1:
                per_crop.append(
                    time_call(lambda c=crops: [session.run(c[i : i + 1]) for i in range(len(c))])
                )
        row[f"batch{size}_ms"], row[f"batch{size}_cpu_ms"] = summarise(batched)
        if size > 1:
            row[f"per_crop{size}_ms"], row[f"per_crop{size}_cpu_ms"] = summarise(per_crop)
            row[f"per_crop/batched{size}"] = round(
                row[f"per_crop{size}_ms"] / row[f"batch{size}_ms"], 2
            )
            row[f"per_crop/batched{size}_cpu"] = round(
                row[f"per_crop{size}_cpu_ms"] / row[f"batch{size}_cpu_ms"], 2
            )
    return row


def read_frames() -> list[np.ndarray]:
    import cv2

    frames = []
    for name, index in DETECTOR_FRAMES:
        capture = cv2.VideoCapture(str(SHARED_VIDEOS / name))
        capture.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, frame = capture.read()
        capture.release()
        if ok:
            frames.append(frame)
    if not frames:  # no ../shared: a grey 640x480 frame still times the network and decoding
        frames.append(np.full((480, 640, 3), 127, np.uint8))
    return frames


def annotated_people() -> list[tuple[Path, np.ndarray]]:
    """(image, person boxes x1 y1 x2 y2) of the street and sports frames with every person of
    interest annotated: mmpose's COCO val2017 and PoseTrack18 test samples (28 people)."""
    items = []
    for annotation_file, folder in (
        ("coco/test_coco.json", "coco"),
        ("posetrack18/annotations/test_posetrack18_val.json", "posetrack18"),
    ):
        data = json.loads((SHARED_TESTDATA / annotation_file).read_text())
        files = {image["id"]: image["file_name"] for image in data["images"]}
        boxes: dict[int, list] = {}
        for person in data["annotations"]:
            if not person.get("iscrowd", 0) and person.get("category_id", 1) == 1:
                boxes.setdefault(person["image_id"], []).append(person["bbox"])
        for image_id, xywh in boxes.items():
            xyxy = np.asarray(xywh, np.float32)
            xyxy[:, 2:] += xyxy[:, :2]
            items.append((SHARED_TESTDATA / folder / files[image_id], xyxy))
    return items


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    top_left = np.maximum(box[:2], boxes[:, :2])
    bottom_right = np.minimum(box[2:4], boxes[:, 2:4])
    inter = np.prod(np.clip(bottom_right - top_left, 0, None), axis=1)
    areas = np.prod(boxes[:, 2:4] - boxes[:, :2], axis=1)
    return inter / (np.prod(box[2:4] - box[:2]) + areas - inter)


def detector_recall(detector, items: list[tuple[Path, np.ndarray]]) -> tuple[int, int, int]:
    """(people found at IoU >= 0.5, people annotated, boxes returned); one box per person."""
    import cv2

    found = annotated = returned = 0
    for path, people in items:
        boxes = detector.detect(cv2.imread(str(path)))
        returned += len(boxes)
        annotated += len(people)
        free = np.ones(len(boxes), bool)
        for person in people:
            if not free.any():
                break
            overlap = np.where(free, box_iou(person, boxes), 0.0)
            best = int(np.argmax(overlap))
            if overlap[best] >= 0.5:
                free[best] = False
                found += 1
    return found, annotated, returned


def bench_detector(name: str, backend: str, frames: list[np.ndarray], repeats: int) -> dict:
    detector = create_detector(name, backend)  # threads: the runtime's default (all cores)
    for frame in frames:
        detector.detect(frame)
    samples = []
    for _ in range(repeats):
        for frame in frames:
            samples.append(time_call(lambda f=frame: detector.detect(f)))
    wall_ms, cpu_ms = summarise(samples)
    row = {
        "detector": name,
        "backend": backend,
        "runs_on": detector.runtime_info.label,
        "ms_per_frame": wall_ms,
        "cpu_ms_per_frame": cpu_ms,
        "people_per_frame": [len(detector.detect(f)) for f in frames],
    }
    if SHARED_TESTDATA.is_dir():
        found, annotated, returned = detector_recall(detector, annotated_people())
        row["recall"] = f"{found} of {annotated} annotated people, {returned} boxes"
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="keypoint ONNX model (default: shipped)")
    parser.add_argument("--checkpoint", type=Path, help=".pth for the torch backend")
    parser.add_argument("--config", default="hf_hrnet_18_coco_256x192")
    parser.add_argument("--batches", default="1,2,4,8")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--backends", help="comma list (default: every available one)")
    parser.add_argument("--threads", type=int, default=0, help="keypoint model threads (0: all)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--baseline",
        choices=["blazepose"],
        help="time every candidate interleaved with BlazePose-full on LiteRT, same threads, "
        "and print ratios (see benchmarks/blazepose_baseline.py)",
    )
    parser.add_argument(
        "--extra-model",
        type=Path,
        action="append",
        default=[],
        help="another file of the same network (int8 .onnx/.xml, .tflite) to add as candidates",
    )
    args = parser.parse_args()
    if args.baseline:
        baseline_table(args)
        return

    batches = [int(b) for b in args.batches.split(",")]
    available = [s.name for s in available_backends() if s.available and s.name != "auto"]
    backends = args.backends.split(",") if args.backends else available
    with tempfile.TemporaryDirectory() as tmp:
        model, checkpoint = args.model, args.checkpoint
        if model is None:
            try:
                model = asset_path(DEFAULT_MODEL)
            except ModelError:
                model, checkpoint = random_init_model(Path(tmp), args.config)
                print(f"no shipped model: using a randomly initialised {args.config}")
        print(
            f"keypoint model {model.name}; load average {os.getloadavg()[0]:.2f}; cores {os.cpu_count()}"
        )

        keypoint_rows = []
        for backend in backends:
            if backend == "torch":
                if checkpoint is None:
                    continue
                keypoint_rows.append(
                    bench_keypoint_model(
                        checkpoint, "torch", batches, args.repeats, args.config, args.threads
                    )
                )
            else:
                keypoint_rows.append(
                    bench_keypoint_model(model, backend, batches, args.repeats, None, args.threads)
                )
            print(json.dumps(keypoint_rows[-1]))

    frames = read_frames()
    detector_rows = []
    for name in ("nanodet", "blazepose"):
        for backend in (b for b in backends if b != "torch"):
            detector_rows.append(bench_detector(name, backend, frames, max(3, args.repeats // 2)))
            print(json.dumps(detector_rows[-1]))

    print(
        "\nkeypoint model, median wall ms and process CPU ms (per_crop/batched > 1: batching wins)"
    )
    for row in keypoint_rows:
        cells = [f"{k}={v}" for k, v in row.items() if k.endswith("_ms") or "/" in k]
        print(f"  {row['runs_on']:<40} " + "  ".join(cells))
    base = next((r for r in keypoint_rows if r["backend"] == "cpu"), None)
    if base:
        for row in keypoint_rows:
            wall = base["batch1_ms"] / row["batch1_ms"]
            cpu = base["batch1_cpu_ms"] / row["batch1_cpu_ms"]
            print(f"  batch-1 speed vs cpu: {row['backend']:<9} x{wall:.2f} wall, x{cpu:.2f} CPU")
    print("\ndetectors, median ms per frame (pre-processing, network, decoding, NMS)")
    for row in detector_rows:
        print(
            f"  {row['detector']:<10} {row['runs_on']:<40} {row['ms_per_frame']:>7} ms"
            f"  (CPU {row['cpu_ms_per_frame']} ms)  {row.get('recall', '')}"
        )
    print(f"load average at the end {os.getloadavg()[0]:.2f}")
    if args.json:
        args.json.write_text(
            json.dumps({"keypoint": keypoint_rows, "detectors": detector_rows}, indent=1)
        )


def baseline_table(args: argparse.Namespace) -> None:
    """``--baseline blazepose``: every candidate's per-crop time as a ratio to BlazePose-full."""
    from benchmarks.blazepose_baseline import (
        blazepose_candidate,
        build_candidates,
        cpu_description,
        interleaved_ratios,
    )
    from hfpose.engine.runtime.litert import tflite_path
    from hfpose.training.export.quantize import int8_path_for

    model = args.model or asset_path(DEFAULT_MODEL)
    threads = args.threads or os.cpu_count() or 1
    extra = list(args.extra_model)
    if int8_path_for(model).is_file() and int8_path_for(model) not in extra:
        extra.append(int8_path_for(model))
    backends = args.backends.split(",") if args.backends else ["auto", "cpu"]
    if not args.backends and tflite_path(model).is_file():
        backends.append("litert")  # the hfpose-export --tflite copy beside the model
    baseline = blazepose_candidate(threads)
    candidates = build_candidates(model, threads, extra, backends)
    load_before = os.getloadavg()[0]
    width, height = read_onnx_metadata(model)["input_size"]
    session_shape = (3, int(height), int(width))
    rows = interleaved_ratios(
        baseline, candidates, session_shape, [int(b) for b in args.batches.split(",")], args.repeats
    )
    print(f"CPU: {cpu_description()}; {threads} thread(s) each; {os.cpu_count()} cores")
    print(f"load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after")
    print("per crop: median wall ms, its ratio to BlazePose-full, process CPU ms and its ratio")
    print(f"{'candidate':<58} {'batch':>5} {'wall ms':>8} {'x':>6} {'CPU ms':>8} {'x CPU':>6}")
    for row in rows:
        print(
            f"{row['candidate']:<58} {row['batch']:>5} {row['ms_per_crop']:>8} "
            f"{row['ratio']:>6} {row['cpu_ms_per_crop']:>8} {row['cpu_ratio']:>6}"
        )
    if args.json:
        args.json.write_text(
            json.dumps({"cpu": cpu_description(), "threads": threads, "rows": rows}, indent=1)
        )


if __name__ == "__main__":
    main()
