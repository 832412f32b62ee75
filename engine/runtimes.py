"""Inference backends: pick what the user asked for, build a session, report what really runs.

Public API (stable; the pipeline, the GUI and the CLI use these names):

- ``BACKENDS``: the names a user types: ``auto``, ``cpu``, ``openvino``, ``litert``, ``gpu``,
  ``npu``, ``torch``. ``openvino:GPU`` / ``openvino:NPU`` pick an OpenVINO device, ``gpu:1`` a GPU index.
- ``available_backends() -> list[BackendStatus]``: every backend, whether this machine can run
  it, what it maps to or why not (the settings dialog lists these).
- ``create_session(model_path, backend="auto", config_path=None, num_threads=0,
  precision="fast") -> InferenceSession``; ``PRECISIONS``: ``fast`` lets a runtime use bf16
  where the CPU has it natively, and an int8 copy made by ``hfpose-export --int8`` for this
  very fp32 file; ``fp32`` runs the fp32 file in fp32 everywhere.
- ``InferenceSession``: ``run(batch) -> list[np.ndarray]``, ``input_name``, ``input_shape``
  (``None`` for a dynamic axis), ``dynamic_batch``, ``output_names``, ``metadata`` (the ONNX
  ``metadata_props``, JSON values decoded), ``runtime_info``.
- ``RuntimeInfo``: requested backend, backend/provider/device really in use, precision and
  the reason of a fallback (the HUD and status bar show ``RuntimeInfo.label``).
- ``ModelError``: a model file that is missing or not a model (one-line message).

Why a read-back: ONNX Runtime silently drops an execution provider whose libraries fail to
load, and OpenVINO may place a model elsewhere than asked. A user who picked ``gpu`` must see
that the CPU is running, once, instead of wondering why it is slow.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import platform
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

log = logging.getLogger(__name__)

BACKENDS = ("auto", "cpu", "openvino", "litert", "gpu", "npu", "torch")
PRECISIONS = ("fast", "fp32")

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
# Providers whose kernels run fp16 faster than fp32 (tensor cores, NPUs, Apple GPU/ANE).
FP16_PROVIDERS = {
    "CUDAExecutionProvider",
    "ROCMExecutionProvider",
    "DmlExecutionProvider",
    "CoreMLExecutionProvider",
}
ORT_CPU = "CPUExecutionProvider"

_warned: set[str] = set()


class ModelError(RuntimeError):
    """A model file that is missing, unreadable or not a model the runtime accepts."""


@dataclass(frozen=True)
class RuntimeInfo:
    """What a session really runs on; ``fallback_reason`` is set when it is not what was asked."""

    requested: str
    backend: str
    provider: str
    device_name: str
    precision: str = "fp32"
    fallback_reason: str | None = None
    model: str = ""  # the keypoint model's short name, set by hfpose.engine.pose for the HUD

    @property
    def label(self) -> str:
        """Short text for a HUD: ``cpu · CPUExecutionProvider`` plus the model's name and a
        fallback marker."""
        text = f"{self.backend} · {self.provider}"
        if self.precision != "fp32":
            text += f" · {self.precision}"
        if self.model:
            text += f" · {self.model}"
        if self.fallback_reason:
            text += f" (fallback from {self.requested})"
        return text


@dataclass(frozen=True)
class BackendStatus:
    """One row of the settings dialog: a backend, whether it runs here, and what or why not."""

    name: str
    available: bool
    maps_to: str
    reason: str = ""

    def describe(self) -> str:
        return f"{self.name}: {self.maps_to}" if self.available else f"{self.name}: {self.reason}"


def warn_once(message: str) -> None:
    """Log a warning the first time it occurs: fallbacks repeat at every model switch."""
    if message not in _warned:
        _warned.add(message)
        log.warning(message)


# --------------------------------------------------------------------------- machine probing


@lru_cache(maxsize=1)
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
def _openvino_core() -> Any | None:
    if importlib.util.find_spec("openvino") is None:
        return None
    import openvino

    return openvino.Core()


@lru_cache(maxsize=1)
def openvino_devices() -> tuple[str, ...]:
    """OpenVINO's devices (``CPU``, ``GPU``, ``GPU.1``, ``NPU``), empty when it is not installed."""
    core = _openvino_core()
    return tuple(core.available_devices) if core is not None else ()


