"""What a training run reports: messages (console and ``train.log``), ``log.csv`` rows of the
training steps, ``val.csv`` rows of the validations, TensorBoard scalars when tensorboard is
installed, and the progress bar. Only the main process (rank 0) writes."""

from __future__ import annotations

import csv
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hfpose.training.run.distributed import amp_name

if TYPE_CHECKING:
    from hfpose.training.run.trainer import Trainer

TRAIN_FIELDS = ["epoch", "step", "lr", "loss", "acc_pose", "samples_per_s", "time"]


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


def duration(seconds: float) -> str:
    """``h:mm:ss``."""
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


class RunLog:
    """The reports of one run into ``work_dir``; a no-op on every rank but the main one."""

    def __init__(
        self, work_dir: Path, is_main: bool, echo: Callable[[str], None] | None = None
    ) -> None:
        self.work_dir = work_dir
        self.is_main = is_main
        self._echo = echo or print
        self._val_csv: CsvLog | None = None
        self._train_csv: CsvLog | None = None
        self._tensorboard: Any = None

    def open_tables(self) -> None:
        """Start (or, resumed, continue) ``log.csv`` and the TensorBoard log, once the run is
        set up: a run that fails to start leaves neither."""
        if self.is_main:
            self._train_csv = CsvLog(self.work_dir / "log.csv", TRAIN_FIELDS)
            self._tensorboard = _tensorboard(self.work_dir / "tensorboard")

    def message(self, text: str) -> None:
        if not self.is_main:
            return
        self._echo(text)
        with (self.work_dir / "train.log").open("a", encoding="utf-8") as f:
            f.write(time.strftime("%Y-%m-%d %H:%M:%S ") + text + "\n")

    def step(
        self, epoch: int, step: int, lr: float, loss: float, accuracy: float, rate: float
    ) -> None:
        """A ``log.csv`` row (and TensorBoard scalars) for optimiser step ``step``."""
        if self._train_csv is None:
            return
        self._train_csv.write(
            {
                "epoch": epoch,
                "step": step,
                "lr": f"{lr:.6g}",
                "loss": f"{loss:.6g}",
                "acc_pose": f"{accuracy:.4f}",
                "samples_per_s": f"{rate:.2f}",
                "time": time.strftime("%Y-%m-%d %H:%M:%S"),
            }
        )
        if self._tensorboard is not None:
            self._tensorboard.add_scalar("train/loss", loss, step)
            self._tensorboard.add_scalar("train/lr", lr, step)
            self._tensorboard.add_scalar("train/acc_pose", accuracy, step)

    def validation(self, epoch: int, step: int, metrics: dict[str, float]) -> None:
        """A message, a ``val.csv`` row and TensorBoard scalars for one validation."""
        if not self.is_main:
            return
        shown = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items())
        self.message(f"epoch {epoch} validation: {shown}")
        if self._val_csv is None:
            self._val_csv = CsvLog(self.work_dir / "val.csv", ["epoch", "step", *metrics])
        self._val_csv.write({"epoch": epoch, "step": step, **metrics})
        if self._tensorboard is not None:
            for key, value in metrics.items():
                self._tensorboard.add_scalar(f"val/{key}", value, epoch)

    def flush(self) -> None:
        if self._tensorboard is not None:
            self._tensorboard.flush()


class ProgressBar:
    """The epoch's tqdm bar on stderr with loss, lr, throughput and the run's ETA."""

    def __init__(self, epoch: int, total_epochs: int, steps_per_epoch: int, done: int) -> None:
        from tqdm import tqdm

        self._bar = tqdm(
            total=steps_per_epoch,
            initial=done,
            desc=f"epoch {epoch + 1}/{total_epochs}",
            dynamic_ncols=True,
            leave=False,
            file=sys.stderr,
        )

    def update(self, loss: float, lr: float, rate: float, eta_seconds: float) -> None:
        self._bar.set_postfix_str(
            f"loss {loss:.3g} lr {lr:.2e} {rate:.1f} samples/s ETA {duration(eta_seconds)}",
            refresh=False,
        )
        self._bar.update(1)

    def close(self) -> None:
        self._bar.close()


def run_summary(trainer: Trainer) -> list[str]:
    """The lines a run starts its log with: data, device, batch and learning rate, position,
    and what ends it (the epoch count, or the time budget and the device data path)."""
    config = trainer.config
    schedule = f"{config.total_epochs} epochs"
    if trainer.time_budget is not None:
        schedule = f"until {trainer.time_budget.budget_s / 60:g} minutes are nearly spent"
    data_path = ""
    if trainer.device_crops is not None:
        crops = trainer.device_crops
        data_path = f", {len(crops)} crops in device memory ({crops.nbytes / 2**30:.2f} GiB)"
    lines = [
        f"config {config.config_name}: {len(trainer.train_set)} training samples "
        f"({trainer.train_set.name}){data_path}, {trainer.steps_per_epoch} steps/epoch, "
        f"{schedule}; device {trainer.device}, {amp_name(trainer.amp_dtype)}, "
        f"{trainer.world_size} process(es)"
    ]
    lr = config.optimizer.lr
    reference = config.reference_global_batch or trainer.global_batch
    if trainer.lr_scale != 1.0:
        lines.append(
            f"global batch {trainer.global_batch} = {trainer.batch_size} per process x "
            f"{trainer.world_size} process(es) x {trainer.accumulate} accumulation step(s) "
            f"differs from the paper's {reference}: learning rate scaled linearly {lr:g} -> "
            f"{lr * trainer.lr_scale:g}"
        )
    else:
        lines.append(
            f"global batch {trainer.global_batch}, learning rate {lr * trainer.lr_scale:g}"
        )
    epoch, step = trainer.position.epoch, trainer.position.epoch_step
    if epoch or step:
        lines.append(f"resumed at epoch {epoch + 1}, step {step} of the epoch")
    return lines
