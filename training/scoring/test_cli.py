"""``hfpose-test CONFIG (--checkpoint CKPT | --model MODEL.onnx) [options]``: the paper's numbers.

Evaluates the config's test set (COCO val on the detections file, MPII val with
``mpii_gt_val.mat``) or any COCO-format set given with ``--ann``/``--img-dir``. A ``.pth``
checkpoint runs in torch; an ONNX model runs through the app's own pose estimator
(``hfpose.engine.keypoints.estimator.PoseEstimator``: its crop, runtime session, flip test and decoding), so the score
is that of what the app runs. Runs under
``torchrun`` too (each process scores a shard).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from hfpose.engine.keypoints.estimator import PoseEstimator
from hfpose.models.config import ConfigError, load_config, model_input_size
from hfpose.models.processing import BOX_PADDING, PIXEL_STD, bbox_xywh_to_cs
from hfpose.training.dataset.transforms import read_image_rgb
from hfpose.training.run.run_config import TestConfig, TrainConfig
from hfpose.training.scoring.evaluation import evaluate_dataset, normalise_metric_name


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hfpose-test", description="Evaluate an HF-HRNet checkpoint or ONNX model."
    )
    parser.add_argument("config", help="paper config name or YAML path (sizes, pipeline, metric)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", type=Path, help="a .pth checkpoint (authors' or ours)")
    source.add_argument("--model", type=Path, help="an exported .onnx model (engine runtime)")
    parser.add_argument("--ann", type=Path, help="COCO-format keypoint json (.json or .json.gz)")
    parser.add_argument("--img-dir", type=Path, help="folder of the images named in --ann")
    parser.add_argument("--image-list", type=Path, help="evaluate only the images listed here")
    parser.add_argument(
        "--use-gt-bbox", action="store_true", help="crop at GT boxes instead of detections"
    )
    parser.add_argument(
        "--metric", choices=("coco", "pckh", "pck"), help="default: the config's evaluation.metric"
    )
    parser.add_argument("--out-json", type=Path, help="write the metrics here as JSON")
    parser.add_argument(
        "--work-dir", type=Path, help="where the COCO results json goes (default: work_dirs/...)"
    )
    parser.add_argument("--no-flip", action="store_true", help="no flip test")
    parser.add_argument(
        "--backend", default="cpu", help="engine backend for --model (cpu, openvino, gpu, auto)"
    )
    parser.add_argument(
        "--precision",
        choices=("fast", "fp32"),
        default="fast",
        help="engine precision for --model, as the app runs it (fast: bf16 where native, or "
        "the model's checked int8 copy; fp32: exactly as trained)",
    )
    parser.add_argument("--batch-size", type=int, help="default: data.test_dataloader")
    parser.add_argument("--cfg-options", nargs="+", default=[], metavar="KEY=VALUE")
    return parser


def _test_entry(args: argparse.Namespace, cfg: dict[str, Any]) -> dict[str, Any] | None:
    if args.ann is None:
        if args.img_dir is not None or args.image_list is not None:
            raise ConfigError("--img-dir and --image-list go with --ann")
        return None
    if args.img_dir is None:
        raise ConfigError("--ann needs --img-dir (the folder of its images)")
    entry: dict[str, Any] = {
        "type": "TopDownCocoDataset",
        "ann_file": str(args.ann),
        "img_prefix": str(args.img_dir),
    }
    if args.image_list is not None:
        entry["image_list"] = str(args.image_list)
    return entry


def predict_with_engine(
    model_path: Path,
    backend: str,
    dataset: Any,
    cfg: dict[str, Any],
    world: int = 1,
    rank: int = 0,
    precision: str = "fast",
) -> tuple[dict[str, np.ndarray], str]:
    """Keypoints from the app's own ``hfpose.engine.keypoints.estimator.PoseEstimator`` (frame in BGR, boxes in, the
    engine's crop, runtime session, flip test and decoding), one image at a time.

    Boxes are the records' boxes; records that give a centre and scale instead (MPII) become the
    box that maps back to that centre and scale.
    """
    test = TestConfig.from_config(cfg)
    estimator = PoseEstimator(
        model_path,
        backend,
        flip_test=test.flip_test,
        use_dark=test.use_dark,
        precision=precision,
    )
    width, height = estimator.input_size_wh
    by_image: dict[str, list[int]] = {}
    for i, record in enumerate(dataset.records):
        by_image.setdefault(record["image_file"], []).append(i)
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("index", "keypoints", "center", "scale")}
    parts["bbox_score"] = []
    for image_file in list(by_image)[rank::world]:
        indices = by_image[image_file]
        pixels = dataset.load_image(dataset.records[indices[0]])  # a crop cache's cached pixels
        frame_rgb = read_image_rgb(image_file) if pixels is None else pixels
        frame_bgr = np.ascontiguousarray(frame_rgb[..., ::-1])
        boxes = []
        for i in indices:
            record = dataset.records[i]
            if record.get("bbox") is not None:
                x, y, w, h = record["bbox"]
            else:
                w, h = np.asarray(record["scale"]) * PIXEL_STD / BOX_PADDING
                x, y = np.asarray(record["center"]) - (w / 2, h / 2)
            boxes.append([x, y, x + w, y + h])
        boxes_xyxy = np.asarray(boxes, dtype=np.float64)
        keypoints, scores = estimator.estimate(frame_bgr, boxes_xyxy)
        xywh = np.concatenate([boxes_xyxy[:, :2], boxes_xyxy[:, 2:] - boxes_xyxy[:, :2]], axis=1)
        centers, scales = bbox_xywh_to_cs(xywh, width / height)
        parts["index"].append(np.asarray(indices))
        parts["keypoints"].append(np.concatenate([keypoints, scores[..., None]], axis=2))
        parts["center"].append(centers)
        parts["scale"].append(scales)
        parts["bbox_score"].append(
            np.array([dataset.records[i].get("bbox_score", 1.0) for i in indices])
        )
    predictions = {k: np.concatenate(v) if v else np.zeros((0,)) for k, v in parts.items()}
    return predictions, estimator.runtime_info.label


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except ConfigError as exc:
        print(f"hfpose-test: {exc}", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"hfpose-test: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("hfpose-test: interrupted; no scores were written", file=sys.stderr)
        return 130
    finally:
        from hfpose.training.run.distributed import leave_process_group

        leave_process_group()


def _run(args: argparse.Namespace) -> int:
    import torch.distributed as dist

    from hfpose.models.checkpoint import load_checkpoint
    from hfpose.models.hf_hrnet import build_model
    from hfpose.training.dataset.builder import build_dataset, dataset_layout
    from hfpose.training.run.distributed import (
        configure_cpu,
        init_distributed,
        select_amp,
        select_device,
    )
    from hfpose.training.run.prediction import predict_with_model

    overrides = list(args.cfg_options)
    if args.use_gt_bbox:
        overrides.append("data_cfg.use_gt_bbox=true")
    if args.no_flip:
        overrides.append("model.test_cfg.flip_test=false")
    if args.batch_size:
        overrides.append(f"data.val_dataloader.samples_per_gpu={args.batch_size}")
    cfg = load_config(args.config, overrides)
    config = TrainConfig.from_config(cfg)
    metric = normalise_metric_name(args.metric or config.evaluation.metric)
    dataset = build_dataset(cfg, "test", entry=_test_entry(args, cfg))
    layout = dataset_layout(cfg)
    work_dir = args.work_dir or Path("work_dirs") / f"test_{cfg['config_name']}"

    device = select_device(config.device)
    if device.type == "cpu":
        configure_cpu(config.cpu_threads)
    rank, world = init_distributed(device)
    if args.checkpoint is not None:
        model = build_model(cfg).to(device)
        load_checkpoint(model, args.checkpoint, input_size_wh=model_input_size(cfg))
        amp = select_amp(config.amp, device) if device.type == "cuda" else None
        predictions = predict_with_model(model, dataset, cfg, device, amp, world, rank)
        runtime = f"torch {device}" + (f" {amp}" if amp else " fp32")
        model_name = str(args.checkpoint)
    else:
        predictions, runtime = predict_with_engine(
            args.model, args.backend, dataset, cfg, world, rank, args.precision
        )
        if world > 1:
            gathered: list[Any] = [None] * world
            dist.all_gather_object(gathered, predictions)
            predictions = {k: np.concatenate([g[k] for g in gathered]) for k in predictions}
        model_name = str(args.model)
    if rank != 0:
        return 0
    metrics = evaluate_dataset(metric, predictions, dataset, layout, cfg["data_cfg"], work_dir)
    flip = config.test.flip_test
    print(f"{cfg['config_name']} | {model_name} | {runtime} | {len(dataset)} samples | "
          f"flip test {'on' if flip else 'off'}")  # fmt: skip
    for key, value in metrics.items():
        print(f"  {key:12s} {value:8.4f}")
    if args.out_json is not None:
        report = {
            "config": cfg["config_name"],
            "model": model_name,
            "runtime": runtime,
            "metric": metric,
            "samples": len(dataset),
            "flip_test": flip,
            "dataset": str(args.ann or cfg["data"]["test"].get("ann_file")),
            "metrics": metrics,
        }
        args.out_json.parent.mkdir(parents=True, exist_ok=True)
        args.out_json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
