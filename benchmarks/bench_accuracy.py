"""Accuracy of the shipped HF-HRNet against the models a user could pick instead, one table.

    python benchmarks/bench_accuracy.py                 # every model on every validation set
    python benchmarks/bench_accuracy.py --models hf_hrnet blazepose --sets mpii --json out.json

Models: the shipped HF-HRNet-18, MoveNet SinglePose Thunder and Lightning (assets/, through the
engine's keypoint families) and MediaPipe BlazePose-full (``pose_landmark_full.tflite`` of the
mediapipe 0.10.21 wheel, run by ``hfpose.training.teacher.blazepose_landmarker.BlazePoseLandmarker``: mediapipe's own
graph and decoding; its 33 landmarks mapped to COCO-17).

Sets and metrics (the ``hfpose-test --model`` protocol: same GT boxes for every model):
MPII val (169 people of the 100 held-out frames, ``training/data/splits/mpii_val.txt``:
PCKh@0.5 and @0.1, limbs only: MPII labels no face), LSPET val (500 held-out people: torso
PCK@0.2, limbs only) and coco_found (445 people with official COCO keypoints, face included: COCO
AP through pycocotools).

The ONNX models are scored by ``hfpose-test --model`` itself (``hfpose.training.scoring.test_cli.main``), so
each gets the crop its engine family cuts; BlazePose has no ONNX file, so its predictions go
through the same dataset, records, boxes and ``hfpose.training.scoring.evaluation.evaluate_dataset``. Crops:

- HF-HRNet: the box widened to 3:4 and padded x1.25, 256x192, flip test (mmpose's protocol);
- MoveNet: a square 1.1x the box's longer side, no flip test (its graph decodes itself);
  both as the engine's keypoint family states them (``decoder.crop.describe()``);
- BlazePose: a square centred on the box, side 1.25 x its longer side, 256x256, upright (what
  its detector's region of interest would be for a person filling the box), no flip.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hfpose.models.processing import PIXEL_STD, affine_points, get_affine_transform  # noqa: E402

SHARED = REPO.parent / "shared" / "datasets"
CONFIG = "models/configs/hfpose_hf_hrnet_18_coco_256x192_lspet_mpii.yaml"
# name -> (hfpose-test arguments after --model, metrics shown)
SETS: dict[str, tuple[list[str], tuple[str, ...]]] = {
    "mpii": (
        [
            "--metric", "pckh",
            "--ann", str(SHARED / "mpii_train" / "mpii_train_coco17.json"),
            "--img-dir", str(SHARED / "mpii_train" / "images"),
            "--image-list", "training/data/splits/mpii_val.txt",
        ],
        ("PCKh", "PCKh@0.1"),
    ),
    "lspet": (
        [
            "--metric", "pck",
            "--ann", str(SHARED / "lspet" / "lspet_coco17.json"),
            "--img-dir", str(SHARED / "lspet" / "images"),
            "--image-list", "training/data/splits/lspet_val.txt",
        ],
        ("PCK",),
    ),
    "coco_found": (
        [
            "--metric", "coco",
            "--ann", str(SHARED / "coco_found" / "person_keypoints_coco_found.json"),
            "--img-dir", str(SHARED / "coco_found" / "images"),
        ],
        ("AP", "AP .5"),
    ),
}  # fmt: skip
ONNX_MODELS = {
    "hf_hrnet": "assets/hf_hrnet_18_coco_256x192.onnx",
    "movenet_thunder": "assets/movenet_singlepose_thunder.onnx",
    "movenet_lightning": "assets/movenet_singlepose_lightning.onnx",
}
MODEL_NAMES = {
    "hf_hrnet": "HF-HRNet-18 (shipped)",
    "blazepose": "MediaPipe BlazePose-full",
    "movenet_thunder": "MoveNet SinglePose Thunder",
    "movenet_lightning": "MoveNet SinglePose Lightning",
}
BLAZEPOSE_CROP = "256x256, square, box x1.25, no flip test (mediapipe's own graph)"
BLAZEPOSE_CROP_MARGIN = 1.25


def test_argv(model: str, set_name: str, work_dir: Path) -> list[str]:
    """The ``hfpose-test`` command line that scores ``model`` (an ONNX path) on a set."""
    extra, _ = SETS[set_name]
    return [CONFIG, "--model", model, "--use-gt-bbox", *extra, "--work-dir", str(work_dir)]


def score_onnx(model: str, set_name: str, work_dir: Path) -> dict[str, float]:
    """Run ``hfpose-test --model`` in this process and return its metrics."""
    from hfpose.training.scoring import test_cli

    out = work_dir / f"{Path(model).stem}_{set_name}.json"
    argv = [*test_argv(model, set_name, work_dir), "--out-json", str(out)]
    with contextlib.redirect_stdout(io.StringIO()):
        status = test_cli.main(argv)
    if status != 0:
        raise RuntimeError(f"hfpose-test {' '.join(argv)} failed ({status})")
    return json.loads(out.read_text())["metrics"]


def record_box_xyxy(record: dict[str, Any]) -> np.ndarray:
    """The record's GT box as ``hfpose-test --model`` gives it to the engine."""
    from hfpose.models.processing import BOX_PADDING

    if record.get("bbox") is not None:
        x, y, w, h = record["bbox"]
    else:
        w, h = np.asarray(record["scale"]) * PIXEL_STD / BOX_PADDING
        x, y = np.asarray(record["center"]) - (w / 2, h / 2)
    return np.array([x, y, x + w, y + h], dtype=np.float64)


