"""Keypoint-model families: which crop a top-down ONNX model wants and what its outputs mean.

``PoseEstimator`` (engine/keypoints/estimator.py) cuts crops and runs sessions; this module decides, from the
ONNX file itself, how to cut them and how to read the result. One decoder per output family:

- ``heatmaps``: (N, K, h, w) maps; this project's exports and mmpose / mmdeploy heatmap models
  (HRNet, ViTPose, ...). Argmax + quarter offset or DARK; flip test with the file's flip pairs.
- ``simcc``: two (N, K, L) classification vectors (RTMPose / DWPose as mmdeploy and rtmlib
  write them, outputs ``simcc_x`` / ``simcc_y``); the split ratio is L over the input side.
- ``direct_keypoints``: (N, 1, K, 3) or (N, K, 3) y, x in 0..1 of the crop and a score
  (MoveNet SinglePose, which decodes its own heatmaps inside the graph).

The family comes from the metadata key ``output_family`` when present, else from the output
names and shapes; a file that fits none is refused with one line naming what was found. Each
family states its input (``CropSpec``) so the crop matches what the model was trained on:
metadata values win, the family's defaults fill the gaps (ImageNet mean/std on RGB and a 1.25
box padding for mmpose-style models; for a MoveNet file without metadata a square crop 1.1x the
box, see training/export/convert/movenet_tfjs_to_onnx.py for the measurement).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hfpose.engine.runtime.model_files import ModelError, asset_path
from hfpose.engine.runtime.sessions import InferenceSession
from hfpose.models.metainfo import DatasetInfo, get_dataset_info
from hfpose.models.processing import (
    BOX_PADDING,
    IMAGENET_MEAN,
    IMAGENET_STD,
    bbox_xywh_to_cs,
    bbox_xyxy_to_xywh,
    decode_heatmaps,
    heatmap_to_image,
    merge_flip_heatmaps,
    normalize_crops,
    warp_crops,
)

FAMILIES = ("heatmaps", "simcc", "direct_keypoints")

# Shipped keypoint models by the name ``--model`` / ``PoseTracker(model=...)`` accept; the
# default runs when no model is given.
DEFAULT_SHIPPED_MODEL = "hf-hrnet"
SHIPPED_MODELS = {
    "hf-hrnet": "hf_hrnet_18_coco_256x192.onnx",
    "movenet-lightning": "movenet_singlepose_lightning.onnx",
    "movenet-thunder": "movenet_singlepose_thunder.onnx",
}
# One line per shipped model for the app's settings dialog: title, then accuracy on the
# validation sets (GT boxes; benchmarks/bench_accuracy.py), CPU time per person with one
# thread (benchmarks/bench_keypoint_models.py, AMD EPYC, ONNX Runtime) and licence. The
# README's models section and the model cards give the commands and the full tables.
SHIPPED_MODEL_NOTES = {
    "hf-hrnet": (
        "HF-HRNet-18 (default)",
        "MPII PCKh 75.6 · LSPET PCK 55.0 · COCO AP 33.1 · 31 ms/person · research-use weights",
    ),
    "movenet-lightning": (
        "MoveNet Lightning",
        "MPII PCKh 84.9 · LSPET PCK 58.6 · COCO AP 51.7 · 10 ms/person · Apache-2.0 (Google)",
    ),
    "movenet-thunder": (
        "MoveNet Thunder",
        "MPII PCKh 85.7 · LSPET PCK 66.6 · COCO AP 59.7 · 33 ms/person · Apache-2.0 (Google)",
    ),
}
# A MoveNet file without metadata: a square crop 1.1x the box's longer side, Thunder's measured
# best (the shipped files carry their own: Thunder 1.1, Lightning 1.0; see the converter).
DIRECT_KEYPOINTS_PADDING = 1.1


def resolve_model(model: str | Path) -> Path:
    """A shipped model's name (``movenet-thunder``) or a file path -> the file to load."""
    name = str(model)
    if name in SHIPPED_MODELS:
        return asset_path(SHIPPED_MODELS[name])
    path = Path(model)
    if path.suffix == "" and not path.exists():
        raise ModelError(
            f"unknown model {name!r}: give a file (.onnx, .pth) or one of {', '.join(SHIPPED_MODELS)}"
        )
    return path


@dataclass(frozen=True)
class CropSpec:
    """What one model is fed: float32 NCHW crops of ``size_wh``, the box padded by ``padding``
    and widened to the input's aspect ratio (square for a square input), then
    ``(pixel / 255 - mean) / std`` in RGB or BGR order."""

    size_wh: tuple[int, int]
    padding: float
    mean: tuple[float, ...]
    std: tuple[float, ...]
    rgb: bool

    @property
    def square(self) -> bool:
        return self.size_wh[0] == self.size_wh[1]

    def describe(self) -> str:
        shape = "square" if self.square else "aspect-kept"
        order = "RGB" if self.rgb else "BGR"
        mean = "/".join(f"{m:g}" for m in self.mean)
        std = "/".join(f"{s:g}" for s in self.std)
        return (
            f"{self.size_wh[0]}x{self.size_wh[1]} {shape} crop, box x{self.padding:g}, {order}, "
            f"(pixel/255 - {mean}) / {std}, float32 NCHW"
        )


