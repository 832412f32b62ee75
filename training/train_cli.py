"""``hfpose-train CONFIG [--work-dir DIR] [--resume] [--cfg-options key=value ...]``.

Trains one of the paper's configs (or any config file) with the authors' recipe. Runs as one
process, or under ``torchrun --nproc_per_node=N`` as N DistributedDataParallel processes.
Ctrl+C saves a checkpoint that ``--resume`` continues exactly.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from hfpose.models.checkpoint import CheckpointError
from hfpose.models.config import ConfigError, load_config


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hfpose-train",
        description="Train HF-HRNet with the paper's recipe (see training/README.md).",
    )
    parser.add_argument("config", help="paper config name (hf_hrnet_18_coco_256x192) or YAML path")
    parser.add_argument(
        "--work-dir", type=Path, help="checkpoints and logs (default: work_dirs/<config name>)"
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue from WORK_DIR/latest.pth exactly"
    )
    parser.add_argument(
        "--cfg-options",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="override config keys, e.g. data.samples_per_gpu=16 total_epochs=10",
    )
    parser.add_argument(
        "--max-steps",
        type=int,
        help="stop after this many optimiser steps, saving a resumable checkpoint",
    )
    parser.add_argument(
        "--load-from",
        help="start from these weights: checkpoint (.pth) or exported ONNX (config key load_from)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (logs only)")
    return parser


def _save_on_sigterm() -> None:
    """A shutdown or a job scheduler stops with SIGTERM: save and exit as Ctrl+C does."""

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, stop)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _save_on_sigterm()
    try:
        cfg = load_config(args.config, args.cfg_options)
        if args.load_from:
            cfg["load_from"] = args.load_from
        work_dir = args.work_dir or Path("work_dirs") / cfg["config_name"]
        from hfpose.training.checkpointing import TrainingError
        from hfpose.training.datasets import DatasetError
        from hfpose.training.trainer import Trainer

        try:
            trainer = Trainer(
                cfg, work_dir, resume=args.resume, max_steps=args.max_steps,
                progress=not args.no_progress,
            )  # fmt: skip
            trainer.train()
        except KeyboardInterrupt:
            return 130
        except (DatasetError, TrainingError, CheckpointError, FileNotFoundError, ValueError) as exc:
            print(f"hfpose-train: {exc}", file=sys.stderr)
            return 1
    except ConfigError as exc:
        print(f"hfpose-train: {exc}", file=sys.stderr)
        return 2
    finally:
        from hfpose.training.distributed import leave_process_group

        leave_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
