"""How tight a crop a keypoint model wants: its accuracy on the validation sets per box padding.

    python benchmarks/bench_crop_padding.py                      # both MoveNets, 1.0 ... 1.25
    python benchmarks/bench_crop_padding.py --models movenet-thunder --paddings 1.0 1.1 \
        --sets coco_found --json out.json

Why: MoveNet was trained on tight square crops and the engine's default padding for it (the
``bbox_padding`` in its ONNX metadata) should be the measured best, not a guess. Each model
runs through the engine's own family decoder (``hfpose.engine.keypoints.families``) with only the
padding changed, on the GT boxes and with the metrics of ``benchmarks/bench_accuracy.py``
(the ``hfpose-test`` protocol). coco_found's boxes are COCO's (like a detector's); MPII's and
LSPET's are derived from the labelled joints, so they favour a looser crop.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_accuracy import SETS, SHARED, cpu_name, record_box_xyxy, test_argv  # noqa: E402

from hfpose.engine.keypoints.families import KeypointDecoder, identify, resolve_model  # noqa: E402
from hfpose.engine.runtime.backends import create_session  # noqa: E402
from hfpose.engine.runtime.sessions import InferenceSession  # noqa: E402

HEADLINE = {"mpii": "PCKh", "lspet": "PCK", "coco_found": "AP"}


def predictions(
    decoder: KeypointDecoder, session: InferenceSession, dataset: Any
) -> dict[str, np.ndarray]:
    """The engine's keypoints for every record of ``dataset``, in hfpose-test's layout."""
    from hfpose.training.dataset.transforms import read_image_rgb

    count = len(dataset.records)
    keypoints, centers, scales = (
        np.zeros((count, 17, 3)),
        np.zeros((count, 2)),
        np.zeros((count, 2)),
    )
    loaded: tuple[str, np.ndarray] | None = None
    for i, record in enumerate(dataset.records):
        if loaded is None or loaded[0] != record["image_file"]:
            pixels = dataset.load_image(record)
            rgb = read_image_rgb(record["image_file"]) if pixels is None else pixels
            loaded = (record["image_file"], np.ascontiguousarray(rgb[..., ::-1]))
        crops = decoder.prepare(loaded[1], record_box_xyxy(record)[None])
        points, scores = decoder.decode(session.run(crops.batch), crops)
        keypoints[i, :, :2], keypoints[i, :, 2] = points[0], scores[0]
        centers[i], scales[i] = crops.centers[0], crops.scales[0]
    return {
        "index": np.arange(count),
        "keypoints": keypoints,
        "center": centers,
        "scale": scales,
        "bbox_score": np.array([r.get("bbox_score", 1.0) for r in dataset.records]),
    }


def main(argv: list[str] | None = None) -> int:
    from hfpose.models.config import load_config
    from hfpose.training.dataset.builder import build_dataset, dataset_layout
    from hfpose.training.scoring import test_cli
    from hfpose.training.scoring.evaluation import evaluate_dataset

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["movenet-thunder", "movenet-lightning"])
    parser.add_argument("--paddings", nargs="+", type=float, default=[1.0, 1.05, 1.1, 1.15, 1.25])
    parser.add_argument("--sets", nargs="+", choices=list(SETS), default=list(SETS))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if not SHARED.is_dir():
        raise SystemExit(f"the validation sets are not here: {SHARED} is missing")

    results: dict[str, dict[str, dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for set_name in args.sets:
            cli = test_cli.build_parser().parse_args(test_argv("model", set_name, Path(tmp)))
            cfg = load_config(cli.config, ["data_cfg.use_gt_bbox=true"])
            dataset = build_dataset(cfg, "test", entry=test_cli._test_entry(cli, cfg))
            for model in args.models:
                session = create_session(resolve_model(model), "cpu", num_threads=args.threads)
                shipped = identify(resolve_model(model), session)
                for padding in args.paddings:
                    decoder = copy.copy(shipped)  # the same family, only the padding differs
                    decoder.crop = replace(shipped.crop, padding=padding)
                    metrics = evaluate_dataset(
                        cli.metric,
                        predictions(decoder, session, dataset),
                        dataset,
                        dataset_layout(cfg),
                        cfg["data_cfg"],
                        Path(tmp) / f"{model}_{set_name}_{padding}",
                    )
                    value = metrics[HEADLINE[set_name]] * (100 if set_name == "coco_found" else 1)
                    results.setdefault(model, {}).setdefault(f"{padding:g}", {})[set_name] = value
                    print(f"{model} padding {padding:g} {set_name}: {value:.1f}", file=sys.stderr)

    shown = [s for s in SETS if s in args.sets]
    print("| model | box padding | " + " | ".join(f"{s} {HEADLINE[s]}" for s in shown) + " |")
    print("|---|---|" + "---|" * len(shown))
    for model, by_padding in results.items():
        for padding, values in by_padding.items():
            cells = " | ".join(f"{values[s]:.1f}" for s in shown)
            print(f"| {model} | {padding} | {cells} |")
    command = " ".join(["python benchmarks/bench_crop_padding.py", *(argv or sys.argv[1:])])
    print(f"\n`{command}` on {cpu_name()}; GT boxes; square crops for MoveNet")
    if args.json:
        args.json.write_text(json.dumps({"command": command, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