@dataclass(frozen=True)
class Crops:
    """One frame's crops and the geometry that maps results back to the frame."""

    batch: np.ndarray  # (N, 3, H, W) float32
    centers: np.ndarray  # (N, 2)
    scales: np.ndarray  # (N, 2) in hfpose.models.processing.PIXEL_STD units


class KeypointDecoder:
    """One output family: cuts crops to ``crop`` and turns the session's outputs into
    keypoints (N, K, 2) in frame pixels and scores (N, K)."""

    family: str = ""
    flip_supported: bool = True

    def __init__(self, crop: CropSpec, dataset_info: DatasetInfo, model_name: str) -> None:
        self.crop = crop
        self.dataset_info = dataset_info
        self.model_name = model_name

    def prepare(self, frame_bgr: np.ndarray, boxes: np.ndarray) -> Crops:
        """Crops for (N, 4+) x1, y1, x2, y2 boxes."""
        width, height = self.crop.size_wh
        xywh = bbox_xyxy_to_xywh(boxes[:, :4])
        centers, scales = bbox_xywh_to_cs(xywh, width / height, self.crop.padding)
        crops = warp_crops(frame_bgr, centers, scales, (width, height))
        batch = normalize_crops(crops, self.crop.mean, self.crop.std, swap_rb=self.crop.rgb)
        return Crops(batch, centers, scales)

    def decode(
        self,
        outputs: list[np.ndarray],
        crops: Crops,
        flipped: list[np.ndarray] | None = None,
        use_dark: bool = False,
    ) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError


class HeatmapDecoder(KeypointDecoder):
    family = "heatmaps"

    def decode(self, outputs, crops, flipped=None, use_dark=False):
        heatmaps = outputs[0]
        if flipped is not None:
            heatmaps = merge_flip_heatmaps(heatmaps, flipped[0], self.dataset_info.flip_pairs)
        return decode_heatmaps(heatmaps, crops.centers, crops.scales, use_dark=use_dark)


class SimccDecoder(KeypointDecoder):
    """mmpose's SimCC: the bin of each vector's maximum over the split ratio is the input
    pixel; the score is the smaller of the two maxima (mmpose's ``get_simcc_maximum``)."""

    family = "simcc"

    def __init__(self, crop: CropSpec, dataset_info: DatasetInfo, model_name: str, x_first: bool):
        super().__init__(crop, dataset_info, model_name)
        self.x_first = x_first

    def decode(self, outputs, crops, flipped=None, use_dark=False):
        simcc_x, simcc_y = outputs[:2] if self.x_first else outputs[1::-1]
        if flipped is not None:  # mmpose's flip_vectors: swap left/right, reverse x
            flip_x, flip_y = flipped[:2] if self.x_first else flipped[1::-1]
            index = self.dataset_info.flip_index()
            simcc_x = (simcc_x + flip_x[:, index, ::-1]) * 0.5
            simcc_y = (simcc_y + flip_y[:, index]) * 0.5
        width, height = self.crop.size_wh
        ratio = np.array([simcc_x.shape[2] / width, simcc_y.shape[2] / height])
        coords = np.stack([simcc_x.argmax(2), simcc_y.argmax(2)], axis=2) / ratio
        scores = np.minimum(simcc_x.max(2), simcc_y.max(2))
        keypoints = np.stack(
            [
                heatmap_to_image(c, center, scale, (width, height))
                for c, center, scale in zip(coords, crops.centers, crops.scales)
            ]
        )
        return keypoints, scores


class DirectKeypointDecoder(KeypointDecoder):
    """MoveNet: (y, x, score) per keypoint in 0..1 of a square crop. Its graph picks the
    person nearest the crop centre and refines its own heatmaps, so there is no flip test."""

    family = "direct_keypoints"
    flip_supported = False

    def decode(self, outputs, crops, flipped=None, use_dark=False):
        values = outputs[0].reshape(len(crops.batch), self.dataset_info.num_keypoints, 3)
        width, height = self.crop.size_wh
        coords = values[..., 1::-1] * np.array([width, height])  # (x, y) in input pixels
        keypoints = np.stack(
            [
                heatmap_to_image(c, center, scale, (width, height))
                for c, center, scale in zip(coords, crops.centers, crops.scales)
            ]
        )
        return keypoints, values[..., 2]


# ---------------------------------------------------------------------- telling them apart


