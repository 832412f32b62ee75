"""``load_from``: start a run from the best weights so far instead of from scratch.

Three sources fit: this project's checkpoints, the authors' mmpose checkpoints (both read with
``weights_only=True`` by :mod:`hfpose.models.checkpoint`) and an exported ONNX file. The ONNX path is
what makes "never start over" work when only the shipped model survives: export folded every
BatchNorm into its convolution (``w' = w * g / sqrt(v + eps)``, ``b' = beta - mu * g /
sqrt(v + eps)``), so a conv's fused weight and bias are all that is left of each conv + BN pair.

Reading one back, each conv gets its fused weight and each BN is set up so that

- in eval mode it adds exactly the fused bias: ``running_mean = m``, ``running_var = s^2``,
  ``weight = sqrt(s^2 + eps)``, ``bias = m + b'``, which gives ``y - m + m + b' = y + b'``;
- in train mode its batch statistics reproduce the same output approximately, because ``m`` and
  ``s`` are the per-channel mean and standard deviation of the conv's output ``y = w' * x``,
  measured on real training crops run through the fused model.

Signs and scales: the BN weight is always positive (a negative original gamma is already in the
sign of ``w'``) and equals the channel's output spread, close to ``|gamma|`` of the original
pair; a dead channel (``s`` = 0) gets ``weight = sqrt(eps)`` and passes its constant bias in both
modes. The conv weights stay at the fused scale ``|w * gamma| / sigma``: BN makes the output
invariant to that scale, so only the optimiser's step size relative to the weights differs from
the original run.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hfpose.models.checkpoint import CheckpointError, load_checkpoint, trained_image_size

CALIBRATION_SAMPLES = 256


def _conv_bn_pairs(model: nn.Module, input_hw: tuple[int, int]) -> tuple[list[str], dict[str, str]]:
    """Convs in call order, and each BN's conv (the conv whose output is the BN's input)."""
    names = {module: name for name, module in model.named_modules()}
    order: list[str] = []
    produced: dict[int, str] = {}
    pairs: dict[str, str] = {}
    keep: list[torch.Tensor] = []  # keeps outputs alive so their ids stay unique

    def on_conv(module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
        order.append(names[module])
        produced[id(output)] = names[module]
        keep.append(output)

    def on_bn(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        conv = produced.get(id(inputs[0]))
        if conv is not None:
            pairs[conv] = names[module]

    handles = []
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            handles.append(module.register_forward_hook(on_conv))
        elif isinstance(module, nn.BatchNorm2d):
            handles.append(module.register_forward_pre_hook(on_bn))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, *input_hw))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    bns = [name for name, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)]
    orphans = sorted(set(bns) - set(pairs.values()))
    if orphans:
        raise CheckpointError(
            f"BatchNorm layers not directly after a conv cannot be read from a folded ONNX: "
            f"{', '.join(orphans[:4])}"
        )
    return order, pairs


def read_onnx_convs(path: str | Path) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Every Conv node of an ONNX file in graph order (its weight, bias, weight name) + metadata."""
    import onnx
    from onnx import numpy_helper

    try:
        proto = onnx.load(str(path))
    except Exception as exc:  # onnx raises DecodeError and others for a file that is not ONNX
        raise CheckpointError(f"{path} is not a readable ONNX file: {exc}") from None
    initializers = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    convs = []
    for node in proto.graph.node:
        if node.op_type == "BatchNormalization":
            raise CheckpointError(f"{path} has unfolded BatchNormalization nodes: not an export")
        if node.op_type != "Conv":
            continue
        if node.input[1] not in initializers:
            raise CheckpointError(f"{path}: conv {node.name} has no constant weight")
        bias = initializers.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        convs.append(
            {"weight": initializers[node.input[1]], "bias": bias, "weight_name": node.input[1]}
        )
    metadata = {p.key: p.value for p in proto.metadata_props}
    return convs, metadata


