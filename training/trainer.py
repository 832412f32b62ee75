"""The training loop of the paper's recipe, on CPU or CUDA, single process or torchrun + DDP.

What it keeps from the authors (mmpose 0.x + mmcv): Adam, the step schedule by epoch with a
linear warm-up by iteration, the weighted heatmap MSE, checkpoints ``{'meta', 'state_dict',
'optimizer'}`` with the authors' key prefixes, validation every ``evaluation.interval`` epochs and
the best checkpoint by ``evaluation.save_best``.

What it adds: exact resume (model, optimiser, scaler, schedule position, all random states and
the position inside an interrupted epoch), a checkpoint on Ctrl+C, linear learning-rate scaling
when the global batch differs from the paper's 256, mixed precision (CUDA fp16/bf16, CPU bf16),
channels_last, gradient accumulation (``optimizer_config.cumulative_iters``), and a stop with
the step's number on a NaN loss that leaves the last good checkpoint untouched.
"""

from __future__ import annotations

import contextlib
import csv
import math
import os
import random
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from hfpose.models.checkpoint import check_compatible, read_checkpoint, save_checkpoint
from hfpose.models.config import ConfigError, model_heatmap_size, model_input_size
from hfpose.models.hf_hrnet import build_model
from hfpose.training.datasets import StepBatchSampler, build_dataset, dataset_layout
from hfpose.training.evaluation import (
    evaluate_dataset,
    heatmap_accuracy,
    normalise_metric_name,
    predict_keypoints,
    unique_predictions,
)
from hfpose.training.load_from import calibration_batches, load_initial_weights
from hfpose.training.losses import build_loss
from hfpose.training.precision import cpu_bf16_is_native

LATEST = "latest.pth"
BEST = "best.pth"


class TrainingError(RuntimeError):
    """Training cannot go on; the message says why and what was kept."""


# ------------------------------------------------------------------------------------------------
# Process group, device, precision


def init_distributed(device: torch.device) -> tuple[int, int]:
    """(rank, world size). Under torchrun (WORLD_SIZE set) joins the process group: NCCL on CUDA,
    gloo on CPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size()


def select_device(name: str = "auto") -> torch.device:
    """``auto`` takes this process's GPU (LOCAL_RANK under torchrun) when CUDA exists."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        name = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r} asked for but CUDA is not available here")
        torch.cuda.set_device(device)
    return device


def configure_cpu(cfg: dict[str, Any]) -> None:
    """Flush subnormals and apply ``cpu_threads``, for training and evaluation on the CPU.

    Freshly initialised N(0, 0.001) weights produce subnormal floats, ~100x slower unflushed.
    On cores shared with other jobs, 2 OpenMP threads spin-waiting for each other ran 11x
    slower than 1 (benchmarks/bench_training.py --threads), hence ``cpu_threads``.
    """
    # numpy computes its float limits lazily and warns if subnormals are already flushed then
    np.finfo(np.float32), np.finfo(np.float64)
    torch.set_flush_denormal(True)
    threads = int(cfg.get("cpu_threads", 0) or 0)
    if threads:
        torch.set_num_threads(threads)


