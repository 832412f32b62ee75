"""What an exported HF-HRNet ONNX file says about itself: its tensor names and metadata.

The exporter writes this metadata and the engine's PyTorch session builds the same from a
checkpoint, so both read one definition here, below the engine and the export tooling alike.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hfpose.models.config import model_heatmap_size, model_input_size
from hfpose.models.metainfo import get_dataset_info
from hfpose.models.processing import BOX_PADDING, IMAGENET_MEAN, IMAGENET_STD, PIXEL_STD

INPUT_NAME = "input"
OUTPUT_NAME = "heatmaps"


def onnx_metadata(cfg: dict[str, Any], checkpoint: str | None) -> dict[str, str]:
    """Metadata written into the ONNX file; every value is a JSON string."""
    info = get_dataset_info(cfg["dataset_info"])
    mean, std = IMAGENET_MEAN, IMAGENET_STD
    for step in cfg.get("val_pipeline", []):
        if step.get("type") == "NormalizeTensor":
            mean, std = tuple(step["mean"]), tuple(step["std"])
    values: dict[str, Any] = {
        "hfpose_format": 1,
        "config_name": cfg["config_name"],
        "input_size": list(model_input_size(cfg)),
        "heatmap_size": list(model_heatmap_size(cfg)),
        "mean": list(mean),
        "std": list(std),
        "color_order": "RGB",
        "pixel_std": PIXEL_STD,
        "bbox_padding": BOX_PADDING,
        "checkpoint": Path(checkpoint).name if checkpoint else None,
        **info.to_dict(),
    }
    return {key: json.dumps(value) for key, value in values.items()}
