"""What this machine can run: the backends a user can name, the ONNX Runtime providers and
OpenVINO devices installed, and for each backend what it maps to here or why it cannot run.

Read without building a session, so the settings dialog (``available_backends``) and the
fallback rules in :mod:`hfpose.engine.runtime.backends` can ask cheaply and often.
"""

from __future__ import annotations

import importlib.util
import os
import platform
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import onnxruntime as ort

BACKENDS = ("auto", "cpu", "openvino", "litert", "gpu", "npu", "torch")

# Execution providers in order of preference (fastest first) and their short names.
GPU_PROVIDERS = {
    "TensorrtExecutionProvider": "TensorRT",
    "CUDAExecutionProvider": "CUDA",
    "ROCMExecutionProvider": "ROCm",
    "DmlExecutionProvider": "DirectML",
    "CoreMLExecutionProvider": "CoreML",
}
NPU_PROVIDERS = {
    "QNNExecutionProvider": "QNN",
    "OpenVINO:NPU": "OpenVINO NPU",  # the OpenVINO runtime's NPU device, not an ORT provider
    "VitisAIExecutionProvider": "VitisAI",
    "CoreMLExecutionProvider": "CoreML (Neural Engine)",
    "CANNExecutionProvider": "CANN",
}
ORT_CPU = "CPUExecutionProvider"


@dataclass(frozen=True)
class BackendStatus:
    """One row of the settings dialog: a backend, whether it runs here, and what or why not."""

    name: str
    available: bool
    maps_to: str
    reason: str = ""

    def describe(self) -> str:
        return f"{self.name}: {self.maps_to}" if self.available else f"{self.name}: {self.reason}"


@lru_cache(maxsize=1)
def available_cores() -> int:
    """Cores this process may run on (its affinity, where the OS reports one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def cpu_name() -> str:
    """The CPU's marketing name (for the HUD), without importing a runtime."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "CPU"


@lru_cache(maxsize=1)
def openvino_core() -> Any | None:
    """OpenVINO's ``Core``, made once; ``None`` when openvino is not installed."""
    if importlib.util.find_spec("openvino") is None:
        return None
    import openvino

    return openvino.Core()


@lru_cache(maxsize=1)
def openvino_devices() -> tuple[str, ...]:
    """OpenVINO's devices (``CPU``, ``GPU``, ``GPU.1``, ``NPU``), empty when it is not installed."""
    core = openvino_core()
    return tuple(core.available_devices) if core is not None else ()


def openvino_device_name(device: str) -> str:
    """The full name OpenVINO gives ``device`` (``CPU`` -> the CPU's model), else ``device``."""
    core = openvino_core()
    try:
        return str(core.get_property(device, "FULL_DEVICE_NAME"))
    except Exception:  # noqa: BLE001 - a name is cosmetic; never fail a session over it
        return device


def litert_installed() -> bool:
    return importlib.util.find_spec("ai_edge_litert") is not None


def ort_providers() -> list[str]:
    """The execution providers this ONNX Runtime build has."""
    return list(ort.get_available_providers())


def split_backend(backend: str) -> tuple[str, str]:
    """``openvino:GPU`` -> (``openvino``, ``GPU``); ``gpu:1`` -> (``gpu``, ``1``)."""
    name, _, option = backend.strip().partition(":")
    name = name.lower()
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    return name, option


def best_gpu() -> tuple[str, str] | None:
    """(kind, provider) of the best installed GPU route, ``kind`` being ``ort`` or ``openvino``."""
    installed = ort_providers()
    for provider in GPU_PROVIDERS:
        if provider in installed:
            return "ort", provider
    if any(d.startswith("GPU") for d in openvino_devices()):
        return "openvino", "GPU"
    return None


def best_npu() -> tuple[str, str] | None:
    """(kind, provider) of the best installed NPU route, as :func:`best_gpu`."""
    installed = ort_providers()
    for provider in NPU_PROVIDERS:
        if provider == "OpenVINO:NPU":
            if "NPU" in openvino_devices():
                return "openvino", "NPU"
        elif provider in installed:
            return "ort", provider
    return None


def gpu_missing_reason() -> str:
    """Why ``gpu`` cannot run here, and what to install."""
    return (
        "not available: no GPU execution provider (install onnxruntime-gpu for CUDA/TensorRT, "
        "onnxruntime-directml on Windows, onnxruntime-rocm for AMD; an Intel GPU works through "
        "openvino)"
    )


def npu_missing_reason() -> str:
    """Why ``npu`` cannot run here, and what it needs."""
    return (
        "not available: no NPU found (needs onnxruntime-qnn, OpenVINO with an Intel NPU driver, "
        "onnxruntime-vitisai, CoreML on Apple silicon or onnxruntime-cann)"
    )


def available_backends() -> list[BackendStatus]:
    """Every backend a user can name, whether it runs on this machine, and what it maps to."""
    rows = [BackendStatus("cpu", True, f"ONNX Runtime {ORT_CPU} on {cpu_name()}")]

    devices = openvino_devices()
    if devices:
        device = openvino_default_device()
        rows.append(
            BackendStatus(
                "openvino",
                True,
                f"OpenVINO {device} ({openvino_device_name(device)}); devices: "
                + ", ".join(devices),
            )
        )
    else:
        reason = "not available: openvino is not installed"
        rows.append(BackendStatus("openvino", False, "", reason))

    if litert_installed():
        text = f"LiteRT XNNPACK on {cpu_name()}, for a model converted by hfpose-export --tflite"
        rows.append(BackendStatus("litert", True, text))
    else:
        reason = "not available: ai-edge-litert is not installed (the litert extra)"
        rows.append(BackendStatus("litert", False, "", reason))

    for name, best, missing_reason in (
        ("gpu", best_gpu, gpu_missing_reason),
        ("npu", best_npu, npu_missing_reason),
    ):
        found = best()
        if found is None:
            rows.append(BackendStatus(name, False, "", missing_reason()))
        else:
            kind, provider = found
            text = f"ONNX Runtime {provider}" if kind == "ort" else f"OpenVINO {name.upper()}"
            rows.append(BackendStatus(name, True, text))

    if importlib.util.find_spec("torch") is None:
        rows.append(BackendStatus("torch", False, "", "not available: torch is not installed"))
    else:
        rows.append(BackendStatus("torch", True, "PyTorch (CPU, or CUDA when present) for .pth"))

    auto = auto_without_model()
    if auto != "gpu" and openvino_devices():
        auto = (
            "cpu, openvino or litert (where a converted copy lies beside the model), whichever "
            "a short probe finds fastest for each model"
        )
    rows.insert(0, BackendStatus("auto", True, f"best available: {auto}"))
    return rows


def openvino_default_device() -> str:
    """``openvino`` alone means its GPU when present, else its CPU (NPUs only when named)."""
    devices = openvino_devices()
    for device in devices:
        if device.startswith("GPU"):
            return device
    return "CPU"


def _openvino_cpu_has_bf16() -> bool:
    core = openvino_core()
    if core is None or "CPU" not in openvino_devices():
        return False
    try:
        return "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    except Exception:  # noqa: BLE001 - an old OpenVINO without the property: assume not
        return False


def auto_without_model() -> str:
    """What ``auto`` stands for before a model is known (the settings dialog's row): a GPU when
    one is installed, else the usual winner of the probe, OpenVINO on CPUs with native bf16
    (AVX512-BF16 / AMX), else ONNX Runtime. The choice for a given model is
    ``hfpose.engine.runtime.backends``' probe."""
    if best_gpu() is not None:
        return "gpu"
    return "openvino" if _openvino_cpu_has_bf16() else "cpu"
