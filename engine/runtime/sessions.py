"""One calling convention over every runtime: ``InferenceSession`` and its ONNX Runtime,
OpenVINO and PyTorch wrappers, each reading back into a ``RuntimeInfo`` what really runs.

Why a read-back: ONNX Runtime silently drops an execution provider whose libraries fail to
load, and OpenVINO may place a model elsewhere than asked; the fallback rules
(:mod:`hfpose.engine.runtime.backends`) compare it with what was asked. LiteRT's wrapper lives in
:mod:`hfpose.engine.runtime.litert`, beside the checks of its converted copy.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from hfpose.engine.runtime.discovery import (
    available_cores,
    cpu_name,
    openvino_core,
    openvino_device_name,
)
from hfpose.engine.runtime.model_files import ModelError, decode_metadata, read_onnx_metadata
from hfpose.models.config import ConfigError, load_config, model_input_size
from hfpose.models.onnx_metadata import onnx_metadata


@dataclass(frozen=True)
class RuntimeInfo:
    """What a session really runs on; ``fallback_reason`` is set when it is not what was asked."""

    requested: str
    backend: str
    provider: str
    device_name: str
    precision: str = "fp32"
    fallback_reason: str | None = None
    model: str = (
        ""  # the keypoint model's short name, set by hfpose.engine.keypoints.estimator for the HUD
    )
    crowds: str = (
        ""  # how a frame's crops share the cores, set by hfpose.engine.keypoints.estimator
    )

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


class InferenceSession:
    """A model ready to run on one backend, with one calling convention for all of them.

    ``run`` is safe from any number of threads. ``concurrent_calls`` says whether calls from
    several threads really run side by side (each on its own request or interpreter, or on a
    runtime that is thread-safe itself); where it is False they take turns on a lock, so a
    caller that spreads work over threads gains nothing there and should not.
    """

    input_name: str
    input_shape: tuple[int | None, ...]
    output_names: list[str]
    metadata: dict[str, Any]
    runtime_info: RuntimeInfo
    concurrent_calls: bool = False  # do run() calls from several threads run side by side?

    def __init__(self) -> None:
        self._turns = threading.Lock()  # serialises run() where calls cannot run side by side
        # builds this very session again with another intra-op thread count (with_threads)
        self._rebuild: Callable[[int], InferenceSession] | None = None

    def with_threads(self, num_threads: int) -> InferenceSession:
        """The same model file on the same runtime, device and precision, its calls on
        ``num_threads`` intra-op threads: a crowd's batch in one call over several cores, while
        this session keeps one thread per call for one person. It reports what this one does."""
        if self._rebuild is None:
            raise NotImplementedError(f"{type(self).__name__} has one thread count")
        twin = self._rebuild(num_threads)
        twin.runtime_info = self.runtime_info
        return twin

    @property
    def dynamic_batch(self) -> bool:
        return self.input_shape[0] is None

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        """Run (N, ...) float32 input; a fixed-batch model is run item by item."""
        if self.concurrent_calls:
            return self._run_batch(batch)
        with self._turns:
            return self._run_batch(batch)

    def _run_batch(self, batch: np.ndarray) -> list[np.ndarray]:
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


class PerCallerPool:
    """Objects that run one call at a time (an OpenVINO request, a LiteRT interpreter), one
    lent to each concurrent caller: idle ones are reused, a new one is made when all are busy,
    so there are never more than the most callers ever seen at once."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self._make = make
        self._idle: queue.SimpleQueue = queue.SimpleQueue()
        self.first = make()
        self._idle.put(self.first)

    @contextmanager
    def borrowed(self) -> Iterator[Any]:
        try:
            item = self._idle.get_nowait()
        except queue.Empty:
            item = self._make()
        try:
            yield item
        finally:
            self._idle.put(item)


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
        super().__init__()
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
        self.metadata = decode_metadata(dict(props))
        self.runtime_info = info(self._session.get_providers())
        self._rebuild = lambda threads: OrtSession(model, providers, info, metadata_source, threads)

    def _run(self, batch: np.ndarray) -> list[np.ndarray]:
        return self._session.run(None, {self.input_name: batch})


class OpenVinoSession(InferenceSession):
    """The OpenVINO runtime on one device, compiled for latency (frames come one at a time).

    An ``InferRequest`` runs one call at a time (a second one at once fails with "Infer Request
    is busy", or hands one caller the other's outputs): each concurrent caller borrows its own.
    """

    concurrent_calls = True

    def __init__(
        self,
        path: Path,
        device: str,
        requested: str,
        backend: str,
        num_threads: int = 0,
        precision: str = "fast",
    ) -> None:
        super().__init__()
        self._rebuild = lambda threads: OpenVinoSession(
            path, device, requested, backend, threads, precision
        )
        core = openvino_core()
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
                # A stream runs one request at a time (its graph is locked while it runs), so
                # two requests on one stream take turns: one stream of ``num_threads`` threads
                # per caller the cores can run side by side (a crowd's crops cut in parts).
                streams = max(1, available_cores() // num_threads)
                config["NUM_STREAMS"] = streams
                config["INFERENCE_NUM_THREADS"] = num_threads * streams
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
        self._requests = PerCallerPool(compiled.create_infer_request)
        devices = list(compiled.get_property("EXECUTION_DEVICES"))
        hint = compiled.get_property("INFERENCE_PRECISION_HINT")
        running = hint.to_string() if hasattr(hint, "to_string") else str(hint).lower()
        real = devices[0] if devices else device
        self.runtime_info = RuntimeInfo(
            requested=requested,
            backend=backend,
            provider=f"OpenVINO {real}",
            device_name=openvino_device_name(real.split("(")[0]),
            precision={"f32": "fp32", "f16": "fp16", "bf16": "bf16"}.get(running, running),
        )

    def _run(self, batch: np.ndarray) -> list[np.ndarray]:
        with self._requests.borrowed() as request:
            request.infer({0: batch})
            return [request.get_output_tensor(i).data.copy() for i in range(len(self.output_names))]


class TorchSession(InferenceSession):
    """A ``.pth`` checkpoint in PyTorch, for checkpoints not yet exported to ONNX.

    The config comes from ``config_path`` or, failing that, the checkpoint's
    ``meta["config_name"]`` (written by our trainer). Calls take turns: the network's
    intra-op threads already use the cores a second caller would want.
    """

    def __init__(
        self, checkpoint: Path, config_path: str | None, requested: str, num_threads: int = 0
    ) -> None:
        super().__init__()
        import torch

        from hfpose.models.checkpoint import CheckpointError, load_checkpoint, read_checkpoint
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
        self.metadata = decode_metadata(onnx_metadata(config, str(checkpoint)))
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
