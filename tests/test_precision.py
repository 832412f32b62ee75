"""``amp: auto`` on the CPU: bf16 only with native bf16 (flags, or a cached timed probe).

The CPUs this machine is not (AVX2-only EPYC, AMX Xeon, Arm, no /proc/cpuinfo) are given as
cpuinfo files in their real layout; the probe runs for real where the test says so.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from hfpose.models.config import load_config
from hfpose.training.run.distributed import select_amp
from hfpose.training.run.precision import cpu_bf16_is_native, cpu_flags, probe_bf16_speedup

AVX2_EPYC = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7B12
flags\t\t: fpu vme sse sse2 ssse3 sse4_1 sse4_2 avx f16c avx2 fma bmi2
"""
AVX512_BF16_EPYC = AVX2_EPYC.replace("bmi2", "bmi2 avx512f avx512_vnni avx512_bf16")
AMX_XEON = AVX2_EPYC.replace("bmi2", "bmi2 avx512f amx_bf16 amx_tile amx_int8")
ARM_BF16 = "processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\nCPU implementer\t: 0x41\n"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def never_probe() -> float:
    raise AssertionError("the flags decide; no probe should run")


def test_flags_decide_without_probing_on_other_cpus(tmp_path):
    cases = {"avx2": (AVX2_EPYC, False), "avx512bf16": (AVX512_BF16_EPYC, True),
             "amx": (AMX_XEON, True), "arm": (ARM_BF16, True)}  # fmt: skip
    for name, (text, native) in cases.items():
        path = write(tmp_path, name, text)
        assert cpu_bf16_is_native(path, probe=never_probe, cache=tmp_path / "c.json") is native


def test_without_cpuinfo_the_probe_decides_once_and_is_cached(tmp_path):
    calls = []

    def slow_bf16() -> float:
        calls.append(1)
        return 0.25  # bf16 four times slower, as emulated on an AVX2-only CPU

    cache = tmp_path / "probe.json"
    missing = tmp_path / "no_cpuinfo"
    assert cpu_bf16_is_native(missing, probe=slow_bf16, cache=cache) is False
    assert cpu_bf16_is_native(missing, probe=slow_bf16, cache=cache) is False
    assert len(calls) == 1
    (entry,) = json.loads(cache.read_text()).values()
    assert entry == {"bf16": False, "speedup": 0.25}
    fast = tmp_path / "fast.json"
    assert cpu_bf16_is_native(missing, probe=lambda: 1.8, cache=fast) is True


def test_real_probe_and_this_machines_flags_agree_with_select_amp():
    speedup = probe_bf16_speedup(repeats=1)
    assert speedup > 0
    flags = cpu_flags()
    expected = None
    if flags and {"avx512_bf16", "amx_bf16", "bf16"} & flags:
        expected = torch.bfloat16
    assert select_amp("auto", torch.device("cpu")) == expected
    assert select_amp("none", torch.device("cpu")) is None
    assert select_amp("bf16", torch.device("cpu")) == torch.bfloat16


def test_shipped_configs_say_auto():
    for name in (
        "hfpose_hf_hrnet_18_coco_256x192_lspet_mpii",
        "hfpose_hf_hrnet_18_coco_256x192_distill",
    ):
        assert load_config(name)["amp"] == "auto"