def blazepose_predictions(dataset: Any) -> dict[str, np.ndarray]:
    """BlazePose-full's COCO-17 keypoints for every record of ``dataset`` (GT boxes)."""
    from hfpose.training.dataset.transforms import read_image_rgb
    from hfpose.training.teacher.blazepose_label import BLAZEPOSE_FOR_COCO
    from hfpose.training.teacher.blazepose_landmarker import BLAZEPOSE_INPUT, BlazePoseLandmarker

    landmarker = BlazePoseLandmarker()
    keypoints = np.zeros((len(dataset.records), 17, 3))
    centers = np.zeros((len(dataset.records), 2))
    scales = np.zeros((len(dataset.records), 2))
    loaded: tuple[str, np.ndarray] | None = None
    try:
        for i, record in enumerate(dataset.records):
            if loaded is None or loaded[0] != record["image_file"]:
                pixels = dataset.load_image(record)
                image = read_image_rgb(record["image_file"]) if pixels is None else pixels
                loaded = (record["image_file"], image)
            box = record_box_xyxy(record)
            center = (box[:2] + box[2:]) / 2
            side = BLAZEPOSE_CROP_MARGIN * float(np.max(box[2:] - box[:2]))
            to_crop = get_affine_transform(
                center, (side / PIXEL_STD, side / PIXEL_STD), 0.0, (BLAZEPOSE_INPUT,) * 2
            )
            crop = cv2.warpAffine(
                loaded[1], to_crop, (BLAZEPOSE_INPUT,) * 2, flags=cv2.INTER_LINEAR
            )
            landmarks = landmarker(crop)
            centers[i], scales[i] = center, side / PIXEL_STD
            if landmarks is None:  # BlazePose says "no person": a pose of zero confidence
                keypoints[i, :, :2] = center
                continue
            coco = landmarks[BLAZEPOSE_FOR_COCO]
            keypoints[i, :, :2] = affine_points(coco[:, :2], cv2.invertAffineTransform(to_crop))
            keypoints[i, :, 2] = np.minimum(coco[:, 3], coco[:, 4])  # visibility, presence
    finally:
        landmarker.close()
    return {
        "index": np.arange(len(dataset.records)),
        "keypoints": keypoints,
        "center": centers,
        "scale": scales,
        "bbox_score": np.array([r.get("bbox_score", 1.0) for r in dataset.records]),
    }


def score_blazepose(set_name: str, work_dir: Path) -> dict[str, float]:
    """BlazePose through the same dataset, boxes and scoring as ``hfpose-test``."""
    return score_blazepose_argv(test_argv("blazepose", set_name, work_dir))


