"""int8 LiteRT copy of an HF-HRNet ONNX whose every operator stays in XNNPACK (export time only).

Run by ``hfpose-export --tflite MODEL.onnx --tflite-precision int8`` in the converter
environment of :mod:`hfpose.training.export.convert.onnx_to_tflite` (litert-torch brings
ai-edge-quantizer; add ``opencv-python-headless`` for the peak comparison), never by the engine:

    PY -m hfpose.training.export.convert.tflite_int8 MODEL.onnx OUT.int8.tflite CROPS.npz --report R.json

Why this way, after an ONNX Runtime QDQ attempt kept only 31% of fp32's heatmap peaks and ran
slower: XNNPACK runs int8 convolutions, additions and multiplications natively and converts
between int8 and float inside its own graph, so a model quantized operator by operator stays
one XNNPACK partition, with no quantize/dequantize pairs bouncing through a generic runtime.

- The network is converted as for the fp32 copy, with the cross-resolution weighting's k x k,
  stride k average pooling spelled as a depthwise convolution with weights 1/k^2 (XNNPACK has
  no int8 average pooling; 1/k^2 is exact in per-channel symmetric int8).
- ai-edge-quantizer quantizes it statically: int8 weights, symmetric per output channel; int8
  activations per tensor, their ranges the moving average of each calibration crop's min/max
  (TFLite's convention), from a few hundred real training crops the caller cuts with the
  engine's own crop code (validation lists excluded).
- Left in float on purpose: the input transpose and the heatmap layer (the copy takes and gives
  float32 like the fp32 one, and heatmap peaks are not rounded to 256 levels), and the 8 ReLUs
  after the fusion's branch-0 sum (that sum also feeds the other branches, so the converter
  cannot fuse the ReLU into the addition, and XNNPACK has no int8 ReLU on its own).
- Then, while fewer than ``TARGET_AGREEMENT`` of the float copy's sure heatmap peaks stay put on
  separate tuning crops, the resolution (branch) whose quantization alone costs the most
  agreement goes back to float, one at a time: found by measurement, see
  :func:`resolution_groups` for why resolutions. On HF-HRNet-18: every operator int8
  kept 59.5%, branches 2-3 alone int8 97.0% (assets/MODEL_CARD.md, precision variants).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from hfpose.training.export.quantize import TARGET_AGREEMENT, peak_agreement

# Ops kept in float whatever the measurement says, by TFLite operator name (see the docstring);
# INPUT and OUTPUT are the quantizer's names for the model's own input and output.
FLOAT_OPERATORS = ("INPUT", "OUTPUT", "TRANSPOSE", "RELU")
HEATMAP_LAYER = "keypoint_head"


def _run(model: bytes, crops: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model, num_threads=2)
    interpreter.allocate_tensors()
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    heatmaps = []
    for crop in crops:
        interpreter.set_tensor(inp["index"], np.ascontiguousarray(crop[None], np.float32))
        interpreter.invoke()
        heatmaps.append(interpreter.get_tensor(out["index"]).copy())
    return np.concatenate(heatmaps)


def resolution_groups(model: bytes) -> dict[str, list[str]]:
    """The float model's operators (their output tensors' names) by the resolution they work at,
    named by its height rounded down to a power of two: ``"64"`` is branch 0 of a 256x192 model
    (a padded 66-row tensor included), ``"128"`` the stem, ``"256"`` the input's padding.

    Why by resolution: the released fusion doubles branch 0 in every module (``2 * out[0]``), so
    its tensors reach a few thousand while the updates added to them stay near 1, which one int8
    scale per tensor cannot hold; the lower branches keep ordinary ranges."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model)
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    groups: dict[str, list[str]] = {}
    for op in interpreter._get_ops_details():  # noqa: SLF001 - the only listing of operators
        tensor = tensors[op["outputs"][0]]
        shape = [int(d) for d in tensor["shape"]]
        if op["op_name"] in FLOAT_OPERATORS or len(shape) not in (4, 6):
            continue
        rows = shape[1] * shape[2] if len(shape) == 6 else shape[1]  # NHWC or (n, h, r, w, r, c)
        groups.setdefault(str(1 << (rows.bit_length() - 1)), []).append(tensor["name"])
    return groups


def quantize(float_model: bytes, ranges: dict, float_ops: list[str]) -> bytes:
    """Static int8; ``float_ops`` (output tensor names), the fixed float operators and the
    heatmap layer stay float (XNNPACK converts at their edges)."""
    from ai_edge_quantizer import quantizer, recipe
    from ai_edge_quantizer.algorithm_manager import AlgorithmName
    from ai_edge_quantizer.qtyping import TFLOperationName

    qt = quantizer.Quantizer(float_model)
    qt.load_quantization_recipe(recipe.static_wi8_ai8())
    no = AlgorithmName.NO_QUANTIZE
    for op in FLOAT_OPERATORS:
        qt.update_quantization_recipe(".*", TFLOperationName(op), algorithm_key=no)
    # An operator's scope is its output names, each followed by ";". One pattern for them all:
    # Python caches only so many compiled patterns, and the quantizer matches every operator.
    scopes = [HEATMAP_LAYER]
    if float_ops:
        scopes.append(f"^(?:{'|'.join(map(re.escape, float_ops))});$")
    for scope in scopes:
        qt.update_quantization_recipe(scope, TFLOperationName.ALL_SUPPORTED, algorithm_key=no)
    return bytes(qt.quantize(ranges, enable_progress_report=False).quantized_model)