def onnx_input_size(metadata: dict[str, str]) -> tuple[int, int] | None:
    """The input (width, height) an exported ONNX records in its metadata, if any."""
    if "input_size" not in metadata:
        return None
    width, height = json.loads(metadata["input_size"])
    return int(width), int(height)


def load_fused_onnx(
    model: nn.Module, path: str | Path, input_wh: tuple[int, int]
) -> dict[str, torch.Tensor]:
    """Load an exported ONNX's convs into ``model``; returns each BN's fused bias b'.

    After this call every BN adds exactly its b' in eval mode (running mean 0, var 1); the train
    mode statistics come from :func:`calibrate_batchnorm`. A file exported at another input size
    is refused (:func:`load_initial_weights` alone takes any size: the weights fit every size,
    so a training run may continue them at its own).
    """
    path = Path(path)
    convs, metadata = read_onnx_convs(path)
    exported = onnx_input_size(metadata)
    if exported is not None and exported != tuple(input_wh):
        raise CheckpointError(
            f"{path} was exported at {exported[0]}x{exported[1]} (WxH) but the config's input "
            f"is {input_wh[0]}x{input_wh[1]}: use the matching config"
        )
    return _load_fused_convs(model, path, convs, input_wh)


def _load_fused_convs(
    model: nn.Module, path: Path, convs: list[dict[str, Any]], input_wh: tuple[int, int]
) -> dict[str, torch.Tensor]:
    """The body of :func:`load_fused_onnx`, on convs already read from ``path``."""
    order, pairs = _conv_bn_pairs(model, (input_wh[1], input_wh[0]))
    modules = dict(model.named_modules())
    if len(convs) != len(order):
        head = "keypoint_head.final_layer"
        hint = ""
        if len(convs) and convs[-1]["weight"].shape[0] != modules[head].weight.shape[0]:
            hint = (
                f": it predicts {convs[-1]['weight'].shape[0]} keypoints and the config "
                f"{modules[head].weight.shape[0]}"
            )
        raise CheckpointError(
            f"{path} does not fit this model: {len(convs)} convolutions in the file, "
            f"{len(order)} in the config's network (HF-HRNet-18 vs -30?){hint}"
        )
    state = model.state_dict()
    fused_bias: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for index, (name, found) in enumerate(zip(order, convs)):
            conv = modules[name]
            weight = torch.from_numpy(np.array(found["weight"]))
            if tuple(weight.shape) != tuple(conv.weight.shape):
                raise CheckpointError(
                    f"{path} does not fit this model: conv {index} ({name}) is "
                    f"{tuple(weight.shape)} in the file and {tuple(conv.weight.shape)} here"
                )
            if found["weight_name"] in state and found["weight_name"] != f"{name}.weight":
                raise CheckpointError(
                    f"{path}: conv {index} is {found['weight_name']} in the file but {name} here"
                )
            conv.weight.copy_(weight)
            bias = found["bias"]
            bias = (
                torch.zeros(weight.shape[0]) if bias is None else torch.from_numpy(np.array(bias))
            )
            if name in pairs:
                bn = modules[pairs[name]]
                fused_bias[pairs[name]] = bias.float().clone()
                bn.running_mean.zero_()
                bn.running_var.fill_(1.0)
                bn.weight.fill_(float(np.sqrt(1.0 + bn.eps)))
                bn.bias.copy_(bias)
            elif conv.bias is not None:
                conv.bias.copy_(bias)
            elif found["bias"] is not None and np.any(found["bias"] != 0):
                raise CheckpointError(f"{path}: conv {name} has a bias in the file and none here")
    return fused_bias