def _openvino_device_name(device: str) -> str:
    core = _openvino_core()
    try:
        return str(core.get_property(device, "FULL_DEVICE_NAME"))
    except Exception:  # noqa: BLE001 - a name is cosmetic; never fail a session over it
        return device


def _ort_providers() -> list[str]:
    return list(ort.get_available_providers())


def _split_backend(backend: str) -> tuple[str, str]:
    """``openvino:GPU`` -> (``openvino``, ``GPU``); ``gpu:1`` -> (``gpu``, ``1``)."""
    name, _, option = backend.strip().partition(":")
    name = name.lower()
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    return name, option


def _best_gpu() -> tuple[str, str] | None:
    """(kind, provider) of the best installed GPU route, ``kind`` being ``ort`` or ``openvino``."""
    installed = _ort_providers()
    for provider in GPU_PROVIDERS:
        if provider in installed:
            return "ort", provider
    if any(d.startswith("GPU") for d in openvino_devices()):
        return "openvino", "GPU"
    return None


def _best_npu() -> tuple[str, str] | None:
    installed = _ort_providers()
    for provider in NPU_PROVIDERS:
        if provider == "OpenVINO:NPU":
            if "NPU" in openvino_devices():
                return "openvino", "NPU"
        elif provider in installed:
            return "ort", provider
    return None


def _gpu_missing_reason() -> str:
    return (
        "not available: no GPU execution provider (install onnxruntime-gpu for CUDA/TensorRT, "
        "onnxruntime-directml on Windows, onnxruntime-rocm for AMD; an Intel GPU works through "
        "openvino)"
    )


def _npu_missing_reason() -> str:
    return (
        "not available: no NPU found (needs onnxruntime-qnn, OpenVINO with an Intel NPU driver, "
        "onnxruntime-vitisai, CoreML on Apple silicon or onnxruntime-cann)"
    )


