"""What packing the crop caches costs: the shipped model's score on WebP-packed crops against the
original crops, and the bytes per person, for each pack setting.

A lease carries the training set as packed caches (``hfpose-lease pack``, WebP): the model then
trains on lossy copies. Scoring one fixed model on the original and the packed copies of the
held-out caches measures what the compression changes in what the model sees. A setting is
``QUALITY[,SIDE][,fit]`` (``hfpose.training.dataset.encode_cache.parse_setting``): WebP quality, the
side crops are stored at (the cache's 384 by default), ``fit``: no larger than the source photo.

    python benchmarks/bench_pack_cost.py --caches /work/cache/mpii_thunder_val:pckh \\
        /work/cache/lspet_thunder_val:pck --settings 65 50 65,320 65,320,fit
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="hfpose_hf_hrnet_18_coco_256x192_lspet_mpii")
    parser.add_argument("--onnx", type=Path, default=REPO / "assets/hf_hrnet_18_coco_256x192.onnx")
    parser.add_argument("--caches", nargs="+", required=True, metavar="DIR:METRIC")
    parser.add_argument("--settings", nargs="+", default=["65"], metavar="Q[,SIDE][,fit]")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--no-original", action="store_true", help="packed copies only (the original scored before)"
    )
    parser.add_argument(
        "--cfg-options", nargs="+", default=[], help="e.g. model.test_cfg.flip_test=false"
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    import torch

    from hfpose.models.config import load_config, model_input_size
    from hfpose.models.hf_hrnet import build_model
    from hfpose.training.dataset.builder import build_dataset, dataset_layout
    from hfpose.training.dataset.encode_cache import encode_cache, parse_setting
    from hfpose.training.run.load_from import load_initial_weights
    from hfpose.training.run.prediction import predict_with_model
    from hfpose.training.scoring.evaluation import evaluate_dataset, normalise_metric_name

    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    cfg = load_config(args.config, args.cfg_options)
    model = build_model(cfg)
    # eval mode reproduces the ONNX exactly without calibration (training/run/load_from.py)
    load_initial_weights(model, args.onnx, model_input_size(cfg))
    results = {"onnx": str(args.onnx), "cfg_options": args.cfg_options, "caches": {}}
    with tempfile.TemporaryDirectory() as scratch:
        for spec in args.caches:
            cache_dir, metric = spec.rsplit(":", 1)
            variants = {} if args.no_original else {"original": Path(cache_dir)}
            for setting in map(parse_setting, args.settings):
                packed = Path(scratch) / f"{Path(cache_dir).name}_{setting.label()}"
                encode_cache(Path(cache_dir), packed, setting)
                variants[setting.label()] = packed
            rows = {}
            for name, path in variants.items():
                entry = {"type": "CropCacheDataset", "cache_dir": str(path)}
                dataset = build_dataset(cfg, "test", entry=entry)
                predictions = predict_with_model(model, dataset, cfg, torch.device("cpu"), None)
                metrics = evaluate_dataset(
                    normalise_metric_name(metric), predictions, dataset, dataset_layout(cfg),
                    cfg["data_cfg"], Path(scratch) / "eval",
                )  # fmt: skip
                image_file = "images.npy" if name == "original" else "images_webp.npz"
                nbytes = (path / image_file).stat().st_size
                rows[name] = {
                    "people": len(dataset),
                    "bytes_per_person": round(nbytes / len(dataset)),
                    "score": round(metrics[{"pckh": "PCKh", "pck": "PCK"}[metric]], 2),
                }
                print(f"{Path(cache_dir).name} {name}: {rows[name]}", flush=True)
            results["caches"][Path(cache_dir).name] = rows
    print(json.dumps(results, indent=1))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
