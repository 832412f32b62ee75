"""Where a training or evaluation process runs: its device, process group, precision, threads.

One process, or one of N under ``torchrun`` (WORLD_SIZE, LOCAL_RANK set): NCCL on CUDA, gloo on
the CPU. Shared by ``hfpose-train`` and ``hfpose-test``.
"""

from __future__ import annotations

import os

import numpy as np
import torch
import torch.distributed as dist

from hfpose.models.config import ConfigError
from hfpose.training.run.precision import cpu_bf16_is_native


def init_distributed(device: torch.device) -> tuple[int, int]:
    """(rank, world size). Under torchrun (WORLD_SIZE set) joins the process group: NCCL on CUDA,
    gloo on CPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size()


def leave_process_group() -> None:
    """Leave the torchrun process group, if this process joined one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


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


def configure_cpu(cpu_threads: int) -> None:
    """Flush subnormals and apply ``cpu_threads`` (0: torch's default), for training and
    evaluation on the CPU.

    Freshly initialised N(0, 0.001) weights produce subnormal floats, ~100x slower unflushed.
    On cores shared with other jobs, 2 OpenMP threads spin-waiting for each other ran 11x
    slower than 1 (benchmarks/bench_training.py --threads), hence ``cpu_threads``.
    """
    # numpy computes its float limits lazily and warns if subnormals are already flushed then
    np.finfo(np.float32), np.finfo(np.float64)
    torch.set_flush_denormal(True)
    if cpu_threads:
        torch.set_num_threads(cpu_threads)


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


def amp_name(dtype: torch.dtype | None) -> str:
    """fp32, bf16 or fp16: how logs and benchmarks name a :func:`select_amp` result."""
    return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]
