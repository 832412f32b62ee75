"""LiteRT (XNNPACK) as a CPU runtime for a keypoint model converted by ``hfpose-export --tflite``.

XNNPACK is what makes MediaPipe's BlazePose fast on x86 and Arm; running this project's own
network on it gives ``auto`` a third CPU candidate beside ONNX Runtime and OpenVINO, and the
probe (:mod:`hfpose.engine.runtime.auto`) keeps whichever is fastest on the machine at hand.

The ``.tflite`` lies beside its ONNX file (``m.onnx`` -> ``m.tflite``) with a record,
``m.tflite.json``, written by the export: the ONNX file's sha256 and the parity measured against
it. The engine uses the copy only for that very ONNX file and only if its heatmap peaks agreed;
the keypoint metadata (names, input size, flip pairs) is read from the ONNX file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from hfpose.engine.runtime.auto import derived_copy_is_usable
from hfpose.engine.runtime.discovery import cpu_name
from hfpose.engine.runtime.sessions import InferenceSession, PerCallerPool, RuntimeInfo


def tflite_path(onnx_model: Path, precision: str = "fp32") -> Path:
    """``assets/m.onnx`` -> ``assets/m.tflite`` (int8: ``assets/m.int8.tflite``), where
    ``hfpose-export --tflite [--tflite-precision int8]`` writes."""
    return onnx_model.with_suffix(".int8.tflite" if precision == "int8" else ".tflite")


def record_path(tflite: Path) -> Path:
    return tflite.with_name(tflite.name + ".json")


def checked_tflite(onnx_model: Path, warn: Callable[[str], None]) -> Path | None:
    """The LiteRT copy of ``onnx_model`` if one lies beside it, was converted from this very file
    and kept its heatmap peaks; else None (warning once when a copy is there but unusable)."""
    tflite = tflite_path(onnx_model)
    if onnx_model.suffix != ".onnx" or not tflite.is_file():
        return None
    try:
        record = json.loads(record_path(tflite).read_text())
    except (OSError, json.JSONDecodeError):
        warn(f"{tflite.name} has no readable {record_path(tflite).name}: not used")
        return None
    usable = derived_copy_is_usable(
        tflite, onnx_model, record.get("onnx_sha256"), float(record.get("peak_agreement", 0.0)),
        f"hfpose-export --tflite {onnx_model}", "not used", warn,
    )  # fmt: skip
    return tflite if usable else None


class LiteRtSession(InferenceSession):
    """A ``.tflite`` on LiteRT's XNNPACK delegate (batch 1: a batch runs crop by crop).

    One interpreter runs one call at a time; concurrent callers (a crowd's crops side by side)
    each borrow their own, made on first need, so ``run`` is safe from several threads.
    """

    concurrent_calls = True

    def __init__(
        self, tflite: Path, metadata: dict[str, Any], requested: str, num_threads: int = 0
    ) -> None:
        super().__init__()
        self._rebuild = lambda threads: LiteRtSession(tflite, metadata, requested, threads)
        self._path = tflite
        self._threads = num_threads or os.cpu_count() or 1
        self._interpreters = PerCallerPool(self._interpreter)
        first = self._interpreters.first
        detail = first.get_input_details()[0]
        shape = tuple(int(d) for d in detail["shape"])
        self._input_index = detail["index"]
        self._output_indices = [d["index"] for d in first.get_output_details()]
        self._channels_last = shape[-1] in (1, 3) and shape[1] not in (1, 3)
        n, *rest = shape
        self.input_shape = (n, rest[2], rest[0], rest[1]) if self._channels_last else shape
        self.input_name = str(detail["name"])
        self.output_names = [str(d["name"]) for d in first.get_output_details()]
        self.metadata = metadata
        self.runtime_info = RuntimeInfo(requested, "litert", "LiteRT XNNPACK", cpu_name())

    def _interpreter(self) -> Any:
        from ai_edge_litert.interpreter import Interpreter

        interpreter = Interpreter(model_path=str(self._path), num_threads=self._threads)
        interpreter.allocate_tensors()
        return interpreter

    def _run(self, crop: np.ndarray) -> list[np.ndarray]:
        """One (1, C, H, W) float32 crop."""
        with self._interpreters.borrowed() as interpreter:
            item = crop.transpose(0, 2, 3, 1) if self._channels_last else crop
            interpreter.set_tensor(self._input_index, np.ascontiguousarray(item, np.float32))
            interpreter.invoke()
            return [interpreter.get_tensor(i).copy() for i in self._output_indices]
