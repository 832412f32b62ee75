"""``amp: auto`` on the CPU: bf16 autocast only where the CPU computes bf16 natively.

With AVX512-BF16 or AMX a bf16 training step is faster than fp32; without them (an AVX2-only
EPYC) PyTorch emulates bf16 and the step is several times slower, so the shipped
config cannot simply say bf16. The decision reads the CPU's flags in ``/proc/cpuinfo``; where
there is no such file (macOS, Windows) a short timed probe (fp32 vs bf16 forward + backward of a
small conv stack) decides, and its verdict is cached per CPU and torch version so later runs
skip it.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import torch

# x86 (AVX512-BF16, AMX) and Arm (FEAT_BF16, "bf16" in the Features line) native bf16 flags
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})
# bf16 must beat fp32 by this factor to be chosen by the probe (timing noise on shared cores)
PROBE_MIN_SPEEDUP = 1.1
CPUINFO = Path("/proc/cpuinfo")


def cpu_flags(cpuinfo: Path = CPUINFO) -> set[str] | None:
    """The CPU's feature flags from a ``/proc/cpuinfo`` layout file; None where it is absent."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return None
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            flags.update(value.split())
    return flags or None


def probe_bf16_speedup(repeats: int = 3) -> float:
    """fp32 time / bf16 time of one forward + backward of a small conv stack (>1: bf16 faster)."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(32, 64, 3, padding=1), torch.nn.BatchNorm2d(64), torch.nn.ReLU(),
        torch.nn.Conv2d(64, 64, 3, padding=1, groups=64), torch.nn.Conv2d(64, 32, 1),
    )  # fmt: skip
    x = torch.randn(8, 32, 64, 48)

    def step(dtype: torch.dtype | None) -> float:
        best = float("inf")
        for _ in range(repeats + 1):  # the first run warms up the kernels
            started = time.perf_counter()
            if dtype is None:
                net(x).square().mean().backward()
            else:
                with torch.autocast("cpu", dtype=dtype):
                    out = net(x)
                out.float().square().mean().backward()
            best = min(best, time.perf_counter() - started)
        return best

    fp32, bf16 = step(None), step(torch.bfloat16)
    return fp32 / max(bf16, 1e-9)


def _cache_path() -> Path:
    root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return root / "hfpose" / "bf16_probe.json"


def cpu_bf16_is_native(
    cpuinfo: Path = CPUINFO,
    probe: Callable[[], float] = probe_bf16_speedup,
    cache: Path | None = None,
) -> bool:
    """Whether ``amp: auto`` should train in bf16 on this CPU (see the module docstring)."""
    flags = cpu_flags(cpuinfo)
    if flags is not None:
        return bool(flags & NATIVE_BF16_FLAGS)
    cache = cache or _cache_path()
    key = f"{platform.processor() or platform.machine()} torch {torch.__version__}"
    try:
        verdicts = json.loads(cache.read_text())
    except (OSError, ValueError):
        verdicts = {}
    if key not in verdicts:
        speedup = probe()
        verdicts[key] = {"bf16": speedup >= PROBE_MIN_SPEEDUP, "speedup": round(speedup, 3)}
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            cache.write_text(json.dumps(verdicts, indent=1))
        except OSError:
            pass  # an unwritable cache only means probing again next time
    return bool(verdicts[key]["bf16"])
