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
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader

from hfpose.models.checkpoint import save_checkpoint
from hfpose.models.config import ConfigError, model_heatmap_size, model_input_size
from hfpose.models.hf_hrnet import build_model
from hfpose.training.dataset.builder import build_dataset, dataset_layout
from hfpose.training.dataset.device_batches import DeviceBatches, DeviceCrops, uses_device_batches
from hfpose.training.dataset.samplers import StepBatchSampler
from hfpose.training.run.checkpointing import (
    BEST,
    LATEST,
    RunPosition,
    TrainingError,
    keep_epoch,
    load_training_state,
    plain,
    save_training_state,
    seed_everything,
)
from hfpose.training.run.distributed import (
    configure_cpu,
    init_distributed,
    select_amp,
    select_device,
)
from hfpose.training.run.load_from import calibration_batches, load_initial_weights
from hfpose.training.run.loaders import train_loader
from hfpose.training.run.losses import build_loss
from hfpose.training.run.prediction import predict_with_model
from hfpose.training.run.run_config import TrainConfig
from hfpose.training.run.run_log import ProgressBar, RunLog, run_summary
from hfpose.training.run.schedule import StepLrWithWarmup
from hfpose.training.run.stop_signals import StopRequested, StopSignals
from hfpose.training.run.time_budget import BudgetSchedule, TimeBudget
from hfpose.training.scoring.evaluation import (
    evaluate_dataset,
    heatmap_accuracy,
    normalise_metric_name,
)


