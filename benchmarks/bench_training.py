"""Does data loading keep up with the model? Samples/s of the training pipeline alone and of
full training steps (load + augment + forward + backward + Adam), as ``hfpose-train`` runs them.

    python benchmarks/bench_training.py hf_hrnet_18_coco_256x192 --workers 0 1 2 \
        --cfg-options data.train.ann_file=tests/data/coco/test_coco.json \
                      data.train.img_prefix=tests/data/coco

The default data is the repository's COCO fixture (full JPEG decode per person, the slowest
case); ``--data config`` uses the config's own ``data.train`` (e.g. crop caches). The
data pipeline keeps up when its samples/s with the workers the config uses is well above the
training step's.

``--data-path device`` measures the device data path (``data_preprocessor``,
:mod:`hfpose.training.dataset.device_batches`) on a config of crop caches: the seconds to decode the set
into device memory, batches cut there alone, and whole steps, timed over many steps with one
device sync at the end (what training at GPU speed is judged by):

    python benchmarks/bench_training.py lease/lease_config.yaml --data config \
        --data-path device --batch 256 --steps 30
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

FIXTURE_ENTRY = {
    "type": "TopDownCocoDataset",
    "ann_file": str(REPO / "tests/data/coco/test_coco.json"),
    "img_prefix": str(REPO / "tests/data/coco"),
    "sampling_ratio": 1,
}
# The fixture's 12 people drawn as one long epoch: as its own epoch, every step was a new epoch,
# i.e. a new DataLoader (a worker forked, nothing prefetched) and a batch of 12, not 16.
FIXTURE_EPOCH = 4096


def fixture_options() -> list[str]:
    return [
        f"data.train=[{json.dumps(FIXTURE_ENTRY)}]",
        f"data.train_samples_per_epoch={FIXTURE_EPOCH}",
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


def _synchronize(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_device_path(trainer, steps: int, warmup: int = 3) -> dict[str, float]:
    """Samples/s of batches cut on the device alone, then of whole steps fed by them; each
    timed from after ``warmup`` items to one device sync at the end (no per-step sync)."""
    rates = {}
    for name in ("data", "steps"):
        trainer.train_model.train()
        done, samples, started, epoch = 0, 0, None, 0
        while done < steps + warmup:
            trainer.batch_sampler.set_epoch(epoch)
            for batch in trainer._train_loader():
                if name == "steps":
                    trainer._gradients([batch], 0, sync=False)
                    trainer._update()
                done += 1
                if done == warmup:
                    _synchronize(trainer.device)
                    started = time.perf_counter()
                elif done > warmup:
                    samples += len(batch["img"])
                if done >= steps + warmup:
                    break
            epoch += 1
        _synchronize(trainer.device)
        rates[name] = round(samples / (time.perf_counter() - started), 1)
    return rates


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


class _TimedStep:
    """A pipeline step that adds its CPU time to ``totals[name]``."""

    def __init__(self, step, totals: dict[str, float]) -> None:
        self.step, self.totals, self.name = step, totals, type(step).__name__

    def __call__(self, results, rng):
        started = time.process_time()
        results = self.step(results, rng)
        self.totals[self.name] = self.totals.get(self.name, 0.0) + time.process_time() - started
        return results


def pipeline_ms(dataset, samples: int) -> dict[str, float]:
    """CPU milliseconds per sample of each pipeline step and of the whole item (this process).

    CPU time, not wall time: on cores shared with other jobs it still says what the work costs."""
    parts = getattr(dataset, "datasets", [dataset])
    totals: dict[str, float] = {}
    saved = [list(part.pipeline.steps) for part in parts]
    for part in parts:
        part.pipeline.steps = [_TimedStep(step, totals) for step in part.pipeline.steps]
    try:
        started = time.process_time()
        for i in range(samples):
            dataset[(1, (i * 7919) % len(dataset))]
        totals["whole sample"] = time.process_time() - started
    finally:
        for part, steps in zip(parts, saved):
            part.pipeline.steps = steps
    return {name: round(1000 * seconds / samples, 2) for name, seconds in totals.items()}


def step_parts_ms(trainer, batch, repeats: int) -> dict[str, float]:
    """CPU milliseconds (all torch threads) of each part of one optimiser step on a fixed batch
    (median after a warm-up step)."""
    import numpy as np

    from hfpose.training.scoring.evaluation import heatmap_accuracy

    model, optimizer = trainer.train_model, trainer.optimizer
    images = trainer._to_device(batch["img"], image=True)
    target, weight = batch["target"], batch["target_weight"]
    model.train()
    times: dict[str, list[float]] = {"forward": [], "loss+backward": [], "Adam": [], "acc_pose": []}
    for repeat in range(repeats + 1):
        t0 = time.process_time()
        optimizer.zero_grad(set_to_none=True)
        with trainer._autocast():
            output = model(images)
        t1 = time.process_time()
        trainer.loss_fn(output.float(), target, weight).backward()
        t2 = time.process_time()
        optimizer.step()
        t3 = time.process_time()
        heatmap_accuracy(
            output.detach().float().numpy(), target.numpy(), weight.numpy()
        )  # fmt: skip
        t4 = time.process_time()
        if repeat:
            for name, seconds in zip(times, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                times[name].append(seconds)
    return {name: round(1000 * float(np.median(v)), 1) for name, v in times.items()}


def loader_start_s(trainer, workers: int) -> float:
    """Seconds from building the epoch's DataLoader to its first batch (paid once per epoch)."""
    trainer.batch_sampler.set_epoch(0)
    started = time.perf_counter()
    loader = iter(trainer._train_loader(workers))
    next(loader)
    elapsed = time.perf_counter() - started
    del loader
    return elapsed