def calibrate_batchnorm(
    model: nn.Module, fused_bias: dict[str, torch.Tensor], batches: Iterable[torch.Tensor]
) -> int:
    """Set each BN from its conv's output statistics on ``batches``; returns samples seen.

    ``model`` must be as :func:`load_fused_onnx` left it (eval output = fused model).
    """
    modules = dict(model.named_modules())
    bn_names = {modules[name]: name for name in fused_bias}
    sums: dict[str, torch.Tensor] = {}
    squares: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}

    def on_bn(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        name = bn_names[module]
        y = inputs[0].detach().double()
        sums[name] = sums.get(name, 0) + y.sum(dim=(0, 2, 3))
        squares[name] = squares.get(name, 0) + (y * y).sum(dim=(0, 2, 3))
        counts[name] = counts.get(name, 0) + y.shape[0] * y.shape[2] * y.shape[3]

    handles = [module.register_forward_pre_hook(on_bn) for module in bn_names]
    was_training = model.training
    model.eval()
    seen = 0
    try:
        with torch.no_grad():
            for images in batches:
                model(images)
                seen += len(images)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    if not seen:
        raise CheckpointError("no training samples to calibrate the BatchNorm statistics with")
    with torch.no_grad():
        for name, bias in fused_bias.items():
            bn = modules[name]
            mean = sums[name] / counts[name]
            var = (squares[name] / counts[name] - mean * mean).clamp_min(0)
            bn.running_mean.copy_(mean.float())
            bn.running_var.copy_(var.float())
            bn.weight.copy_(torch.sqrt(var + bn.eps).float())
            bn.bias.copy_((mean + bias.double()).float())
            bn.num_batches_tracked.zero_()
    return seen


def calibration_batches(
    dataset: Any, samples: int = CALIBRATION_SAMPLES, batch_size: int = 32, seed: int = 0
) -> Iterable[torch.Tensor]:
    """``samples`` augmented training crops in batches: a fixed random order of the people,
    repeated with fresh augmentations when the set has fewer."""
    order = np.random.default_rng(seed).permutation(len(dataset))
    keys = [(k // len(order), int(order[k % len(order)])) for k in range(samples)]
    for start in range(0, len(keys), batch_size):
        images = [dataset[key]["img"] for key in keys[start : start + batch_size]]
        yield torch.stack([torch.as_tensor(np.asarray(image)) for image in images])


def load_initial_weights(
    model: nn.Module,
    path: str | Path,
    input_wh: tuple[int, int],
    calibration: Iterable[torch.Tensor] | None = None,
) -> str:
    """Load ``load_from`` weights (checkpoint or exported ONNX) into ``model``; one-line summary.

    Only weights are taken: a new run keeps its own optimiser, schedule and epoch count. Weights
    trained at another input size load (HF-HRNet's weights do not depend on it) and the summary
    says so, since a run continued at another size starts a little off its best.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"load_from: {path} not found")
    if path.suffix.lower() == ".onnx":
        convs, metadata = read_onnx_convs(path)
        fused_bias = _load_fused_convs(model, path, convs, input_wh)
        size_note = _size_note(onnx_input_size(metadata), input_wh)
        if calibration is None:
            return f"weights from {path} (BatchNorm not calibrated{size_note})"
        seen = calibrate_batchnorm(model, fused_bias, calibration)
        return (
            f"weights from {path} (folded BatchNorm split back, statistics from {seen} "
            f"training crops{size_note})"
        )
    checkpoint = load_checkpoint(model, path)
    meta = checkpoint.get("meta", {})
    where = f"epoch {meta['epoch']}" if "epoch" in meta else ""
    size_note = _size_note(trained_image_size(meta), input_wh)
    details = (where + size_note).lstrip(", ")
    return f"weights from {path}" + (f" ({details})" if details else "")


def _size_note(trained_wh: tuple[int, int] | None, input_wh: tuple[int, int]) -> str:
    if trained_wh is None or tuple(trained_wh) == tuple(input_wh):
        return ""
    return f", trained at {trained_wh[0]}x{trained_wh[1]}, continued at {input_wh[0]}x{input_wh[1]}"