class Trainer:
    """One training run of a loaded config into ``work_dir``.

    ``max_steps`` stops after that many optimiser steps in this invocation, saving a resumable
    checkpoint exactly as Ctrl+C does (time-boxed sessions, smoke tests). ``stop_signals`` are
    the handlers ``hfpose-train`` installed for the whole process (else :meth:`train` installs
    its own); ``resume_command`` is named in the line that says where a stopped run was saved.
    ``time_budget`` stops at the step boundary its clock allows and sets the learning rate
    (:mod:`hfpose.training.run.time_budget`) instead of the config's epoch schedule.
    """

    def __init__(
        self,
        cfg: dict[str, Any],
        work_dir: str | Path,
        resume: bool = False,
        max_steps: int | None = None,
        progress: bool = True,
        log: Callable[[str], None] | None = None,
        stop_signals: StopSignals | None = None,
        resume_command: str | None = None,
        time_budget: TimeBudget | None = None,
    ) -> None:
        self.config = config = TrainConfig.from_config(cfg)
        self.work_dir = Path(work_dir)
        self.max_steps = max_steps
        self.time_budget = time_budget
        self.stop_signals = stop_signals or StopSignals()
        self.resume_command = resume_command or "the same command with --resume"
        self.device = select_device(config.device)
        self.rank, self.world_size = init_distributed(self.device)
        self.is_main = self.rank == 0
        self.progress = progress and self.is_main
        self.amp_dtype = select_amp(config.amp, self.device)
        self.accumulate = config.step.cumulative_iters
        self.layout = dataset_layout(cfg)

        if self.device.type == "cpu":
            configure_cpu(config.cpu_threads)
        if self.is_main:
            self.work_dir.mkdir(parents=True, exist_ok=True)
        self.log = RunLog(self.work_dir, self.is_main, log)
        latest = self.work_dir / LATEST
        if not resume and latest.exists():
            raise TrainingError(
                f"{self.work_dir} already holds a checkpoint ({latest}); pass --resume to continue "
                "it or choose another --work-dir"
            )
        if resume and not latest.exists():
            raise TrainingError(f"--resume: no checkpoint {latest} to resume from")

        # Data first: a bad path or an empty set fails before anything is built or written.
        self.train_set = build_dataset(cfg, "train", config.seed)
        self.batch_size = config.loader.samples_per_gpu
        self.global_batch = self.batch_size * self.world_size * self.accumulate
        self.batch_sampler = StepBatchSampler(
            self.train_set,
            self.batch_size,
            self.world_size,
            self.rank,
            self.accumulate,
            config.seed,
            shuffle=config.loader.shuffle,
        )
        self.steps_per_epoch = self.batch_sampler.steps_per_epoch()
        # the data path on the device (data_preprocessor): crops held there, a host sync only
        # at log rows; the CPU loader's path syncs every step
        self.device_crops: DeviceCrops | None = None
        if uses_device_batches(cfg):
            self.device_crops = DeviceCrops(self.train_set, cfg, self.device)
        self._val_set = None

        seed_everything(config.seed)
        model = build_model(cfg).to(self.device)
        if config.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model  # the bare module: checkpoints hold its keys (backbone., keypoint_head.)
        if config.load_from and not resume:  # --resume continues its own weights instead
            batches = calibration_batches(self.train_set, seed=config.seed)
            self.log.message(
                load_initial_weights(model, config.load_from, model_input_size(cfg), batches)
            )
        self.loss_fn = build_loss(cfg["model"]["keypoint_head"])
        self.train_model: nn.Module = model
        if self.world_size > 1:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            self.train_model = nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
        if config.compile:
            self.train_model = torch.compile(self.train_model)

        reference = config.reference_global_batch or self.global_batch
        self.lr_scale = 1.0
        if config.auto_scale_lr and self.global_batch != reference:
            self.lr_scale = self.global_batch / reference
        base_lr = config.optimizer.lr * self.lr_scale
        optimizer_class = getattr(torch.optim, config.optimizer.type)  # one of OPTIMIZERS
        self.optimizer = optimizer_class(model.parameters(), lr=base_lr, **config.optimizer.options)
        self.schedule = StepLrWithWarmup(base_lr, config.lr)
        self.scaler = torch.amp.GradScaler(
            "cuda", enabled=self.amp_dtype == torch.float16 and self.device.type == "cuda"
        )

        self.position = RunPosition()
        self.last_loss = float("nan")
        self._saved_at: tuple[int, int, int] | None = None  # the position latest.pth holds
        if resume:
            self.position = load_training_state(
                latest, self.model, self.optimizer, self.scaler, self.device,
                model_input_size(cfg), self.global_batch,
            )  # fmt: skip
            self._saved_at = self._position_key()
        if time_budget is not None:
            self.schedule = BudgetSchedule(
                base_lr, time_budget, config.lr.warmup_iters, config.lr.warmup_ratio,
                first_step=self.position.global_step,
            )  # fmt: skip
        self.log.open_tables()
        for line in run_summary(self):
            self.log.message(line)

    # -- checkpoints -----------------------------------------------------------------------------

    def _meta(self) -> dict[str, Any]:
        cfg = self.config.raw
        return {
            "config_name": self.config.config_name,
            "config": plain(cfg),
            **self.position.meta(),
            "image_size": list(model_input_size(cfg)),
            "heatmap_size": list(model_heatmap_size(cfg)),
            "dataset_info": self.layout.to_dict(),
            "world_size": self.world_size,
            "global_batch": self.global_batch,
            "lr_scale": self.lr_scale,
            "torch_version": str(torch.__version__),
            "time": time.strftime("%Y-%m-%d %H:%M:%S"),
        }

    def save(self, path: Path) -> None:
        """Full trainer state; only rank 0 writes (all ranks hold the same weights)."""
        if self.is_main:
            save_training_state(
                path, self.model, self._meta(), self.optimizer, self.scaler, self.device
            )

    def _position_key(self) -> tuple[int, int, int]:
        return self.position.epoch, self.position.global_step, self.position.epoch_step

    def _save_latest(self) -> None:
        self.save(self.work_dir / LATEST)
        self._saved_at = self._position_key()

    def _save_epoch(self) -> None:
        if self.is_main:
            self._save_latest()
            keep_epoch(
                self.work_dir, self.position.epoch, self.config.total_epochs, self.config.checkpoint
            )

    # -- one step ----------------------------------------------------------------------------------

    def _autocast(self) -> Any:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _to_device(self, tensor: torch.Tensor, image: bool = False) -> torch.Tensor:
        tensor = tensor.to(self.device, non_blocking=True)
        if image and self.config.channels_last:
            tensor = tensor.contiguous(memory_format=torch.channels_last)
        return tensor

    def _step(self, micro_batches: list[dict[str, Any]], epoch: int) -> tuple[float, float]:
        """One optimiser step over ``accumulate`` micro-batches; returns (mean loss, acc_pose)."""
        loss, accuracy = self._gradients(micro_batches, epoch)
        with self.stop_signals.atomic():
            self._update()
        return loss, accuracy

    def _gradients(
        self, micro_batches: list[dict[str, Any]], epoch: int, sync: bool = True
    ) -> tuple[float, float]:
        """Forward and backward (the part a stop may cut); returns (mean loss, acc_pose), both
        NaN unless ``sync`` (reading them waits for the device)."""
        lr = self.schedule.lr(epoch, self.position.global_step)
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
            if last and sync:
                accuracy = heatmap_accuracy(
                    output.detach().float().cpu().numpy(), batch["target"].cpu().numpy(),
                    batch["target_weight"].cpu().numpy(),
                )  # fmt: skip
        if not sync:
            return float("nan"), accuracy
        mean_loss = torch.stack(losses).mean().reshape(1)
        if self.world_size > 1:
            dist.all_reduce(mean_loss)  # a NaN on any rank reaches every rank
            mean_loss /= self.world_size
        value = float(mean_loss.item())
        if not math.isfinite(value):
            position = self.position
            raise TrainingError(
                f"loss is {value} at epoch {epoch + 1}, step {position.epoch_step + 1} of the "
                f"epoch (global step {position.global_step + 1}); stopped without saving, the "
                f"last good checkpoint is {self.work_dir / LATEST}"
            )
        return value, accuracy

    def _update(self) -> None:
        """Apply the gradients and count the step: together or not at all (a stop waits)."""
        if self.config.step.grad_clip:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), **self.config.step.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.position.global_step += 1
        self.position.epoch_step += 1

    # -- loop --------------------------------------------------------------------------------------

    def _train_loader(self, workers: int | None = None) -> DataLoader:
        """The run's loader; ``workers`` overrides ``data.workers_per_gpu`` (benchmarks)."""
        if workers is None:
            workers = self.config.loader.workers_per_gpu
        if self.device_crops is not None:
            return DeviceBatches(self.device_crops, self.batch_sampler, len(self.train_set),
                                 self.config.seed)  # fmt: skip
        pin_memory = self.device.type == "cuda"
        return train_loader(self.train_set, self.batch_sampler, workers, pin_memory)

    def train(self) -> dict[str, Any]:
        """Run to ``total_epochs``; returns the last validation metrics (may be empty).

        Ctrl+C or SIGTERM stops it at once (a backward pass, one torch call, first returns),
        saves ``latest.pth`` (unless it already holds this very position) and raises
        :class:`StopRequested`."""
        with self.stop_signals.installed_for():
            return self._train()

    def _train(self) -> dict[str, Any]:
        metrics: dict[str, float] = {}
        steps_this_run = 0
        bar: ProgressBar | None = None
        try:
            loader = self._train_loader()
            while self.position.epoch < self.config.total_epochs:
                epoch = self.position.epoch
                self.batch_sampler.set_epoch(epoch, skip_steps=self.position.epoch_step)
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
                    if self.time_budget is not None:
                        self.time_budget.start()
                    sync = self.device_crops is None or self._log_due(1)
                    loss, accuracy = self._gradients(micro, epoch, sync)
                    micro = []
                    with self.stop_signals.atomic():  # the step and its log row, or neither
                        self._update()
                        samples += batch_samples
                        steps_this_run += 1
                        if sync:
                            self.last_loss = loss
                            self._log_step(epoch, loss, accuracy, samples, started, bar)
                    stop = self.max_steps is not None and steps_this_run >= self.max_steps
                    if stop and self.position.epoch_step < self.steps_per_epoch:
                        raise _MaxStepsReachedError
                    if self.time_budget is not None:
                        self.time_budget.step_done()
                        if self.time_budget.exhausted():
                            raise _BudgetReachedError
                if bar is not None:
                    bar.close()
                # validated before the epoch counts as done: a stop during validation saves
                # (epoch, last step), and --resume validates that epoch again
                if self._validation_due(epoch + 1):
                    metrics = self.validate(epoch + 1)
                with self.stop_signals.atomic():
                    self.position.epoch += 1
                    self.position.epoch_step = 0
                    self._save_epoch()
                if self.max_steps is not None and steps_this_run >= self.max_steps:
                    self.log.message(f"stopped after --max-steps at the end of epoch "
                                     f"{self.position.epoch}: continue with: "
                                     f"{self.resume_command}")  # fmt: skip
                    break
        except (StopRequested, _MaxStepsReachedError, _BudgetReachedError) as stop:
            if bar is not None:
                bar.close()  # the message below gets a line of its own
            self._save_on_stop(stop)
            if isinstance(stop, StopRequested):
                raise
        finally:
            self.log.flush()
        return metrics

    def _save_on_stop(self, stop: Exception) -> None:
        """Save where the run stands, unless ``latest.pth`` holds that very position already,
        and say where and how to continue."""
        position = self.position
        latest = self.work_dir / LATEST
        saved = f"{latest} already holds this step"
        if self._saved_at != self._position_key():
            self._save_latest()
            saved = f"saved {latest}"
        if isinstance(stop, StopRequested):
            reason = f"stopped by {stop.cause}"
        elif isinstance(stop, _BudgetReachedError):
            reason = "stopped at the end of the time budget"
        else:
            reason = "stopped after --max-steps"
        self.log.message(
            f"{reason} at epoch {position.epoch + 1}, step {position.epoch_step} of "
            f"{self.steps_per_epoch}: {saved}; continue with: {self.resume_command}"
        )

    def _progress_bar(self, epoch: int) -> ProgressBar | None:
        if not self.progress:
            return None
        return ProgressBar(
            epoch, self.config.total_epochs, self.steps_per_epoch, self.position.epoch_step
        )

    def _log_step(
        self,
        epoch: int,
        loss: float,
        accuracy: float,
        samples: int,
        started: float,
        bar: ProgressBar | None,
    ) -> None:
        if not self.is_main:
            return
        elapsed = max(time.perf_counter() - started, 1e-9)
        rate = samples / elapsed
        lr = self.optimizer.param_groups[0]["lr"]
        if bar is not None:
            remaining = (
                self.config.total_epochs - epoch
            ) * self.steps_per_epoch - self.position.epoch_step
            bar.update(loss, lr, rate, remaining * self.global_batch / max(rate, 1e-9))
        if self._log_due(0):
            self.log.step(epoch + 1, self.position.global_step, lr, loss, accuracy, rate)

    def _log_due(self, ahead: int) -> bool:
        """Whether the step ``ahead`` of the position gets a log row (every ``log_config.
        interval`` steps and at each epoch's end)."""
        step, epoch_step = self.position.global_step + ahead, self.position.epoch_step + ahead
        return step % self.config.log.interval == 0 or epoch_step == self.steps_per_epoch

    # -- validation --------------------------------------------------------------------------------

    def _validation_due(self, epoch: int) -> bool:
        """Whether the end of (1-based) ``epoch`` is validated."""
        interval = self.config.evaluation.interval
        if not self.config.loader.has_val or not interval:
            return False
        return epoch % interval == 0 or epoch == self.config.total_epochs

    def validate(self, epoch: int) -> dict[str, float]:
        """Score ``data.val`` at the end of (1-based) ``epoch`` with the config's metric (flip
        test as configured); keep the best."""
        cfg = self.config.raw
        if self._val_set is None:
            self._val_set = build_dataset(cfg, "val", self.config.seed)
        metric = normalise_metric_name(self.config.evaluation.metric)
        predictions = predict_with_model(
            self.model, self._val_set, cfg, self.device, self.amp_dtype, self.world_size,
            self.rank, self.config.channels_last,
        )  # fmt: skip
        metrics: dict[str, float] = {}
        if self.is_main:
            metrics = evaluate_dataset(
                metric, predictions, self._val_set, self.layout, cfg["data_cfg"], self.work_dir
            )
            with self.stop_signals.atomic():  # best.pth and the position's record of it
                self._record_validation(epoch, metrics)
        if self.world_size > 1:
            shared = [metrics]
            dist.broadcast_object_list(shared, src=0)
            metrics = shared[0]
        return metrics

    def _record_validation(self, epoch: int, metrics: dict[str, float]) -> None:
        self.log.validation(epoch, self.position.global_step, metrics)
        key = self.config.evaluation.save_best
        if not key:
            return
        if key not in metrics:
            raise ConfigError(f"evaluation.save_best {key!r} is not among {', '.join(metrics)}")
        best = self.position.best
        if not best or metrics[key] > best["value"]:
            self.position.best = {
                "metric": key,
                "value": metrics[key],
                "epoch": epoch,
            }
            # the epoch is validated before it counts as done: record it as done
            meta = {**self._meta(), "epoch": epoch, "epoch_step": 0}
            save_checkpoint(self.work_dir / BEST, self.model, meta)
            self.log.message(
                f"new best {key} {metrics[key]:.4g} at epoch {epoch}: {self.work_dir / BEST}"
            )


class _MaxStepsReachedError(Exception):
    """--max-steps reached (handled like Ctrl+C: save and stop)."""


class _BudgetReachedError(Exception):
    """The time budget's training part is spent (handled like Ctrl+C: save and stop)."""
