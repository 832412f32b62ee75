"""Does data loading keep up with the model? Samples/s of the training pipeline alone and of
full training steps (load + augment + forward + backward + Adam), as ``hfpose-train`` runs them.

    python benchmarks/bench_training.py hf_hrnet_18_coco_256x192 --workers 0 1 2 \
        --cfg-options data.train.ann_file=tests/data/coco/test_coco.json \
                      data.train.img_prefix=tests/data/coco

The default data is the repository's COCO fixture (full JPEG decode per person, the slowest
case); ``--data config`` uses the config's own ``data.train`` (e.g. crop caches). The
data pipeline keeps up when its samples/s with the workers the config uses is well above the
training step's.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

FIXTURE_OPTIONS = [
    f"data.train.ann_file={REPO / 'tests/data/coco/test_coco.json'}",
    f"data.train.img_prefix={REPO / 'tests/data/coco'}",
]


def bench_data(trainer, batches: int) -> float:
    """Samples/s of the DataLoader alone (workers as configured), after one warm-up batch."""
    done = 0
    started = None
    epoch = 0
    while done < batches:
        trainer.batch_sampler.set_epoch(epoch)
        for batch in trainer._train_loader():
            if started is None:
                started, samples = time.perf_counter(), 0
                continue
            samples += len(batch["img"])
            done += 1
            if done >= batches:
                break
        epoch += 1
    return samples / (time.perf_counter() - started)


def bench_steps(trainer, steps: int, warmup: int = 2) -> float:
    """Samples/s of whole training steps, data loading included (what the progress bar shows)."""
    done = 0
    epoch = 0
    started = None
    samples = 0
    trainer.train_model.train()
    while done < steps + warmup:
        trainer.batch_sampler.set_epoch(epoch)
        for batch in trainer._train_loader():
            trainer._step([batch], 0)
            done += 1
            if done == warmup:
                started, samples = time.perf_counter(), 0
            elif done > warmup:
                samples += len(batch["img"])
            if done >= steps + warmup:
                break
        epoch += 1
    return samples / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("config", nargs="?", default="hf_hrnet_18_coco_256x192")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--data-batches", type=int, default=20)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    parser.add_argument(
        "--data",
        choices=("fixture", "config"),
        default="fixture",
        help="the repository's COCO fixture (default) or the config's own data.train",
    )
    parser.add_argument("--cfg-options", nargs="+", default=[])
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)

    import torch

    from models.config import load_config
    from training.trainer import Trainer

    if args.threads:
        torch.set_num_threads(args.threads)
    options = ["evaluation.interval=0", f"data.samples_per_gpu={args.batch}"]
    if args.data == "fixture":
        options = [*FIXTURE_OPTIONS, *options]
    results = {
        "config": args.config,
        "batch": args.batch,
        "torch_threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0],
        "data_samples_per_s": {},
    }
    with tempfile.TemporaryDirectory() as work_dir:
        for workers in args.workers:
            cfg = load_config(
                args.config, [*options, f"data.workers_per_gpu={workers}", *args.cfg_options]
            )
            trainer = Trainer(
                cfg, Path(work_dir) / f"w{workers}", progress=False, log=lambda m: None
            )
            rate = bench_data(trainer, args.data_batches)
            results["data_samples_per_s"][workers] = round(rate, 1)
            print(f"data pipeline, {workers} worker(s): {rate:.1f} samples/s", flush=True)
        amp = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[trainer.amp_dtype]
        rate = bench_steps(trainer, args.steps)
        results["train_samples_per_s"] = round(rate, 2)
        results["train_workers"] = args.workers[-1]
        results["data"] = args.data
        results["amp"] = amp
        print(
            f"training steps ({amp}, channels_last={trainer.channels_last}, "
            f"{args.workers[-1]} worker(s)): {rate:.2f} samples/s"
        )
    results["load_average_1min_end"] = os.getloadavg()[0]
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
