"""Reading and writing HF-HRNet checkpoints.

Three layouts load: the authors' mmpose 0.x files (``{'meta', 'state_dict', ...}``), a bare state
dict, and this project's own checkpoints (mmpose layout plus trainer state). Keys are the
authors' keys, so no conversion table exists; a checkpoint that does not fit the config is
refused with the missing, unexpected and wrongly shaped keys named, and with the likely reason.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not fit the model."""


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint file safely (``weights_only=True``) into a dict with a ``state_dict``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt or unsafe files
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{path} is not a readable PyTorch checkpoint: {first_line}"
        ) from None
    if not isinstance(data, Mapping):
        raise CheckpointError(f"{path} holds a {type(data).__name__}, not a checkpoint dict")
    if "state_dict" in data and isinstance(data["state_dict"], Mapping):
        checkpoint = dict(data)
    elif data and all(isinstance(v, torch.Tensor) for v in data.values()):
        checkpoint = {"meta": {}, "state_dict": dict(data)}
    else:
        raise CheckpointError(f"{path} has no 'state_dict' and is not a bare state dict")
    state = checkpoint["state_dict"]
    # DataParallel / DistributedDataParallel wrappers prefix every key with 'module.'.
    if state and all(k.startswith("module.") for k in state):
        checkpoint["state_dict"] = {k[len("module.") :]: v for k, v in state.items()}
    checkpoint.setdefault("meta", {})
    return checkpoint


def trained_image_size(meta: Mapping[str, Any]) -> tuple[int, int] | None:
    """The input (width, height) a checkpoint was trained at, if its meta records it."""
    if "image_size" in meta:
        width, height = meta["image_size"]
        return int(width), int(height)
    config_text = meta.get("config")
    if isinstance(config_text, str):  # mmpose stores the config's pretty text
        match = re.search(r"image_size\s*=\s*\[\s*(\d+)\s*,\s*(\d+)\s*\]", config_text)
        if match:
            return int(match.group(1)), int(match.group(2))
    return None


def _describe(keys: list[str], limit: int = 6) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys)} in all)" if len(keys) > limit else "")


def check_compatible(
    model: nn.Module,
    checkpoint: Mapping[str, Any],
    input_size_wh: tuple[int, int] | None = None,
) -> list[str]:
    """Every reason this checkpoint does not fit ``model`` (empty when it fits exactly)."""
    problems = []
    trained_size = trained_image_size(checkpoint.get("meta", {}))
    if input_size_wh is not None and trained_size is not None and trained_size != input_size_wh:
        problems.append(
            f"the checkpoint was trained at {trained_size[0]}x{trained_size[1]} (WxH) but the "
            f"config's input is {input_size_wh[0]}x{input_size_wh[1]}: use the matching config"
        )
    model_state = model.state_dict()
    state = checkpoint["state_dict"]
    missing = [k for k in model_state if k not in state]
    unexpected = [k for k in state if k not in model_state]
    shapes = [
        f"{k} (checkpoint {tuple(state[k].shape)}, model {tuple(model_state[k].shape)})"
        for k in model_state
        if k in state and tuple(state[k].shape) != tuple(model_state[k].shape)
    ]
    if missing:
        problems.append(f"missing keys: {_describe(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_describe(unexpected)}")
    if shapes:
        problems.append(f"wrongly shaped keys: {_describe(shapes)}")
    head = "keypoint_head.final_layer.weight"
    if head in state and head in model_state and state[head].shape[0] != model_state[head].shape[0]:
        problems.append(
            f"the checkpoint predicts {state[head].shape[0]} keypoints and the config "
            f"{model_state[head].shape[0]} (an MPII checkpoint for a COCO config, or the reverse?)"
        )
    if any(k.startswith("backbone.stage") for k in missing + unexpected):
        problems.append(
            "the stage depth differs: HF-HRNet-18 and -30 checkpoints are not interchangeable"
        )
    return problems


def load_checkpoint(
    model: nn.Module,
    path: str | Path,
    strict: bool = True,
    input_size_wh: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """Load weights into ``model``; returns the checkpoint dict (meta, optimiser, ...).

    Strict by default: anything that does not fit raises :class:`CheckpointError` naming it.
    With ``strict=False`` the fitting tensors load and the rest is reported in the return value's
    ``load_problems``.
    """
    checkpoint = read_checkpoint(path)
    problems = check_compatible(model, checkpoint, input_size_wh)
    if problems and strict:
        raise CheckpointError(f"{path} does not fit this model: " + "; ".join(problems))
    model_state = model.state_dict()
    fitting = {
        k: v
        for k, v in checkpoint["state_dict"].items()
        if k in model_state and tuple(v.shape) == tuple(model_state[k].shape)
    }
    model.load_state_dict(fitting, strict=False)
    checkpoint["load_problems"] = problems
    return checkpoint


def save_checkpoint(path: str | Path, model: nn.Module, meta: dict[str, Any], **extra: Any) -> None:
    """Write ``{'meta', 'state_dict', **extra}`` atomically (a crash never leaves half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module = model.module if hasattr(model, "module") else model
    payload = {"meta": meta, "state_dict": module.state_dict(), **extra}
    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