def _layout(meta: dict[str, Any], count: int, model_path: Path) -> DatasetInfo:
    """Keypoint names, flip pairs and skeleton: the metadata's, else the layout known for
    ``count`` keypoints (17 COCO, 16 MPII), else plain numbered points without flip pairs."""
    if "keypoint_names" in meta:
        info = DatasetInfo.from_dict(meta)
    elif "dataset_name" in meta:
        info = get_dataset_info(str(meta["dataset_name"]))
    elif count in (17, 16):
        info = get_dataset_info("coco" if count == 17 else "mpii")
    else:
        names = tuple(f"keypoint_{i}" for i in range(count))
        info = DatasetInfo(
            f"{count} keypoints", names, (), (), ("center",) * count, (0.05,) * count
        )
    if info.num_keypoints != count:
        raise ModelError(
            f"{model_path}: its metadata names {info.num_keypoints} keypoints but the model "
            f"outputs {count}"
        )
    return info


def _describe(names: list[str], outputs: list[np.ndarray]) -> str:
    return ", ".join(f"{n} {tuple(o.shape)}" for n, o in zip(names, outputs))


def _family_from_shapes(
    names: list[str], outputs: list[np.ndarray], size_wh: tuple[int, int]
) -> tuple[str, bool]:
    """The family the outputs look like, and for SimCC whether x comes first; "" if none."""
    lowered = [n.lower() for n in names]
    if len(outputs) >= 2 and outputs[0].ndim == 3 and outputs[1].ndim == 3:
        if outputs[0].shape[1] == outputs[1].shape[1]:
            if "simcc_x" in lowered and "simcc_y" in lowered:
                return "simcc", lowered.index("simcc_x") < lowered.index("simcc_y")
            # Unnamed: the vector whose length is the same multiple of the input's width.
            ratio_x0 = outputs[0].shape[2] / size_wh[0]
            ratio_y1 = outputs[1].shape[2] / size_wh[1]
            if ratio_x0 == ratio_y1 and ratio_x0 >= 1:
                return "simcc", True
            if outputs[1].shape[2] / size_wh[0] == outputs[0].shape[2] / size_wh[1]:
                return "simcc", False
    first = outputs[0]
    if first.shape[-1] == 3 and (first.ndim == 3 or (first.ndim == 4 and first.shape[1] == 1)):
        return "direct_keypoints", True
    # Heatmaps are smaller than the crop and one per keypoint: a picture the input's size,
    # or of 1, 3 or 4 channels, is an image-to-image model's output.
    if first.ndim == 4 and first.shape[1] > 4:
        if first.shape[2] < size_wh[1] and first.shape[3] < size_wh[0]:
            return "heatmaps", True
    return "", True


def identify(model_path: str | Path, session: InferenceSession) -> KeypointDecoder:
    """The decoder for ``session``'s model, from its metadata, output names and shapes.

    Runs one blank crop: a model of no known family is refused now, not mid-stream, and the
    first call's set-up cost is paid before the first frame.
    """
    model_path = Path(model_path)
    meta = session.metadata
    shape = session.input_shape
    if len(shape) != 4 or shape[1] != 3:
        raise ModelError(f"{model_path}: expected an image input (N, 3, H, W), got {shape}")
    if "input_size" in meta:
        width, height = (int(v) for v in meta["input_size"])
    elif shape[2] is not None and shape[3] is not None:
        width, height = int(shape[3]), int(shape[2])
    else:
        raise ModelError(f"{model_path}: input size unknown (no metadata, dynamic H/W)")
    outputs = session.run(np.zeros((1, 3, height, width), np.float32))
    names = list(session.output_names)
    family, x_first = _family_from_shapes(names, outputs, (width, height))
    family = str(meta.get("output_family", family))
    if family not in FAMILIES:
        raise ModelError(
            f"{model_path} is not a top-down keypoint model of a known family "
            f"({', '.join(FAMILIES)}): outputs {_describe(names, outputs)}"
        )
    count = outputs[0].shape[2] if family == "direct_keypoints" and outputs[0].ndim == 4 else 0
    count = count or outputs[0].shape[1]
    direct = family == "direct_keypoints"
    crop = CropSpec(
        size_wh=(width, height),
        padding=float(
            meta.get("bbox_padding", DIRECT_KEYPOINTS_PADDING if direct else BOX_PADDING)
        ),
        mean=tuple(meta.get("mean", (0.5, 0.5, 0.5) if direct else IMAGENET_MEAN)),
        std=tuple(meta.get("std", (0.5, 0.5, 0.5) if direct else IMAGENET_STD)),
        rgb=str(meta.get("color_order", "RGB")).upper() == "RGB",
    )
    info = _layout(meta, int(count), model_path)
    shipped = {file: name for name, file in SHIPPED_MODELS.items()}
    name = shipped.get(model_path.name) or str(meta.get("model_name", model_path.stem))
    if family == "simcc":
        return SimccDecoder(crop, info, name, x_first)
    if family == "direct_keypoints":
        return DirectKeypointDecoder(crop, info, name)
    return HeatmapDecoder(crop, info, name)