def available_backends() -> list[BackendStatus]:
    """Every backend a user can name, whether it runs on this machine, and what it maps to."""
    rows = [BackendStatus("cpu", True, f"ONNX Runtime {ORT_CPU} on {cpu_name()}")]

    devices = openvino_devices()
    if devices:
        device = _openvino_default_device()
        rows.append(
            BackendStatus(
                "openvino",
                True,
                f"OpenVINO {device} ({_openvino_device_name(device)}); devices: "
                + ", ".join(devices),
            )
        )
    else:
        reason = "not available: openvino is not installed"
        rows.append(BackendStatus("openvino", False, "", reason))

    from hfpose.engine.runtime_litert import litert_installed

    if litert_installed():
        text = f"LiteRT XNNPACK on {cpu_name()}, for a model converted by hfpose-export --tflite"
        rows.append(BackendStatus("litert", True, text))
    else:
        reason = "not available: ai-edge-litert is not installed (the litert extra)"
        rows.append(BackendStatus("litert", False, "", reason))

    for name, best, missing_reason in (
        ("gpu", _best_gpu, _gpu_missing_reason),
        ("npu", _best_npu, _npu_missing_reason),
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

    auto = _resolve_auto()
    if auto != "gpu" and openvino_devices():
        auto = (
            "cpu, openvino or litert (where a converted copy lies beside the model), whichever "
            "a short probe finds fastest for each model"
        )
    rows.insert(0, BackendStatus("auto", True, f"best available: {auto}"))
    return rows


def _openvino_default_device() -> str:
    """``openvino`` alone means its GPU when present, else its CPU (NPUs only when named)."""
    devices = openvino_devices()
    for device in devices:
        if device.startswith("GPU"):
            return device
    return "CPU"


def _openvino_cpu_has_bf16() -> bool:
    core = _openvino_core()
    if core is None or "CPU" not in openvino_devices():
        return False
    try:
        return "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    except Exception:  # noqa: BLE001 - an old OpenVINO without the property: assume not
        return False


def _resolve_auto(model: Path | None = None, precision: str = "fast", num_threads: int = 0) -> str:
    """``auto``: a GPU when one is installed; else, for a model, whichever of ONNX Runtime,
    OpenVINO and LiteRT (when ``hfpose-export --tflite`` left a checked copy beside the model)
    ran it fastest on this machine (``hfpose.engine.auto_backend``: a short probe, cached per
    machine, model, precision and threads). Without a model (the settings dialog's row): the
    usual winner, OpenVINO on CPUs with native bf16 (AVX512-BF16 / AMX), else ONNX Runtime.

    NPUs are left to an explicit choice: they save power but are often slower than a desktop
    CPU for a model of this size, and their operator coverage varies.
    """
    if _best_gpu() is not None:
        return "gpu"
    from hfpose.engine.auto_backend import fastest, file_sha256
    from hfpose.engine.runtime_litert import checked_tflite, litert_installed

    backends = ["cpu"]
    if "CPU" in openvino_devices():
        backends.append("openvino")
    question = f"backend, {precision}, {num_threads} threads"
    if model is not None and litert_installed():
        tflite = checked_tflite(model, warn_once)
        if tflite is not None:
            backends.append("litert")
            question += f", litert copy {file_sha256(tflite)}"
    if model is None or len(backends) == 1:
        return "openvino" if _openvino_cpu_has_bf16() else "cpu"
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
    from hfpose.engine.auto_backend import fastest

    def build(path: Path) -> InferenceSession:
        session = _session_for_file(path, backend, None, num_threads, "fast")
        if path == int8:
            session.runtime_info = replace(session.runtime_info, precision="int8")
        return session

    candidates = {"fp32": lambda: build(fp32), "int8": lambda: build(int8)}
    choice = fastest(fp32, f"file, {backend}, {num_threads} threads", candidates)
    return candidates[choice]()


# ------------------------------------------------------------------------------ model files


def asset_path(relative: str) -> Path:
    """A shipped model (``detectors/nanodet_416.onnx``) in the installed package data
    (``hfpose.assets``: the repository's ``assets/`` in an editable install, the wheel's copy
    otherwise), never looked up relative to a source tree."""
    folders = _asset_folders()
    for folder in folders:
        candidate = folder / relative
        if candidate.is_file():
            return candidate
    raise ModelError(f"shipped model {relative} not found in {', '.join(map(str, folders))}")


def _asset_folders() -> list[Path]:
    spec = importlib.util.find_spec("hfpose.assets")
    if spec is None or spec.submodule_search_locations is None:
        raise ModelError("the hfpose.assets package data is not installed (pip install -e .)")
    return [Path(folder) for folder in spec.submodule_search_locations]


def _check_model_file(path: Path) -> None:
    if not path.exists():
        raise ModelError(f"model not found: {path}")
    if not path.is_file():
        raise ModelError(f"not a model file (a folder?): {path}")


def read_onnx_metadata(path: str | Path) -> dict[str, Any]:
    """The exporter's ``metadata_props`` with JSON values decoded (plain strings kept as is)."""
    import onnx

    path = Path(path)
    _check_model_file(path)
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as error:  # noqa: BLE001 - protobuf raises several unrelated types
        raise ModelError(f"not an ONNX model: {path} ({type(error).__name__})") from error
    return _decode_metadata({p.key: p.value for p in model.metadata_props})


def _decode_metadata(props: dict[str, str]) -> dict[str, Any]:
    decoded: dict[str, Any] = {}
    for key, value in props.items():
        try:
            decoded[key] = json.loads(value)
        except (json.JSONDecodeError, TypeError):
            decoded[key] = value
    return decoded


# --------------------------------------------------------------------------------- sessions


class InferenceSession:
    """A model ready to run on one backend, with one calling convention for all of them."""

    input_name: str
    input_shape: tuple[int | None, ...]
    output_names: list[str]
    metadata: dict[str, Any]
    runtime_info: RuntimeInfo
    concurrent_calls: bool = False  # may run() be called from several threads at once?

    @property
    def dynamic_batch(self) -> bool:
        return self.input_shape[0] is None

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        """Run (N, ...) float32 input; a fixed-batch model is run item by item."""
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        fixed = self.input_shape[0]
        if self.dynamic_batch or fixed == len(batch):
            return self._run(batch)
        if fixed != 1:
            raise ValueError(f"model takes batches of {fixed}, got {len(batch)}")
        parts = [self._run(batch[i : i + 1]) for i in range(len(batch))]
        return [np.concatenate(outputs, axis=0) for outputs in zip(*parts, strict=True)]

    def _run(self, batch: np.ndarray) -> list[np.ndarray]:
        raise NotImplementedError


def _shape(dims: Sequence[Any]) -> tuple[int | None, ...]:
    return tuple(d if isinstance(d, int) and d > 0 else None for d in dims)


class OrtSession(InferenceSession):
    """ONNX Runtime with one execution provider (plus the CPU for unsupported nodes)."""

    concurrent_calls = True  # ONNX Runtime's Run is thread-safe

    def __init__(
        self,
        model: str | bytes,
        providers: list[Any],
        info: Callable[[list[str]], RuntimeInfo],
        metadata_source: Path,
        num_threads: int = 0,
    ) -> None:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = num_threads
        # Subnormal floats run ~10x slower on x86; flushing them costs no accuracy in practice
        # and keeps a freshly initialised or lightly trained model at full speed.
        options.add_session_config_entry("session.set_denormal_as_zero", "1")
        # The pipeline runs detector and keypoint sessions at once in their own threads:
        # spin-waiting pool threads would steal the other stage's cores. Pipeline on
        # intel_asl_book.mkv, on/off alternated in one process on the shared 2-core machine:
        # 2.8 vs 6.3 FPS end to end (det-interval 1), 14 vs 33 FPS (det-interval 5).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self._session = ort.InferenceSession(model, options, providers=providers)
        except Exception as error:  # noqa: BLE001 - ORT raises its own Fail/InvalidGraph types
            raise ModelError(
                f"ONNX Runtime cannot load {metadata_source}: {str(error).splitlines()[0]}"
            ) from error
        first = self._session.get_inputs()[0]
        self.input_name = first.name
        self.input_shape = _shape(first.shape)
        self.output_names = [o.name for o in self._session.get_outputs()]
        props = self._session.get_modelmeta().custom_metadata_map
        self.metadata = _decode_metadata(dict(props))
        self.runtime_info = info(self._session.get_providers())

    def _run(self, batch: np.ndarray) -> list[np.ndarray]:
        return self._session.run(None, {self.input_name: batch})


class OpenVinoSession(InferenceSession):
    """The OpenVINO runtime on one device, compiled for latency (frames come one at a time)."""

    def __init__(
        self,
        path: Path,
        device: str,
        requested: str,
        backend: str,
        num_threads: int = 0,
        precision: str = "fast",
    ) -> None:
        core = _openvino_core()
        try:
            model = core.read_model(str(path))
        except Exception as error:  # noqa: BLE001
            raise ModelError(
                f"OpenVINO cannot read {path}: {str(error).splitlines()[0]}"
            ) from error
        config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY"}
        if precision == "fp32":
            config["INFERENCE_PRECISION_HINT"] = "f32"  # else the device's fastest (bf16, f16)
        if device.startswith("CPU"):
            config["CPU_DENORMALS_OPTIMIZATION"] = True  # same reason as in OrtSession
            if num_threads:
                config["INFERENCE_NUM_THREADS"] = num_threads
                # Pinned, two one-thread models in one process land on the same core and
                # take turns (bench_pipeline, one person, auto: 25.6 FPS pinned, 38.9 not).
                config["ENABLE_CPU_PINNING"] = False
        compiled = core.compile_model(model, device, config)
        first = compiled.inputs[0]
        self.input_name = first.get_any_name()
        self.input_shape = _shape(
            [d.get_length() if d.is_static else -1 for d in first.get_partial_shape()]
        )
        self.output_names = [o.get_any_name() for o in compiled.outputs]
        self.metadata = read_onnx_metadata(path) if path.suffix == ".onnx" else {}
        self._request = compiled.create_infer_request()
        devices = list(compiled.get_property("EXECUTION_DEVICES"))
        hint = compiled.get_property("INFERENCE_PRECISION_HINT")
        precision = hint.to_string() if hasattr(hint, "to_string") else str(hint).lower()
        real = devices[0] if devices else device
        self.runtime_info = RuntimeInfo(
            requested=requested,
            backend=backend,
            provider=f"OpenVINO {real}",
            device_name=_openvino_device_name(real.split("(")[0]),
            precision={"f32": "fp32", "f16": "fp16", "bf16": "bf16"}.get(precision, precision),
        )

    def _run(self, batch: np.ndarray) -> list[np.ndarray]:
        self._request.infer({0: batch})
        return [
            self._request.get_output_tensor(i).data.copy() for i in range(len(self.output_names))
        ]


class TorchSession(InferenceSession):
    """A ``.pth`` checkpoint in PyTorch, for checkpoints not yet exported to ONNX.

    The config comes from ``config_path`` or, failing that, the checkpoint's
    ``meta["config_name"]`` (written by our trainer).
    """

    def __init__(
        self, checkpoint: Path, config_path: str | None, requested: str, num_threads: int = 0
    ) -> None:
        import torch

        from hfpose.models.checkpoint import CheckpointError, load_checkpoint, read_checkpoint
        from hfpose.models.config import ConfigError, load_config, model_input_size
        from hfpose.models.export import onnx_metadata
        from hfpose.models.hf_hrnet import build_model

        try:
            config_name = config_path or read_checkpoint(checkpoint)["meta"].get("config_name")
            if not config_name:
                raise ModelError(f"{checkpoint}: a .pth checkpoint needs its config (--config)")
            config = load_config(config_name)
            network = build_model(config)
            load_checkpoint(network, checkpoint, input_size_wh=model_input_size(config))
        except (CheckpointError, ConfigError) as error:
            raise ModelError(str(error)) from error
        # Subnormal floats (see OrtSession) slow PyTorch's CPU kernels just as much.
        torch.set_flush_denormal(True)
        if num_threads:
            torch.set_num_threads(num_threads)  # process-wide in PyTorch
        self._torch = torch
        self._device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self._network = network.eval().to(self._device)
        width, height = model_input_size(config)
        self.input_name = "input"
        self.input_shape = (None, 3, height, width)
        self.output_names = ["heatmaps"]
        self.metadata = _decode_metadata(onnx_metadata(config, str(checkpoint)))
        on_gpu = self._device.type == "cuda"
        self.runtime_info = RuntimeInfo(
            requested=requested,
            backend="torch",
            provider=f"PyTorch {self._device.type}",
            device_name=torch.cuda.get_device_name(self._device) if on_gpu else cpu_name(),
        )

    def _run(self, batch: np.ndarray) -> list[np.ndarray]:
        with self._torch.inference_mode():
            output = self._network(self._torch.from_numpy(batch).to(self._device))
        return [output.float().cpu().numpy()]


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
    name, option = _split_backend(backend)
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    _check_model_file(path)
    if precision == "fast" and path.suffix == ".onnx":
        from hfpose.engine.auto_backend import fast_variant

        variant = fast_variant(path, warn_once)
        if variant != path:
            return _faster_of_fp32_and_int8(path, variant, backend, num_threads)
    return _session_for_file(path, backend, config_path, num_threads, precision)


def _session_for_file(
    path: Path, backend: str, config_path: str | Path | None, num_threads: int, precision: str
) -> InferenceSession:
    """``create_session`` for exactly this file (no int8 copy looked up)."""
    name, option = _split_backend(backend)

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
        device = option.upper() if option else _openvino_default_device()
        if device not in devices and device not in ("AUTO", "MULTI", "HETERO"):
            reason = f"OpenVINO device {device} not found (devices: {', '.join(devices)})"
            return _cpu_session(path, backend, reason, num_threads)
        return _openvino_or_cpu(path, device, backend, "openvino", num_threads, precision)

    route = _best_gpu() if name == "gpu" else _best_npu()
    if route is None:
        reason = (_gpu_missing_reason() if name == "gpu" else _npu_missing_reason()).removeprefix(
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
    if provider == "TensorrtExecutionProvider" and "CUDAExecutionProvider" in _ort_providers():
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
    from hfpose.engine.runtime_litert import (
        LiteRtSession,
        checked_tflite,
        litert_installed,
        tflite_path,
    )

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
