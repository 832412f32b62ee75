"""A trained network as a self-describing ONNX file, and its parity with PyTorch.

The training floor's own export: ``hfpose-train --time-budget`` ends with it, and the export
tooling (``hfpose-export``, the int8 and LiteRT copies above it) builds on it.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from hfpose.models.config import model_input_size
from hfpose.models.onnx_metadata import INPUT_NAME, OUTPUT_NAME, onnx_metadata

# Largest |onnx - torch| allowed, relative to max |torch output|.
FP32_TOLERANCE = 1e-4
FP16_TOLERANCE = 1e-2


class _Float16Wrapper:
    """Keeps float32 input and output around a half-precision network."""

    @staticmethod
    def wrap(model: Any) -> Any:
        import torch

        class Wrapped(torch.nn.Module):
            def __init__(self, inner: torch.nn.Module) -> None:
                super().__init__()
                self.inner = inner.half()

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return self.inner(x.half()).float()

        return Wrapped(model)


def export_onnx(
    cfg: dict[str, Any],
    model: Any,
    out_path: str | Path,
    batch: int | None = None,
    fp16: bool = False,
    checkpoint: str | None = None,
    opset: int = 17,
) -> Path:
    """Write ``model`` to ONNX with a fixed spatial size; ``batch=None`` makes batch dynamic."""
    import onnx
    import torch

    width, height = model_input_size(cfg)
    model = model.eval()
    network = _Float16Wrapper.wrap(copy.deepcopy(model)) if fp16 else model
    example = torch.zeros(batch or 1, 3, height, width)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    dynamic_axes = None if batch else {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer chatter about shape-derived python ints
        torch.onnx.export(
            network,
            (example,),
            str(out_path),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes=dynamic_axes,
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )
    proto = onnx.load(str(out_path))
    for key, value in onnx_metadata(cfg, checkpoint).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "hfpose-export"
    onnx.checker.check_model(proto)
    onnx.save(proto, str(out_path))
    return out_path


def verify_onnx(model: Any, onnx_path: str | Path, batch: int = 2, seed: int = 0) -> float:
    """Largest |ORT - torch| on one random input, relative to the largest |torch| output."""
    import onnxruntime as ort
    import torch

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    shape = session.get_inputs()[0].shape
    n = shape[0] if isinstance(shape[0], int) else batch
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 3, shape[2], shape[3])).astype(np.float32)
    with torch.no_grad():
        expected = model.eval()(torch.from_numpy(x)).float().numpy()
    (got,) = session.run([OUTPUT_NAME], {INPUT_NAME: x})
    scale = float(np.abs(expected).max()) or 1.0
    return float(np.abs(got - expected).max()) / scale