def interleaved_rates(trainer, steps: int, rounds: int, workers: list[int]) -> dict[str, dict]:
    """Whole steps fed by a fixed batch (no data loading at all) against the DataLoader with each
    worker count, alternating so that load changes hit all alike: the best round's samples/s
    (wall) and the main process's CPU ms per sample (the worker's own CPU is not in it)."""
    results: dict[str, dict] = {}
    trainer.batch_sampler.set_epoch(0)
    fixed = next(iter(trainer._train_loader()))

    def record(key: str, samples: int, wall: float, cpu: float) -> None:
        entry = results.setdefault(key, {"samples_per_s": 0.0, "main_cpu_ms_per_sample": 1e9})
        entry["samples_per_s"] = round(max(entry["samples_per_s"], samples / wall), 2)
        entry["main_cpu_ms_per_sample"] = round(
            min(entry["main_cpu_ms_per_sample"], 1000 * cpu / samples), 1
        )

    for _ in range(rounds):
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(steps):
            trainer._step([fixed], 0)
        samples = steps * len(fixed["img"])
        record("fixed batch", samples, time.perf_counter() - wall, time.process_time() - cpu)
        for count in workers:
            trainer.batch_sampler.set_epoch(0)
            loader = iter(trainer._train_loader(count))
            trainer._step([next(loader)], 0)  # the loader's start is loader_start_s's
            wall, cpu, samples = time.perf_counter(), time.process_time(), 0
            for _ in range(steps):
                batch = next(loader)
                trainer._step([batch], 0)
                samples += len(batch["img"])
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            record(f"DataLoader, {count} worker(s)", samples, wall, cpu)
            del loader
    return results


def alternating_cpu_seconds(
    trainer, variants: dict[str, tuple[dict, Any]], steps: int
) -> dict[str, list[float]]:
    """CPU seconds of one whole step per variant (a batch and an autocast dtype), alternating
    so that the machine's load falls on every variant alike; the first round warms up."""
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    for repeat in range(steps + 1):
        for name, (batch, amp_dtype) in variants.items():
            trainer.amp_dtype = amp_dtype
            started = time.process_time()
            trainer._step([batch], 0)
            if repeat:
                seconds[name].append(round(time.process_time() - started, 3))
    return seconds


def compare_amp(trainer, steps: int) -> dict[str, list[float]]:
    """CPU seconds of one whole step on a fixed batch, fp32 and bf16 autocast alternating."""
    import torch

    trainer.batch_sampler.set_epoch(0)
    batch = next(iter(trainer._train_loader()))
    return alternating_cpu_seconds(
        trainer, {"fp32": (batch, None), "bf16": (batch, torch.bfloat16)}, steps
    )


