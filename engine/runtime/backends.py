"""Inference backends: pick what the user asked for, build a session, fall back to the CPU with
the reason when that cannot run, report what really runs.

Public API (stable; the pipeline, the GUI and the CLI use these names):

- ``create_session(model_path, backend="auto", config_path=None, num_threads=0,
  precision="fast") -> InferenceSession``; ``PRECISIONS``: ``fast`` lets a runtime use bf16
  where the CPU has it natively, and an int8 copy made by ``hfpose-export --int8`` for this
  very fp32 file; ``fp32`` runs the fp32 file in fp32 everywhere.
- In :mod:`hfpose.engine.runtime.discovery`: ``BACKENDS``, the names a user types (``auto``,
  ``cpu``, ``openvino``, ``litert``, ``gpu``, ``npu``, ``torch``; ``openvino:GPU`` /
  ``openvino:NPU`` pick an OpenVINO device, ``gpu:1`` a GPU index), and
  ``available_backends() -> list[BackendStatus]``: every backend, whether this machine can
  run it, what it maps to or why not (the settings dialog lists these).
- In :mod:`hfpose.engine.runtime.sessions`: ``InferenceSession``: ``run(batch) -> list[np.ndarray]``,
  ``input_name``, ``input_shape`` (``None`` for a dynamic axis), ``dynamic_batch``,
  ``output_names``, ``metadata`` (the ONNX ``metadata_props``, JSON values decoded),
  ``runtime_info``; ``RuntimeInfo``: requested backend, backend/provider/device really in
  use, precision and the reason of a fallback (the HUD and status bar show its ``label``).
- In :mod:`hfpose.engine.runtime.model_files`: ``ModelError``, a model file that is missing or not a
  model (one-line message); ``asset_path``, ``read_onnx_metadata``.

A user who picked ``gpu`` must see that the CPU is running, once, instead of wondering why it
is slow: each fallback is warned once (``warn_once``) and named in ``RuntimeInfo``.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from hfpose.engine.runtime.auto import fast_variant, fastest, file_sha256
from hfpose.engine.runtime.discovery import (
    GPU_PROVIDERS,
    ORT_CPU,
    best_gpu,
    best_npu,
    cpu_name,
    gpu_missing_reason,
    litert_installed,
    npu_missing_reason,
    openvino_default_device,
    openvino_devices,
    ort_providers,
    split_backend,
)
from hfpose.engine.runtime.litert import LiteRtSession, checked_tflite, tflite_path
from hfpose.engine.runtime.model_files import ModelError, check_model_file, read_onnx_metadata
from hfpose.engine.runtime.sessions import (
    InferenceSession,
    OpenVinoSession,
    OrtSession,
    RuntimeInfo,
    TorchSession,
)

log = logging.getLogger(__name__)

PRECISIONS = ("fast", "fp32")
# Providers whose kernels run fp16 faster than fp32 (tensor cores, NPUs, Apple GPU/ANE).
FP16_PROVIDERS = {
    "CUDAExecutionProvider",
    "ROCMExecutionProvider",
    "DmlExecutionProvider",
    "CoreMLExecutionProvider",
}

_warned: set[str] = set()


def warn_once(message: str) -> None:
    """Log a warning the first time it occurs: fallbacks repeat at every model switch."""
    if message not in _warned:
        _warned.add(message)
        log.warning(message)


# ------------------------------------------------------------------------- choosing a backend


def _resolve_auto(model: Path, precision: str, num_threads: int) -> str:
    """``auto`` for ``model``: a GPU when one is installed; else whichever of ONNX Runtime,
    OpenVINO and LiteRT (when ``hfpose-export --tflite`` left a checked copy beside the model)
    ran it fastest on this machine (``hfpose.engine.runtime.auto``: a short probe, cached per
    machine, model, precision and threads). Before a model is known, the settings dialog shows
    :func:`~hfpose.engine.runtime.discovery.auto_without_model`.

    NPUs are left to an explicit choice: they save power but are often slower than a desktop
    CPU for a model of this size, and their operator coverage varies.
    """
    if best_gpu() is not None:
        return "gpu"
    backends = ["cpu"]
    if "CPU" in openvino_devices():
        backends.append("openvino")
    question = f"backend, {precision}, {num_threads} threads"
    if litert_installed():
        tflite = checked_tflite(model, warn_once)
        if tflite is not None:
            backends.append("litert")
            question += f", litert copy {file_sha256(tflite)}"
    if len(backends) == 1:
        return "cpu"  # nothing to compare: no OpenVINO CPU device, no LiteRT copy
    candidates = {
        backend: lambda b=backend: _session_for_file(model, b, None, num_threads, precision)
        for backend in backends
    }
    return fastest(model, question, candidates)


def _faster_of_fp32_and_int8(
    fp32: Path, int8: Path, backend: str, num_threads: int
) -> InferenceSession:
    """``fast`` with a checked int8 copy: whichever file runs faster on ``backend`` here (int8
    saves arithmetic, but its quantize/dequantize steps can cost more than a memory-bound
    network saves: HF-HRNet-18 was no faster in int8 on an AVX-512 EPYC)."""

    def build(path: Path) -> InferenceSession:
        session = _session_for_file(path, backend, None, num_threads, "fast")
        if path == int8:
            session.runtime_info = replace(session.runtime_info, precision="int8")
        return session

    candidates = {"fp32": lambda: build(fp32), "int8": lambda: build(int8)}
    choice = fastest(fp32, f"file, {backend}, {num_threads} threads", candidates)
    return candidates[choice]()


# ---------------------------------------------------------------------------------- factory


def _fp16_model(path: Path) -> bytes | None:
    """An fp16 copy of the model for providers that gain from it: ``<stem>.fp16.onnx`` beside
    the file, else a conversion in memory when onnxconverter-common is installed."""
    sibling = path.with_name(path.stem + ".fp16.onnx")
    if sibling.is_file():
        return sibling.read_bytes()
    if importlib.util.find_spec("onnxconverter_common") is None:
        return None
    import onnx
    from onnxconverter_common import float16

    model = float16.convert_float_to_float16(onnx.load(str(path)), keep_io_types=True)
    return model.SerializeToString()


def _ort_provider_entry(provider: str, option: str) -> Any:
    """Provider with its options: device index for GPUs, fp16 for TensorRT, ANE for CoreML."""
    options: dict[str, Any] = {}
    if option.isdigit() and provider in GPU_PROVIDERS and provider != "CoreMLExecutionProvider":
        options["device_id"] = int(option)
    if provider == "TensorrtExecutionProvider":
        options["trt_fp16_enable"] = True
    if provider == "QNNExecutionProvider":
        options["backend_path"] = "QnnHtp.dll" if os.name == "nt" else "libQnnHtp.so"
    return (provider, options) if options else provider


def _ort_info(requested: str, backend: str, wanted: str, precision: str):
    """A read-back: the provider ORT really registered first decides what runs."""

    def build(registered: list[str]) -> RuntimeInfo:
        real = registered[0] if registered else ORT_CPU
        if real != wanted:
            return RuntimeInfo(
                requested,
                "cpu",
                ORT_CPU,
                cpu_name(),
                "fp32",
                f"{wanted} was requested but ONNX Runtime runs {real} (its libraries or "
                "device could not be loaded)",
            )
        device = cpu_name() if real == ORT_CPU else GPU_PROVIDERS.get(real, real)
        return RuntimeInfo(requested, backend, real, device, precision)

    return build


def _cpu_session(path: Path, requested: str, reason: str | None, num_threads: int) -> OrtSession:
    """ORT on the CPU; built before warning, so a broken model reports itself, not a fallback."""
    info = _ort_info(requested, "cpu", ORT_CPU, "fp32")

    def with_reason(registered: list[str]) -> RuntimeInfo:
        return replace(info(registered), fallback_reason=reason)

    session = OrtSession(str(path), [ORT_CPU], with_reason, path, num_threads)
    if reason:
        warn_once(f"backend '{requested}' unavailable, running on the CPU instead: {reason}")
    return session


def create_session(
    model_path: str | Path,
    backend: str = "auto",
    config_path: str | Path | None = None,
    num_threads: int = 0,
    precision: str = "fast",
) -> InferenceSession:
    """Build a session for ``model_path`` on ``backend``, falling back to the CPU with a warning.

    ``num_threads`` 0 lets the runtime use every core. A ``.pth`` checkpoint always runs in
    PyTorch (it has no ONNX graph). ``precision`` is one of ``PRECISIONS`` (see the module
    doc). Raises ``ModelError`` for a missing or unreadable model and ``ValueError`` for an
    unknown backend or precision name.
    """
    path = Path(model_path)
    name, option = split_backend(backend)
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    check_model_file(path)
    if precision == "fast" and path.suffix == ".onnx":
        variant = fast_variant(path, warn_once)
        if variant != path:
            return _faster_of_fp32_and_int8(path, variant, backend, num_threads)
    return _session_for_file(path, backend, config_path, num_threads, precision)


def _session_for_file(
    path: Path, backend: str, config_path: str | Path | None, num_threads: int, precision: str
) -> InferenceSession:
    """``create_session`` for exactly this file (no int8 copy looked up)."""
    name, option = split_backend(backend)

    if path.suffix in (".pth", ".pt"):
        if importlib.util.find_spec("torch") is None:
            raise ModelError(f"{path} is a PyTorch checkpoint but torch is not installed")
        config = str(config_path) if config_path else None
        session = TorchSession(path, config, backend, num_threads)
        if name not in ("torch", "auto"):
            reason = "a .pth checkpoint runs in PyTorch; export it with hfpose-export for " + name
            warn_once(f"backend '{backend}': {reason}")
            session.runtime_info = replace(session.runtime_info, fallback_reason=reason)
        return session

    if name == "torch":
        # The detectors are ONNX-only and follow the keypoint model's backend: keep them running.
        reason = f"the torch backend runs .pth checkpoints; {path.name} runs on ONNX Runtime"
        return _cpu_session(path, backend, reason, num_threads)
    if name == "auto":
        name = _resolve_auto(path, precision, num_threads)

    if name == "cpu":
        return _cpu_session(path, backend, None, num_threads)

    if name == "litert":
        return _litert_or_cpu(path, backend, num_threads)

    if name == "openvino":
        devices = openvino_devices()
        if not devices:
            return _cpu_session(path, backend, "openvino is not installed", num_threads)
        device = option.upper() if option else openvino_default_device()
        if device not in devices and device not in ("AUTO", "MULTI", "HETERO"):
            reason = f"OpenVINO device {device} not found (devices: {', '.join(devices)})"
            return _cpu_session(path, backend, reason, num_threads)
        return _openvino_or_cpu(path, device, backend, "openvino", num_threads, precision)

    route = best_gpu() if name == "gpu" else best_npu()
    if route is None:
        reason = (gpu_missing_reason() if name == "gpu" else npu_missing_reason()).removeprefix(
            "not available: "
        )
        return _cpu_session(path, backend, reason, num_threads)
    kind, provider = route
    if kind == "openvino":
        return _openvino_or_cpu(path, provider, backend, name, num_threads, precision)

    model: str | bytes = str(path)
    fp16_allowed = precision == "fast"
    gpu_precision = "fp16" if provider == "TensorrtExecutionProvider" else "fp32"
    if provider in FP16_PROVIDERS and fp16_allowed:
        fp16 = _fp16_model(path)
        if fp16 is not None:
            model, gpu_precision = fp16, "fp16"
    providers = [_ort_provider_entry(provider, option), ORT_CPU]
    if provider == "TensorrtExecutionProvider" and "CUDAExecutionProvider" in ort_providers():
        # Nodes TensorRT cannot take run on CUDA rather than on the CPU.
        providers.insert(1, _ort_provider_entry("CUDAExecutionProvider", option))
    try:
        session = OrtSession(
            model, providers, _ort_info(backend, name, provider, gpu_precision), path, num_threads
        )
    except ModelError as error:
        return _cpu_session(path, backend, f"{provider} failed: {error}", num_threads)
    if session.runtime_info.fallback_reason:
        warn_once(
            f"backend '{backend}' unavailable, running on the CPU instead: "
            f"{session.runtime_info.fallback_reason}"
        )
    return session


def _litert_or_cpu(path: Path, requested: str, num_threads: int) -> InferenceSession:
    """The model's checked LiteRT copy on XNNPACK; without one (or without LiteRT), ORT on the
    CPU with the reason."""
    if not litert_installed():
        return _cpu_session(path, requested, "ai-edge-litert is not installed", num_threads)
    tflite = checked_tflite(path, warn_once)
    if tflite is None:
        reason = f"no checked {tflite_path(path).name} beside it (hfpose-export --tflite {path})"
        return _cpu_session(path, requested, reason, num_threads)
    try:
        return LiteRtSession(tflite, read_onnx_metadata(path), requested, num_threads)
    except (RuntimeError, ValueError) as error:  # LiteRT reports a bad file as either
        reason = f"LiteRT cannot run {tflite.name}: {str(error).splitlines()[0]}"
        return _cpu_session(path, requested, reason, num_threads)


def _openvino_or_cpu(
    path: Path, device: str, requested: str, backend: str, num_threads: int, precision: str
) -> InferenceSession:
    """OpenVINO on ``device``; an unsupported model or device falls back to ORT on the CPU."""
    try:
        session = OpenVinoSession(path, device, requested, backend, num_threads, precision)
    except Exception as error:  # noqa: BLE001 - OpenVINO raises generic RuntimeError
        reason = f"OpenVINO could not run the model on {device}: {str(error).splitlines()[0]}"
        return _cpu_session(path, requested, reason, num_threads)
    real = session.runtime_info.provider.removeprefix("OpenVINO ")
    if device not in ("AUTO", "MULTI", "HETERO") and not real.startswith(device):
        reason = f"OpenVINO placed the model on {real} instead of {device}"
        return _cpu_session(path, requested, reason, num_threads)
    return session
