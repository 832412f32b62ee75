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
from hfpose.training.run.stop_signals import StopRequested, StopSignals
from hfpose.training.run.time_budget import TimeBudget, default_reserve_s, finish_budget_run


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
    parser.add_argument(
        "--time-budget",
        type=float,
        metavar="MINUTES",
        help="train until this many minutes from now are nearly spent (the epoch count and lr "
        "steps give way to a warm-up and cosine over the budget), then validate and export "
        "WORK_DIR/final.onnx; budget_result.json says steps, samples/s and scores",
    )
    parser.add_argument(
        "--time-reserve",
        type=float,
        metavar="SECONDS",
        help="of the budget, kept for the last checkpoint, validation and export "
        "(default: a quarter of it, at most 120)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (logs only)")
    return parser


# total_epochs of a budgeted run: more than any budget holds, so the clock stops it.
BUDGET_EPOCHS = 1_000_000


def budget_summary(result: dict) -> str:
    """One line on what a budgeted run did and left."""
    rate = result["samples_per_s"]
    scores = ", ".join(f"{k} {v:.4g}" for k, v in result["validation"].items()) or "no data.val"
    return (
        f"time budget: {result['steps']} steps, {result['samples']} samples"
        f"{f' at {rate:.0f} samples/s' if rate else ''}; validation: {scores}; "
        f"{result['onnx']} (ONNX Runtime vs torch {result['onnx_parity']:.1e}); "
        f"finish {result['finish_s']} s of {result['reserve_s']:.0f} s kept, "
        f"{result['total_s']} s in all"
    )


def resume_command(argv: list[str]) -> str:
    """The command that continues this run: the same arguments plus ``--resume`` (under torchrun
    on one machine, its launch with as many processes)."""
    args = [a for a in argv if a != "--resume"] + ["--resume"]
    local = os.environ.get("LOCAL_WORLD_SIZE")
    if local and local != "1" and local == os.environ.get("WORLD_SIZE"):
        launcher = ["torchrun", f"--nproc_per_node={local}", "-m", "hfpose.training.run.train_cli"]
    else:
        launcher = ["hfpose-train"]
    return shlex.join(launcher + args)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args = parser.parse_args(argv)
    budget = None
    if args.time_budget is not None:  # the clock starts now: loading the data counts too
        if args.time_budget <= 0:
            parser.error("--time-budget must be a positive number of minutes")
        seconds = args.time_budget * 60
        reserve = default_reserve_s(seconds) if args.time_reserve is None else args.time_reserve
        if not 0 <= reserve < seconds:
            parser.error("--time-reserve must be at least 0 and less than the budget")
        budget = TimeBudget(seconds, reserve)

    # installed before anything slow; once a stop began, stop signals are ignored to the end: a
    # further Ctrl+C while Python shuts down would otherwise end in a traceback or kill the process
    signals = StopSignals()
    signals.install()
    started = False
    try:
        cfg = load_config(args.config, args.cfg_options)
        if args.load_from:
            cfg["load_from"] = args.load_from
        if budget is not None:  # the clock, not the epoch count, ends the run
            cfg["total_epochs"] = max(int(cfg.get("total_epochs", 1)), BUDGET_EPOCHS)
        work_dir = args.work_dir or Path("work_dirs") / cfg["config_name"]
        from hfpose.training.dataset.records import DatasetError
        from hfpose.training.run.checkpointing import TrainingError
        from hfpose.training.run.trainer import Trainer

        try:
            trainer = Trainer(
                cfg, work_dir, resume=args.resume, max_steps=args.max_steps,
                progress=not args.no_progress, stop_signals=signals,
                resume_command=resume_command(argv), time_budget=budget,
            )  # fmt: skip
            started = True
            trainer.train()  # a stop saves and says where before it raises
            if budget is not None:
                result = finish_budget_run(trainer)
                trainer.log.message(budget_summary(result))
                if not result["onnx_parity_ok"]:
                    return 1
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
        from hfpose.training.run.distributed import leave_process_group

        leave_process_group()
        if signals.requested is None:
            signals.uninstall()
        else:
            signals.ignore_until_exit()
    return 0


if __name__ == "__main__":
    sys.exit(main())
