"""Convert MediaPipe's BlazePose person detector (TFLite) to ONNX (run once).

Why: the light detector for one person near the camera. mediapipe==0.10.21 ships
``mediapipe/modules/pose_detection/pose_detection.tflite`` (Apache-2.0): 224x224 NHWC input in
[-1, 1], 2254 SSD anchors, outputs (1, 2254, 12) box + 4 keypoints and (1, 2254, 1) logits.
Its weights are stored as float16 (DEQUANTIZE ops) and partly sparse (DENSIFY ops), which
tf2onnx does not convert. Both only ever act on constants, so we let the TFLite interpreter
compute their outputs once, write those as plain float32 buffers, delete the ops, and hand the
rewritten flatbuffer to tf2onnx. The result is checked against the original TFLite model.

Run it in the throwaway conversion venv (see nanodet_tfjs_to_onnx.py for its set-up;
tensorflow-cpu 2.15.1, tf2onnx 1.16.1, onnx 1.16.2, onnxruntime 1.26.0)::

    /work/convenv/bin/python training/export/convert/blazepose_detector_tflite_to_onnx.py \
        --tflite /path/to/site-packages/mediapipe/modules/pose_detection/pose_detection.tflite \
        --out assets/detectors/blazepose_detector.onnx

The .tflite comes from ``pip download mediapipe==0.10.21 --no-deps`` (unzip the wheel).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import tensorflow as tf
import tf2onnx
from tensorflow.lite.python import schema_py_generated as schema
from tensorflow.lite.tools import flatbuffer_utils

CONSTANT_OPS = {"DENSIFY", "DEQUANTIZE"}
OUTPUT_NAMES = ("regressors", "scores")  # TFLite "Identity", "Identity_1"


def _op_name(model: schema.ModelT, op: schema.OperatorT) -> str:
    code = model.operatorCodes[op.opcodeIndex]
    number = max(code.builtinCode, code.deprecatedBuiltinCode)
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    return names[number]


def fold_constant_ops(tflite_path: Path) -> bytes:
    """Replace every DENSIFY/DEQUANTIZE op by a float32 constant holding its output."""
    interpreter = tf.lite.Interpreter(
        model_path=str(tflite_path), experimental_preserve_all_tensors=True
    )
    interpreter.allocate_tensors()
    sample = np.zeros(interpreter.get_input_details()[0]["shape"], np.float32)
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], sample)
    interpreter.invoke()

    model = flatbuffer_utils.read_model(str(tflite_path))
    if len(model.subgraphs) != 1:
        raise ValueError("expected a single-subgraph model")
    graph = model.subgraphs[0]
    kept, folded = [], 0
    for op in graph.operators:
        if _op_name(model, op) not in CONSTANT_OPS:
            kept.append(op)
            continue
        # A DENSIFY -> DEQUANTIZE chain folds at both steps; consumers read the last output.
        (target,) = op.outputs
        value = np.ascontiguousarray(interpreter.get_tensor(target), dtype=np.float32)
        buffer = schema.BufferT()
        buffer.data = np.frombuffer(value.tobytes(), np.uint8)
        model.buffers.append(buffer)
        tensor = graph.tensors[target]
        tensor.buffer = len(model.buffers) - 1
        tensor.type = schema.TensorType.FLOAT32
        folded += 1
    graph.operators = kept
    # The float16/sparse sources are now unused; drop their sparsity so no reader trips on it.
    used = {i for op in kept for i in op.inputs} | set(graph.outputs)
    for index, tensor in enumerate(graph.tensors):
        if index not in used and tensor.sparsity is not None:
            tensor.sparsity = None
            tensor.buffer = 0
    print(f"folded {folded} DENSIFY/DEQUANTIZE ops into float32 constants")
    return flatbuffer_utils.convert_object_to_bytearray(model)


def add_metadata(model: onnx.ModelProto) -> None:
    """What the engine's decoder needs (mediapipe's pose_detection graph options)."""
    meta = {
        "model": "MediaPipe BlazePose person detector (pose_detection.tflite)",
        "source": "mediapipe==0.10.21 wheel, mediapipe/modules/pose_detection (Apache-2.0)",
        "converted_with": f"tensorflow {tf.__version__}, tf2onnx {tf2onnx.__version__}",
        "input_size": [224, 224],
        "input_layout": "NHWC, RGB, pixel / 127.5 - 1, letterboxed",
        "num_anchors": 2254,
        "anchor_strides": [8, 16, 32, 32, 32],
        "keypoints": ["hip_center", "full_body_radius", "shoulder_center", "upper_body_radius"],
    }
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key = key
        entry.value = json.dumps(value)


def compare_with_tflite(tflite_path: Path, onnx_path: Path) -> float:
    rng = np.random.default_rng(0)
    sample = rng.uniform(-1, 1, (1, 224, 224, 3)).astype(np.float32)
    interpreter = tf.lite.Interpreter(model_path=str(tflite_path))
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], sample)
    interpreter.invoke()
    expected = {
        d["name"]: interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()
    }
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = dict(zip(OUTPUT_NAMES, session.run(list(OUTPUT_NAMES), {"image": sample}), strict=True))
    return max(
        float(np.abs(expected["Identity"] - got["regressors"]).max()),
        float(np.abs(expected["Identity_1"] - got["scores"]).max()),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tflite", type=Path, required=True)
    parser.add_argument(
        "--out", type=Path, default=Path("assets/detectors/blazepose_detector.onnx")
    )
    parser.add_argument("--opset", type=int, default=13)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folded_path = Path(tmp) / "pose_detection_fp32.tflite"
        folded_path.write_bytes(fold_constant_ops(args.tflite))
        model, _ = tf2onnx.convert.from_tflite(str(folded_path), opset=args.opset)
    renames = {"Identity": OUTPUT_NAMES[0], "Identity_1": OUTPUT_NAMES[1], "input_1": "image"}
    for node in model.graph.node:
        node.input[:] = [renames.get(n, n) for n in node.input]
        node.output[:] = [renames.get(n, n) for n in node.output]
    for value in [*model.graph.input, *model.graph.output]:
        value.name = renames.get(value.name, value.name)
    add_metadata(model)
    onnx.checker.check_model(model)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, args.out)
    max_diff = compare_with_tflite(args.tflite, args.out)
    print(
        f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB); max |TFLite - ONNX| = {max_diff:.2e}"
    )
    if max_diff > 1e-3:
        raise SystemExit("ONNX output differs from TFLite: do not ship this file")


if __name__ == "__main__":
    main()
