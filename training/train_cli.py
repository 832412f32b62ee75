"""``hfpose-train CONFIG [--work-dir DIR] [--resume] [--cfg-options key=value ...]``.

Trains one of the paper's configs (or any config file) with the authors' recipe. Runs as one
process, or under ``torchrun --nproc_per_node=N`` as N DistributedDataParallel processes.
Ctrl+C or SIGTERM stops within seconds, saves a checkpoint that ``--resume`` continues exactly,
says where, and exits with 130 (Ctrl+C) or 143 (SIGTERM).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from hfpose.models.checkpoint import CheckpointError
from hfpose.models.config import ConfigError, load_config
from hfpose.training.stop_signals import StopRequested, StopSignals


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


def resume_command(argv: list[str]) -> str:
    """The command that continues this run: the same arguments plus ``--resume`` (under torchrun
    on one machine, its launch with as many processes)."""
    args = [a for a in argv if a != "--resume"] + ["--resume"]
    local = os.environ.get("LOCAL_WORLD_SIZE")
    if local and local != "1" and local == os.environ.get("WORLD_SIZE"):
        launcher = ["torchrun", f"--nproc_per_node={local}", "-m", "hfpose.training.train_cli"]
    else:
        launcher = ["hfpose-train"]
    return shlex.join(launcher + args)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    # installed before anything slow; once a stop began, stop signals are ignored to the end: a
    # further Ctrl+C while Python shuts down would otherwise end in a traceback or kill the process
    signals = StopSignals()
    signals.install()
    started = False
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
                progress=not args.no_progress, stop_signals=signals,
                resume_command=resume_command(argv),
            )  # fmt: skip
            started = True
            trainer.train()  # a stop saves and says where before it raises
        except (DatasetError, TrainingError, CheckpointError, FileNotFoundError, ValueError) as exc:
            print(f"hfpose-train: {exc}", file=sys.stderr)
            return 1
    except ConfigError as exc:
        print(f"hfpose-train: {exc}", file=sys.stderr)
        return 2
    except StopRequested as stop:
        if not started:
            print(f"hfpose-train: {stop.cause} while starting: nothing was trained or saved",
                  file=sys.stderr)  # fmt: skip
        return stop.exit_status
    finally:
        from hfpose.training.distributed import leave_process_group

        leave_process_group()
        if signals.requested is None:
            signals.uninstall()
        else:
            signals.ignore_until_exit()
    return 0


if __name__ == "__main__":
    sys.exit(main())