def compare_sizes(trainer, sizes: list[str], steps: int) -> dict[str, list[float]]:
    """CPU seconds of one whole step at each input size (HxW), alternating on one batch: what
    progressive resolution buys. The config's batch is resized, images and heatmaps alike."""
    import torch.nn.functional as F

    trainer.batch_sampler.set_epoch(0)
    batch = next(iter(trainer._train_loader()))
    stride = batch["img"].shape[-1] // batch["target"].shape[-1]
    resized = {}
    for size in sizes:
        height, width = (int(side) for side in size.lower().split("x"))
        sized_batch = {
            **batch,
            "img": F.interpolate(batch["img"], size=(height, width), mode="bilinear"),
            "target": F.interpolate(
                batch["target"], size=(height // stride, width // stride), mode="bilinear"
            ),
        }
        resized[size] = (sized_batch, trainer.amp_dtype)
    return alternating_cpu_seconds(trainer, resized, steps)


def breakdown(trainer, workers: list[int], steps: int, rounds: int) -> dict:
    """Where a training step's time goes, all measured in this one process."""
    trainer.batch_sampler.set_epoch(0)
    batch = next(iter(trainer._train_loader(0)))
    result = {
        "pipeline_ms_per_sample": pipeline_ms(trainer.train_set, 4 * len(batch["img"])),
        "step_parts_ms": step_parts_ms(trainer, batch, max(steps, 2)),
        "loader_start_s": {},
    }
    for count in workers:
        result["loader_start_s"][count] = round(loader_start_s(trainer, count), 2)
    result["samples_per_s"] = interleaved_rates(trainer, steps, rounds, workers)
    return result


def report(results: dict, json_path: Path | None) -> int:
    """Print the results as json (and write them to ``json_path``), with the closing load."""
    results["load_average_1min_end"] = os.getloadavg()[0]
    print(json.dumps(results, indent=1))
    if json_path:
        json_path.write_text(json.dumps(results, indent=2) + "\n")
    return 0


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
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="where a step's time goes: pipeline steps, forward/backward/Adam, loader start, and "
        "fixed-batch vs DataLoader-fed steps interleaved (instead of the plain measurements)",
    )
    parser.add_argument("--rounds", type=int, default=2, help="--breakdown: alternations")
    parser.add_argument(
        "--compare-amp",
        action="store_true",
        help="with --breakdown: also CPU seconds per step, fp32 and bf16 alternating",
    )
    parser.add_argument(
        "--compare-sizes",
        nargs="+",
        metavar="HxW",
        help="CPU seconds per step at these input sizes, alternating (e.g. 256x192 192x128; "
        "instead of the plain measurements)",
    )
    parser.add_argument(
        "--data-path",
        choices=("loader", "device"),
        default="loader",
        help="loader: DataLoader workers (default); device: crops held and augmented on the "
        "training device (data_preprocessor, crop caches only; --workers is not used)",
    )
    parser.add_argument("--cfg-options", nargs="+", default=[])
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)

    import torch

    from hfpose.models.config import load_config
    from hfpose.training.run.distributed import amp_name
    from hfpose.training.run.trainer import Trainer

    options = ["evaluation.interval=0", f"data.samples_per_gpu={args.batch}"]
    if args.threads:
        # through the config: the Trainer applies cpu_threads, which would override a bare
        # torch.set_num_threads (a config with cpu_threads: 2 ran --threads 1 on two threads)
        options.append(f"cpu_threads={args.threads}")
    if args.data == "fixture":
        options = [*fixture_options(), *options]
    results = {
        "config": args.config,
        "batch": args.batch,
        "cpus": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0],
        "data_samples_per_s": {},
    }
    with tempfile.TemporaryDirectory() as work_dir:
        if args.data_path == "device":
            options.append("data_preprocessor.type=DeviceBatchAugment")
            started = time.perf_counter()
            cfg = load_config(args.config, [*options, *args.cfg_options])
            trainer = Trainer(cfg, Path(work_dir) / "d", progress=False, log=lambda m: None)
            crops = trainer.device_crops
            results.update(
                data_path="device", device=str(trainer.device), amp=amp_name(trainer.amp_dtype),
                people=len(crops), device_image_gib=round(crops.nbytes / 2**30, 2),
                setup_s=round(time.perf_counter() - started, 1),
                compile=trainer.config.compile, channels_last=trainer.config.channels_last,
            )  # fmt: skip
            if trainer.device.type == "cuda":
                results["gpu"] = torch.cuda.get_device_name(trainer.device)
            rates = bench_device_path(trainer, args.steps)
            results["data_samples_per_s"] = rates["data"]
            results["train_samples_per_s"] = rates["steps"]
            return report(results, args.json)
        if args.compare_sizes:
            cfg = load_config(args.config, [*options, *args.cfg_options])
            trainer = Trainer(cfg, Path(work_dir) / "s", progress=False, log=lambda m: None)
            results.update(amp=amp_name(trainer.amp_dtype), torch_threads=torch.get_num_threads())
            results["cpu_s_per_step"] = compare_sizes(trainer, args.compare_sizes, args.steps)
            return report(results, args.json)
        if args.breakdown:
            cfg = load_config(args.config, [*options, *args.cfg_options])
            trainer = Trainer(cfg, Path(work_dir) / "b", progress=False, log=lambda m: None)
            amp = amp_name(trainer.amp_dtype)
            results.update(amp=amp, data=args.data, torch_threads=torch.get_num_threads())
            results["breakdown"] = breakdown(trainer, args.workers, args.steps, args.rounds)
            if args.compare_amp:
                results["cpu_s_per_step"] = compare_amp(trainer, args.steps)
            return report(results, args.json)
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
        amp = amp_name(trainer.amp_dtype)
        results["torch_threads"] = torch.get_num_threads()  # as the Trainer set them
        rate = bench_steps(trainer, args.steps)
        results["train_samples_per_s"] = round(rate, 2)
        results["train_workers"] = args.workers[-1]
        results["data"] = args.data
        results["amp"] = amp
        print(
            f"training steps ({amp}, channels_last={trainer.config.channels_last}, "
            f"{args.workers[-1]} worker(s)): {rate:.2f} samples/s"
        )
    results["load_average_1min_end"] = os.getloadavg()[0]
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