def score_blazepose_argv(argv: list[str]) -> dict[str, float]:
    """BlazePose scored on what an ``hfpose-test`` command line (``argv``) names."""
    from hfpose.models.config import load_config
    from hfpose.training.dataset.builder import build_dataset, dataset_layout
    from hfpose.training.scoring import test_cli
    from hfpose.training.scoring.evaluation import evaluate_dataset

    args = test_cli.build_parser().parse_args(argv)
    cfg = load_config(args.config, ["data_cfg.use_gt_bbox=true"])
    dataset = build_dataset(cfg, "test", entry=test_cli._test_entry(args, cfg))
    predictions = blazepose_predictions(dataset)
    return evaluate_dataset(
        args.metric, predictions, dataset, dataset_layout(cfg), cfg["data_cfg"], args.work_dir
    )


def engine_crop_description(model_path: Path) -> str:
    """The engine's own words for the crop it cuts for this ONNX model, and the flip test."""
    from hfpose.engine.keypoints.estimator import PoseEstimator

    decoder = PoseEstimator(model_path, "cpu", flip_test=True, num_threads=1).decoder
    width, height = decoder.crop.size_wh
    common = math.gcd(width, height)
    shape = "square" if decoder.crop.square else f"{width // common}:{height // common}"
    flip = "flip test" if decoder.flip_supported else "no flip test (none in MoveNet)"
    return f"{width}x{height}, {shape}, box x{decoder.crop.padding:g}, {flip}"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def markdown_table(results: dict[str, dict[str, dict[str, float]]], crops: dict[str, str]) -> str:
    """One row per model, one column per metric (percent), the crop stated per row."""
    columns = [
        ("mpii", "PCKh", "MPII val PCKh@0.5"),
        ("mpii", "PCKh@0.1", "MPII val PCKh@0.1"),
        ("lspet", "PCK", "LSPET val PCK@0.2"),
        ("coco_found", "AP", "coco_found AP"),
        ("coco_found", "AP .5", "coco_found AP@0.5"),
    ]
    shown = [c for c in columns if any(c[0] in r for r in results.values())]
    lines = [
        "| model | crop | " + " | ".join(c[2] for c in shown) + " |",
        "|---|---|" + "---|" * len(shown),
    ]
    for model, by_set in results.items():
        cells = []
        for set_name, metric, _ in shown:
            value = by_set.get(set_name, {}).get(metric)
            scale = 100.0 if set_name == "coco_found" else 1.0  # pycocotools gives fractions
            cells.append("-" if value is None else f"{value * scale:.1f}")
        lines.append(f"| {MODEL_NAMES[model]} | {crops[model]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", choices=list(MODEL_NAMES), default=list(MODEL_NAMES))
    parser.add_argument("--sets", nargs="+", choices=list(SETS), default=list(SETS))
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args(argv)
    if not SHARED.is_dir():
        raise SystemExit(f"the validation sets are not here: {SHARED} is missing")

    results: dict[str, dict[str, dict[str, float]]] = {}
    seconds: dict[str, float] = {}
    crops: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models:
            if model in ONNX_MODELS and not (REPO / ONNX_MODELS[model]).is_file():
                print(f"skipped {model}: {ONNX_MODELS[model]} is not there", file=sys.stderr)
                continue
            started = time.perf_counter()
            crops[model] = (
                BLAZEPOSE_CROP
                if model == "blazepose"
                else engine_crop_description(REPO / ONNX_MODELS[model])
            )
            results[model] = {}
            for set_name in args.sets:
                work_dir = Path(tmp) / model / set_name
                if model == "blazepose":
                    results[model][set_name] = score_blazepose(set_name, work_dir)
                else:
                    results[model][set_name] = score_onnx(ONNX_MODELS[model], set_name, work_dir)
                print(f"{model} {set_name}: {results[model][set_name]}", file=sys.stderr)
            seconds[model] = round(time.perf_counter() - started, 1)

    command = " ".join(["python benchmarks/bench_accuracy.py", *sys.argv[1:]])
    print(markdown_table(results, crops))
    print(
        f"\n`{command}` on {cpu_name()} ({os.cpu_count()} cores); GT boxes; crops W x H; "
        "MPII/LSPET score limbs only (they label no face)."
    )
    if args.json:
        report = {
            "command": command,
            "cpu": cpu_name(),
            "crops": crops,
            "results": results,
            "seconds": seconds,
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