def calibrate(float_model: bytes, crops: np.ndarray) -> dict:
    """Activation ranges of every tensor over the calibration crops (run on XNNPACK)."""
    from ai_edge_litert.interpreter import Interpreter
    from ai_edge_quantizer import quantizer, recipe
    from ai_edge_quantizer.calibrator import CalibrationMode

    signature = Interpreter(model_content=float_model).get_signature_list()["serving_default"]
    (input_name,) = signature["inputs"]
    qt = quantizer.Quantizer(float_model)
    qt.load_quantization_recipe(recipe.static_wi8_ai8())
    data = {"serving_default": [{input_name: crop[None]} for crop in crops]}
    return qt.calibrate(data, num_threads=2, mode=CalibrationMode.CALIBRATION_PROFILER_BASED)


def quantize_searching(
    float_model: bytes,
    calibration_crops: np.ndarray,
    tuning_crops: np.ndarray,
    log: Callable[[str], None] = print,
    target: float = TARGET_AGREEMENT,
) -> tuple[bytes, list[str], list[tuple[list[str], float]]]:
    """The int8 model, the resolutions left in float and (those, agreement) per attempt: while
    fewer than ``target`` of the float model's sure peaks stay put on the tuning crops, the
    resolution whose quantization alone costs the most goes back to float (never all)."""
    ranges = calibrate(float_model, calibration_crops)
    reference = _run(float_model, tuning_crops)
    groups = resolution_groups(float_model)

    def attempt(float_groups: list[str]) -> tuple[bytes, float]:
        model = quantize(float_model, ranges, [n for g in float_groups for n in groups[g]])
        return model, peak_agreement(reference, _run(model, tuning_crops))[0]

    float_groups: list[str] = []
    model, agreement = attempt(float_groups)
    steps = [(list(float_groups), agreement)]
    log(f"int8 everywhere: {agreement:.3f} of the float copy's sure peaks kept")
    if agreement < target:
        alone = {}
        for group in groups:  # the damage of each resolution quantized on its own
            alone[group] = attempt([g for g in groups if g != group])[1]
            log(f"  only {group} in int8: {alone[group]:.3f}")
        for group in sorted(alone, key=alone.get)[: len(groups) - 1]:
            float_groups.append(group)
            model, agreement = attempt(float_groups)
            steps.append((list(float_groups), agreement))
            log(f"int8, {', '.join(float_groups)} in float: {agreement:.3f}")
            if agreement >= target:
                break
    return model, float_groups, steps


def convert_int8(onnx_path: Path, out_path: Path, crops_path: Path) -> dict:
    """Write the int8 ``out_path``; returns what was done (for the export's record)."""
    import torch

    from hfpose.training.export.convert.onnx_to_tflite import convert_rewritten, network_from_onnx

    data = np.load(crops_path)
    network, _ = network_from_onnx(onnx_path)
    edge, _ = convert_rewritten(network, torch.from_numpy(data["calibration"][:1]), integer=True)
    with tempfile.TemporaryDirectory() as folder:
        float_path = Path(folder) / "float.tflite"
        edge.export(str(float_path))
        float_model = float_path.read_bytes()
    model, float_groups, steps = quantize_searching(
        float_model, data["calibration"], data["tuning"]
    )
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_bytes(model)
    return {
        "tool": "ai-edge-quantizer static int8 (litert-torch conversion)",
        "scheme": "int8 weights symmetric per output channel, int8 activations per tensor "
        "(moving-average min/max)",
        "calibration_crops": len(data["calibration"]),
        "tuning_crops": len(data["tuning"]),
        "float_operators": [*FLOAT_OPERATORS, "the heatmap layer"],
        "float_resolutions": float_groups,
        "search": [{"float_resolutions": g, "tuning_agreement": round(a, 4)} for g, a in steps],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("onnx", type=Path, help="an HF-HRNet ONNX exported by hfpose-export")
    parser.add_argument("out", type=Path, help="the int8 .tflite to write")
    parser.add_argument(
        "crops", type=Path, help=".npz with 'calibration' and 'tuning' (N, 3, H, W) crops"
    )
    parser.add_argument("--report", type=Path, help="write what was done here (JSON)")
    args = parser.parse_args(argv)
    report = convert_int8(args.onnx, args.out, args.crops)
    if args.report:
        args.report.write_text(json.dumps(report, indent=1))
    floats = ", ".join(report["float_resolutions"]) or "none"
    print(f"wrote {args.out}; resolutions left in float: {floats}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