def select_amp(mode: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype for ``amp`` = auto | none | fp16 | bf16 on this device (None = fp32)."""
    mode = str(mode).lower()
    if mode in ("none", "fp32", "false", "off"):
        return None
    if mode == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.bfloat16 if cpu_bf16_is_native() else None
    if mode == "bf16":
        return torch.bfloat16
    if mode == "fp16":
        if device.type != "cuda":
            raise ConfigError("amp: fp16 needs CUDA; on the CPU use bf16")
        return torch.float16
    raise ConfigError(f"amp must be auto, none, fp16 or bf16, got {mode!r}")


# ------------------------------------------------------------------------------------------------
# Schedule


class StepLrWithWarmup:
    """mmcv's ``policy: step`` with ``warmup: linear``: lr x gamma at each epoch in ``steps``;
    during the first ``warmup_iters`` iterations the lr rises linearly from warmup_ratio x lr."""

    def __init__(
        self,
        base_lr: float,
        steps: list[int],
        gamma: float = 0.1,
        warmup: str | None = "linear",
        warmup_iters: int = 500,
        warmup_ratio: float = 0.001,
    ) -> None:
        if warmup not in (None, "linear"):
            raise ConfigError(f"lr_config.warmup {warmup!r} is not supported (linear or null)")
        self.base_lr = base_lr
        self.steps = sorted(int(s) for s in steps)
        self.gamma = gamma
        self.warmup_iters = int(warmup_iters) if warmup else 0
        self.warmup_ratio = warmup_ratio

    @classmethod
    def from_config(cls, lr_cfg: dict[str, Any], base_lr: float) -> StepLrWithWarmup:
        if lr_cfg.get("policy", "step") != "step":
            raise ConfigError(
                f"lr_config.policy {lr_cfg.get('policy')!r}: only 'step' is supported"
            )
        steps = lr_cfg.get("step", [])
        steps = [steps] if isinstance(steps, int) else list(steps)
        return cls(
            base_lr,
            steps,
            float(lr_cfg.get("gamma", 0.1)),
            lr_cfg.get("warmup"),
            int(lr_cfg.get("warmup_iters", 0)),
            float(lr_cfg.get("warmup_ratio", 0.1)),
        )

    def lr(self, epoch: int, iteration: int) -> float:
        """Learning rate of global ``iteration`` inside 0-based ``epoch``."""
        regular = self.base_lr * self.gamma ** sum(epoch >= s for s in self.steps)
        if iteration < self.warmup_iters:
            k = (1 - iteration / self.warmup_iters) * (1 - self.warmup_ratio)
            return regular * (1 - k)
        return regular


# ------------------------------------------------------------------------------------------------
# Random states as plain types and tensors, so checkpoints load with weights_only=True


def capture_rng_state(device: torch.device) -> dict[str, Any]:
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": [version, list(internal), gauss],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "torch": torch.get_rng_state(),
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any], device: torch.device) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _worker_init(_worker_id: int) -> None:
    """Workers do one sample at a time: extra torch threads only fight the model."""
    torch.set_num_threads(1)


def _serial_opencv() -> None:
    """Stop OpenCV's thread pool before DataLoader workers fork.

    A child forked while the parent's pool exists inherits the pool's state but not its threads,
    and its first parallel cv2 call (warpAffine) waits for them forever: seen as a hang of the
    first batch whenever the main process had warped an image before (``workers_per_gpu: 0``
    validation, a benchmark). Workers crop one person at a time, so one thread is all they need.
    """
    import cv2

    cv2.setNumThreads(1)


def _plain(value: Any) -> Any:
    """Config values as plain Python types (weights_only checkpoints accept nothing else)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


# ------------------------------------------------------------------------------------------------
# Logging


class CsvLog:
    """Append rows to a CSV file, writing the header once (resumed runs keep appending)."""

    def __init__(self, path: Path, fields: list[str]) -> None:
        self.path = path
        self.fields = fields
        if not path.exists() or path.stat().st_size == 0:
            with path.open("w", newline="") as f:
                csv.DictWriter(f, fields).writeheader()

    def write(self, row: dict[str, Any]) -> None:
        with self.path.open("a", newline="") as f:
            csv.DictWriter(f, self.fields, extrasaction="ignore").writerow(row)


def _tensorboard(log_dir: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional
        return None
    return SummaryWriter(str(log_dir))


# ------------------------------------------------------------------------------------------------
# The trainer


class Trainer:
    """One training run of a loaded config into ``work_dir``.

    ``max_steps`` stops after that many optimiser steps in this invocation, saving a resumable
    checkpoint exactly as Ctrl+C does (time-boxed sessions, smoke tests).
    """

    def __init__(
        self,
        cfg: dict[str, Any],
        work_dir: str | Path,
        resume: bool = False,
        max_steps: int | None = None,
        progress: bool = True,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.cfg = cfg
        self.work_dir = Path(work_dir)
        self.max_steps = max_steps
        self.device = select_device(str(cfg.get("device", "auto")))
        self.rank, self.world_size = init_distributed(self.device)
        self.is_main = self.rank == 0
        self.progress = progress and self.is_main
        self._log_fn = log or print
        self.amp_dtype = select_amp(cfg.get("amp", "auto"), self.device)
        self.seed = int(cfg.get("seed", 0))
        self.accumulate = int(cfg.get("optimizer_config", {}).get("cumulative_iters", 1) or 1)
        self.total_epochs = int(cfg["total_epochs"])
        self.layout = dataset_layout(cfg)

        if self.device.type == "cpu":
            configure_cpu(cfg)
        if self.is_main:
            self.work_dir.mkdir(parents=True, exist_ok=True)
        latest = self.work_dir / LATEST
        if not resume and latest.exists():
            raise TrainingError(
                f"{self.work_dir} already holds a checkpoint ({latest}); pass --resume to continue "
                "it or choose another --work-dir"
            )
        if resume and not latest.exists():
            raise TrainingError(f"--resume: no checkpoint {latest} to resume from")

        # Data first: a bad path or an empty set fails before anything is built or written.
        self.train_set = build_dataset(cfg, "train", self.seed)
        self.batch_size = int(cfg["data"]["samples_per_gpu"])
        self.global_batch = self.batch_size * self.world_size * self.accumulate
        self.batch_sampler = StepBatchSampler(
            self.train_set,
            self.batch_size,
            self.world_size,
            self.rank,
            self.accumulate,
            self.seed,
            shuffle=bool(cfg["data"].get("shuffle", True)),
        )
        self.steps_per_epoch = self.batch_sampler.steps_per_epoch()
        self.eval_cfg = cfg.get("evaluation", {})
        self.eval_interval = int(self.eval_cfg.get("interval", 0) or 0)
        self._val_set = None

        seed_everything(self.seed)
        model = build_model(cfg).to(self.device)
        self.channels_last = bool(cfg.get("channels_last", True))
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model  # the bare module: checkpoints hold its keys (backbone., keypoint_head.)
        if cfg.get("load_from") and not resume:  # --resume continues its own weights instead
            batches = calibration_batches(self.train_set, seed=self.seed)
            self.log(load_initial_weights(model, cfg["load_from"], model_input_size(cfg), batches))
        self.loss_fn = build_loss(cfg["model"]["keypoint_head"])
        self.train_model: nn.Module = model
        if self.world_size > 1:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            self.train_model = nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
        if cfg.get("compile"):
            self.train_model = torch.compile(self.train_model)

        opt_cfg = dict(cfg["optimizer"])
        kind = opt_cfg.pop("type", "Adam")
        reference = int(cfg.get("reference_global_batch", self.global_batch))
        self.lr_scale = 1.0
        if cfg.get("auto_scale_lr", True) and self.global_batch != reference:
            self.lr_scale = self.global_batch / reference
        base_lr = float(opt_cfg.pop("lr")) * self.lr_scale
        optimizers = {"Adam": torch.optim.Adam, "AdamW": torch.optim.AdamW}
        if kind not in optimizers:
            raise ConfigError(f"optimizer.type {kind!r}: supported are {', '.join(optimizers)}")
        self.optimizer = optimizers[kind](model.parameters(), lr=base_lr, **opt_cfg)
        self.schedule = StepLrWithWarmup.from_config(cfg["lr_config"], base_lr)
        self.grad_clip = cfg.get("optimizer_config", {}).get("grad_clip")
        self.scaler = torch.amp.GradScaler(
            "cuda", enabled=self.amp_dtype == torch.float16 and self.device.type == "cuda"
        )

        self.epoch = 0  # epochs completed
        self.global_step = 0
        self.epoch_step = 0  # steps done inside the current (interrupted) epoch
        self.best: dict[str, Any] = {}
        self.last_loss = float("nan")
        if resume:
            self._load(latest)

        if self.is_main:
            self.train_csv = CsvLog(
                self.work_dir / "log.csv",
                ["epoch", "step", "lr", "loss", "acc_pose", "samples_per_s", "time"],
            )
            self.val_csv: CsvLog | None = None
            self.tensorboard = _tensorboard(self.work_dir / "tensorboard")
        self._announce()

    # -- logging ---------------------------------------------------------------------------------

    def log(self, message: str) -> None:
        if not self.is_main:
            return
        self._log_fn(message)
        with (self.work_dir / "train.log").open("a", encoding="utf-8") as f:
            f.write(time.strftime("%Y-%m-%d %H:%M:%S ") + message + "\n")

    def _announce(self) -> None:
        amp = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.amp_dtype]
        self.log(
            f"config {self.cfg.get('config_name')}: {len(self.train_set)} training samples "
            f"({self.train_set.name}), {self.steps_per_epoch} steps/epoch, {self.total_epochs} "
            f"epochs; device {self.device}, {amp}, {self.world_size} process(es)"
        )
        lr = float(self.cfg["optimizer"]["lr"])
        reference = int(self.cfg.get("reference_global_batch", self.global_batch))
        if self.lr_scale != 1.0:
            self.log(
                f"global batch {self.global_batch} = {self.batch_size} per process x "
                f"{self.world_size} process(es) x {self.accumulate} accumulation step(s) differs "
                f"from the paper's {reference}: learning rate scaled linearly {lr:g} -> "
                f"{lr * self.lr_scale:g}"
            )
        else:
            self.log(f"global batch {self.global_batch}, learning rate {lr * self.lr_scale:g}")
        if self.epoch or self.epoch_step:
            self.log(f"resumed at epoch {self.epoch + 1}, step {self.epoch_step} of the epoch")

    # -- checkpoints -----------------------------------------------------------------------------

    def _meta(self) -> dict[str, Any]:
        return {
            "config_name": self.cfg.get("config_name"),
            "config": _plain(self.cfg),
            "epoch": self.epoch,
            "iter": self.global_step,
            "epoch_step": self.epoch_step,
            "image_size": list(model_input_size(self.cfg)),
            "heatmap_size": list(model_heatmap_size(self.cfg)),
            "dataset_info": self.layout.to_dict(),
            "world_size": self.world_size,
            "global_batch": self.global_batch,
            "lr_scale": self.lr_scale,
            "best": dict(self.best),
            "torch_version": str(torch.__version__),
            "time": time.strftime("%Y-%m-%d %H:%M:%S"),
        }

    def save(self, path: Path) -> None:
        """Full trainer state; only rank 0 writes (all ranks hold the same weights)."""
        if not self.is_main:
            return
        save_checkpoint(
            path,
            self.model,
            self._meta(),
            optimizer=self.optimizer.state_dict(),
            scaler=self.scaler.state_dict(),
            rng=capture_rng_state(self.device),
        )

    def _save_epoch(self) -> None:
        if not self.is_main:
            return
        latest = self.work_dir / LATEST
        self.save(latest)
        interval = int(self.cfg.get("checkpoint_config", {}).get("interval", 1) or 1)
        if self.epoch % interval == 0 or self.epoch == self.total_epochs:
            kept = self.work_dir / f"epoch_{self.epoch}.pth"
            kept.unlink(missing_ok=True)
            try:
                os.link(latest, kept)
            except OSError:
                shutil.copyfile(latest, kept)
            self._prune_epochs()

    def _prune_epochs(self) -> None:
        keep = int(self.cfg.get("checkpoint_config", {}).get("max_keep_ckpts", -1) or -1)
        if keep <= 0:
            return
        epochs = sorted((int(p.stem.split("_")[1]), p) for p in self.work_dir.glob("epoch_*.pth"))
        for _, path in epochs[:-keep]:
            path.unlink(missing_ok=True)

    def _load(self, path: Path) -> None:
        checkpoint = read_checkpoint(path)
        meta = checkpoint.get("meta", {})
        if "optimizer" not in checkpoint or "rng" not in checkpoint:
            raise TrainingError(f"{path} has no trainer state (optimizer, rng): cannot resume it")
        problems = check_compatible(self.model, checkpoint, model_input_size(self.cfg))
        if problems:
            raise TrainingError(
                f"--resume: {path} does not fit this config: " + "; ".join(problems)
            )
        self.model.load_state_dict(checkpoint["state_dict"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.scaler.load_state_dict(checkpoint.get("scaler", {}))
        self.epoch = int(meta["epoch"])
        self.global_step = int(meta["iter"])
        self.epoch_step = int(meta.get("epoch_step", 0))
        self.best = dict(meta.get("best", {}))
        if int(meta.get("global_batch", self.global_batch)) != self.global_batch:
            raise TrainingError(
                f"{path} was trained with global batch {meta['global_batch']}, this run has "
                f"{self.global_batch}: the data order and schedule would not continue; resume "
                "with the same GPUs x samples_per_gpu x cumulative_iters"
            )
        restore_rng_state(checkpoint["rng"], self.device)

    # -- one step ----------------------------------------------------------------------------------

    def _autocast(self) -> Any:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _to_device(self, tensor: torch.Tensor, image: bool = False) -> torch.Tensor:
        tensor = tensor.to(self.device, non_blocking=True)
        if image and self.channels_last:
            tensor = tensor.contiguous(memory_format=torch.channels_last)
        return tensor

    def _step(self, micro_batches: list[dict[str, Any]], epoch: int) -> tuple[float, float]:
        """One optimiser step over ``accumulate`` micro-batches; returns (mean loss, acc_pose)."""
        lr = self.schedule.lr(epoch, self.global_step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        losses = []
        accuracy = float("nan")
        for i, batch in enumerate(micro_batches):
            last = i == len(micro_batches) - 1
            sync = contextlib.nullcontext()
            if not last and isinstance(self.train_model, nn.parallel.DistributedDataParallel):
                sync = self.train_model.no_sync()
            with sync:
                images = self._to_device(batch["img"], image=True)
                target = self._to_device(batch["target"])
                weight = self._to_device(batch["target_weight"])
                with self._autocast():
                    output = self.train_model(images)
                loss = self.loss_fn(output.float(), target, weight)
                self.scaler.scale(loss / len(micro_batches)).backward()
            losses.append(loss.detach())
            if last:
                accuracy = heatmap_accuracy(
                    output.detach().float().cpu().numpy(), batch["target"].numpy(),
                    batch["target_weight"].numpy(),
                )  # fmt: skip
        mean_loss = torch.stack(losses).mean().reshape(1)
        if self.world_size > 1:
            dist.all_reduce(mean_loss)  # a NaN on any rank reaches every rank
            mean_loss /= self.world_size
        value = float(mean_loss.item())
        if not math.isfinite(value):
            raise TrainingError(
                f"loss is {value} at epoch {epoch + 1}, step {self.epoch_step + 1} of the epoch "
                f"(global step {self.global_step + 1}); stopped without saving, the last good "
                f"checkpoint is {self.work_dir / LATEST}"
            )
        if self.grad_clip:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), **self.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.global_step += 1
        self.epoch_step += 1
        return value, accuracy

    # -- loop --------------------------------------------------------------------------------------

    def _train_loader(self) -> DataLoader:
        workers = int(self.cfg["data"].get("workers_per_gpu", 2))
        if workers:
            _serial_opencv()
        return DataLoader(
            self.train_set,
            batch_sampler=self.batch_sampler,
            num_workers=workers,
            pin_memory=self.device.type == "cuda",
            worker_init_fn=_worker_init if workers else None,
            # one loader serves every epoch (set_epoch reorders its batch sampler): a new one
            # per epoch forked a worker and refilled the prefetch queue, 2 s measured per epoch
            persistent_workers=bool(workers),
            prefetch_factor=4 if workers else None,
        )

    def train(self) -> dict[str, Any]:
        """Run to ``total_epochs``; returns the last validation metrics (may be empty)."""
        metrics: dict[str, float] = {}
        steps_this_run = 0
        loader = self._train_loader()
        try:
            while self.epoch < self.total_epochs:
                epoch = self.epoch
                self.batch_sampler.set_epoch(epoch, skip_steps=self.epoch_step)
                self.train_model.train()
                bar = self._progress_bar(epoch)
                started = time.perf_counter()
                samples = 0
                micro: list[dict[str, Any]] = []
                for batch in loader:
                    micro.append(batch)
                    if len(micro) < self.accumulate:
                        continue
                    batch_samples = sum(len(b["img"]) for b in micro) * self.world_size
                    loss, accuracy = self._step(micro, epoch)
                    micro = []
                    samples += batch_samples
                    steps_this_run += 1
                    self.last_loss = loss
                    self._log_step(epoch, loss, accuracy, samples, started, bar)
                    stop = self.max_steps is not None and steps_this_run >= self.max_steps
                    if stop and self.epoch_step < self.steps_per_epoch:
                        raise _MaxStepsReachedError
                if bar is not None:
                    bar.close()
                self.epoch += 1
                self.epoch_step = 0
                if self._validation_due():
                    metrics = self.validate()
                self._save_epoch()
                if self.max_steps is not None and steps_this_run >= self.max_steps:
                    self.log(f"stopped after --max-steps at the end of epoch {self.epoch}: "
                             f"continue with --resume")  # fmt: skip
                    break
        except (KeyboardInterrupt, _MaxStepsReachedError) as stop:
            self.save(self.work_dir / LATEST)
            reason = (
                "stopped after --max-steps"
                if isinstance(stop, _MaxStepsReachedError)
                else "interrupted"
            )
            self.log(
                f"{reason} at epoch {self.epoch + 1}, step {self.epoch_step}: saved "
                f"{self.work_dir / LATEST}; continue with --resume"
            )
            if isinstance(stop, KeyboardInterrupt):
                raise
        finally:
            if self.is_main and self.tensorboard is not None:
                self.tensorboard.flush()
        return metrics

    def _progress_bar(self, epoch: int) -> Any:
        if not self.progress:
            return None
        from tqdm import tqdm

        return tqdm(
            total=self.steps_per_epoch,
            initial=self.epoch_step,
            desc=f"epoch {epoch + 1}/{self.total_epochs}",
            dynamic_ncols=True,
            leave=False,
            file=sys.stderr,
        )

    def _log_step(
        self, epoch: int, loss: float, accuracy: float, samples: int, started: float, bar: Any
    ) -> None:
        if not self.is_main:
            return
        elapsed = max(time.perf_counter() - started, 1e-9)
        rate = samples / elapsed
        lr = self.optimizer.param_groups[0]["lr"]
        if bar is not None:
            remaining = (self.total_epochs - epoch) * self.steps_per_epoch - self.epoch_step
            eta = remaining * self.global_batch / max(rate, 1e-9)
            bar.set_postfix_str(
                f"loss {loss:.3g} lr {lr:.2e} {rate:.1f} samples/s ETA {_duration(eta)}",
                refresh=False,
            )
            bar.update(1)
        interval = int(self.cfg.get("log_config", {}).get("interval", 50) or 50)
        if self.global_step % interval == 0 or self.epoch_step == self.steps_per_epoch:
            row = {
                "epoch": epoch + 1,
                "step": self.global_step,
                "lr": f"{lr:.6g}",
                "loss": f"{loss:.6g}",
                "acc_pose": f"{accuracy:.4f}",
                "samples_per_s": f"{rate:.2f}",
                "time": time.strftime("%Y-%m-%d %H:%M:%S"),
            }
            self.train_csv.write(row)
            if self.tensorboard is not None:
                self.tensorboard.add_scalar("train/loss", loss, self.global_step)
                self.tensorboard.add_scalar("train/lr", lr, self.global_step)
                self.tensorboard.add_scalar("train/acc_pose", accuracy, self.global_step)

    # -- validation --------------------------------------------------------------------------------

    def _validation_due(self) -> bool:
        if "val" not in self.cfg.get("data", {}) or not self.eval_interval:
            return False
        return self.epoch % self.eval_interval == 0 or self.epoch == self.total_epochs

    def validate(self) -> dict[str, float]:
        """Score ``data.val`` with the config's metric (flip test as configured); keep the best."""
        if self._val_set is None:
            self._val_set = build_dataset(self.cfg, "val", self.seed)
        metric = normalise_metric_name(str(self.eval_cfg.get("metric", "mAP")))
        predictions = predict_with_model(
            self.model, self._val_set, self.cfg, self.device, self.amp_dtype, self.world_size,
            self.rank, self.channels_last,
        )  # fmt: skip
        metrics: dict[str, float] = {}
        if self.is_main:
            metrics = evaluate_dataset(
                metric, predictions, self._val_set, self.layout, self.cfg["data_cfg"],
                self.work_dir,
            )  # fmt: skip
            self._record_validation(metrics)
        if self.world_size > 1:
            shared = [metrics]
            dist.broadcast_object_list(shared, src=0)
            metrics = shared[0]
        return metrics

    def _record_validation(self, metrics: dict[str, float]) -> None:
        shown = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items())
        self.log(f"epoch {self.epoch} validation: {shown}")
        if self.val_csv is None:
            self.val_csv = CsvLog(self.work_dir / "val.csv", ["epoch", "step", *metrics])
        self.val_csv.write({"epoch": self.epoch, "step": self.global_step, **metrics})
        if self.tensorboard is not None:
            for key, value in metrics.items():
                self.tensorboard.add_scalar(f"val/{key}", value, self.epoch)
        key = self.eval_cfg.get("save_best")
        if not key:
            return
        if key not in metrics:
            raise ConfigError(f"evaluation.save_best {key!r} is not among {', '.join(metrics)}")
        if not self.best or metrics[key] > self.best["value"]:
            self.best = {"metric": key, "value": metrics[key], "epoch": self.epoch}
            save_checkpoint(self.work_dir / BEST, self.model, self._meta())
            self.log(
                f"new best {key} {metrics[key]:.4g} at epoch {self.epoch}: {self.work_dir / BEST}"
            )


class _MaxStepsReachedError(Exception):
    """--max-steps reached (handled like Ctrl+C: save and stop)."""


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


def predict_with_model(
    model: nn.Module,
    dataset: Any,
    cfg: dict[str, Any],
    device: torch.device,
    amp_dtype: torch.dtype | None = None,
    world_size: int = 1,
    rank: int = 0,
    channels_last: bool = False,
) -> dict[str, np.ndarray]:
    """Keypoints of every sample of ``dataset`` (each process a shard, gathered on all)."""
    test_cfg = cfg["model"].get("test_cfg", {})
    batch_size = int(cfg["data"].get("val_dataloader", {}).get("samples_per_gpu", 32))
    sampler = None
    if world_size > 1:
        sampler = DistributedSampler(dataset, world_size, rank, shuffle=False)
    workers = int(cfg["data"].get("workers_per_gpu", 2))
    if workers:
        _serial_opencv()
    loader = DataLoader(
        dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
        worker_init_fn=_worker_init if workers else None,
    )  # fmt: skip
    was_training = model.training
    model.eval()

    def heatmaps(images: np.ndarray) -> np.ndarray:
        batch = torch.from_numpy(images).to(device)
        if channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        context = (
            torch.autocast(device.type, dtype=amp_dtype) if amp_dtype else contextlib.nullcontext()
        )
        with torch.inference_mode(), context:
            return model(batch).float().cpu().numpy()

    try:
        predictions = predict_keypoints(
            heatmaps,
            ({k: (v.numpy() if torch.is_tensor(v) else v) for k, v in b.items()} for b in loader),
            dataset_layout(cfg).flip_pairs,
            flip_test=bool(test_cfg.get("flip_test", True)),
            shift_heatmap=bool(test_cfg.get("shift_heatmap", True)),
            use_dark=test_cfg.get("post_process", "default") == "unbiased",
        )
    finally:
        model.train(was_training)
    if world_size > 1:
        gathered: list[Any] = [None] * world_size
        dist.all_gather_object(gathered, predictions)
        predictions = {k: np.concatenate([g[k] for g in gathered]) for k in predictions}
    return unique_predictions(predictions)
