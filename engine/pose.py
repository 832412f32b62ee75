"""Top-down pose estimation: person boxes in a BGR frame -> keypoints in frame pixels.

Public API (stable):

- ``PoseEstimator(model_path, backend="auto", config_path=None, flip_test=False,
  use_dark=False, batch_mode="auto", num_threads=0, crop_workers=1)`` (``num_threads`` 0: the
  runtime uses every core; ``crop_workers`` N runs up to N crops at once when crops go one per
  call on a runtime that allows concurrent calls)
- ``create_pose_estimator(model=None, backend="auto", **options) -> PoseEstimator``: ``None``
  is the shipped model (``assets/`` + ``DEFAULT_MODEL``); a ``.pth`` needs ``config_path``.
- ``PoseEstimator.estimate(frame_bgr, boxes) -> PoseResult``; ``boxes`` (N, 4 or 5) x1, y1,
  x2, y2[, score] in frame pixels. ``PoseResult`` (a NamedTuple, unpack as
  ``keypoints, scores = ...``): ``keypoints`` (N, K, 2) float32 x, y in frame pixels and
  ``scores`` (N, K) float32 heatmap peak values, row i for box i.
- ``PoseEstimator.set_backend(backend)`` / ``set_model(model_path, config_path=None)``: build
  the new session first, swap it in at once; the next ``estimate`` call uses it (safe to call
  from another thread, e.g. the GUI's settings dialog while the pipeline runs). A failure
  raises and leaves the running model untouched.
- ``runtime_info`` (what really runs), ``dataset_info`` (``models.metainfo.DatasetInfo``: names,
  flip pairs, skeleton), ``input_size_wh``, ``model_path``.

Everything a model needs comes from its ONNX metadata (written by ``hfpose-export``): input
size, mean/std, keypoint layout. A foreign ONNX heatmap model without metadata is taken as
COCO-17 with ImageNet normalisation, its input size read from the graph.

Batching: ``batch_mode="auto"`` sends all crops of a frame in one call on backends where that
measured faster and one call per crop elsewhere; ``benchmarks/bench_models.py`` measures it
(``BATCHED_BACKENDS`` records the outcome on the development machine).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from engine.runtimes import InferenceSession, ModelError, RuntimeInfo, asset_path, create_session
from models.metainfo import COCO, DatasetInfo, get_dataset_info
from models.processing import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    bbox_xywh_to_cs,
    bbox_xyxy_to_xywh,
    decode_heatmaps,
    merge_flip_heatmaps,
    normalize_crops,
    warp_crops,
)

# Backends (RuntimeInfo.backend) that get all crops of a frame in one call. Measured with
# benchmarks/bench_models.py and by hand (HF-HRNet-18, 2-core AMD EPYC, shared machine):
# OpenVINO bf16 is 1.13-1.22x faster batched (4 or 8 crops) in CPU time and in wall time.
# ONNX Runtime's CPU provider is not: per crop costs 4% (4 crops) to 12% (8 crops) less CPU
# time; with both threads free batched was ~10% faster in wall time, but next to a busy
# detector thread (the pipeline's case) the two were within noise, so it runs per crop.
# GPUs and NPUs are throughput devices where one call per frame is the norm.
BATCHED_BACKENDS = frozenset({"openvino", "gpu", "npu", "torch"})
BATCH_MODES = ("auto", "batched", "per_crop")


# The shipped keypoint model, looked up like the detectors (checkout or installed data files).
DEFAULT_MODEL = "hf_hrnet_18_coco_256x192.onnx"


class PoseResult(NamedTuple):
    """Keypoints of all boxes of one frame, row i for box i."""

    keypoints: np.ndarray  # (N, K, 2) float32 x, y in frame pixels
    scores: np.ndarray  # (N, K) float32


@dataclass(frozen=True)
class _LoadedModel:
    """A session with the facts needed to feed it; swapped as one object between frames."""

    session: InferenceSession
    model_path: Path
    config_path: str | None
    dataset_info: DatasetInfo
    input_size_wh: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    rgb: bool


def _load(
    model_path: str | Path, backend: str, config_path: str | Path | None, num_threads: int
) -> _LoadedModel:
    session = create_session(model_path, backend, config_path, num_threads)
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
    if "keypoint_names" in meta:
        dataset_info = DatasetInfo.from_dict(meta)
    elif "dataset_name" in meta:
        dataset_info = get_dataset_info(str(meta["dataset_name"]))
    else:
        dataset_info = COCO
    # One blank crop: refuses a model that is not a heatmap model now rather than mid-stream,
    # and takes the first call's set-up cost before the first frame.
    outputs = session.run(np.zeros((1, 3, height, width), np.float32))
    heatmaps = outputs[0]
    if heatmaps.ndim != 4 or heatmaps.shape[1] != dataset_info.num_keypoints:
        raise ModelError(
            f"{model_path} is not a top-down heatmap model for {dataset_info.num_keypoints} "
            f"keypoints: its first output has shape {tuple(heatmaps.shape)}"
        )
    return _LoadedModel(
        session=session,
        model_path=Path(model_path),
        config_path=str(config_path) if config_path else None,
        dataset_info=dataset_info,
        input_size_wh=(width, height),
        mean=tuple(meta.get("mean", IMAGENET_MEAN)),
        std=tuple(meta.get("std", IMAGENET_STD)),
        rgb=str(meta.get("color_order", "RGB")).upper() == "RGB",
    )


class PoseEstimator:
    """HF-HRNet (or any top-down heatmap model) on the chosen backend, swappable between frames."""

    def __init__(
        self,
        model_path: str | Path,
        backend: str = "auto",
        config_path: str | Path | None = None,
        flip_test: bool = False,
        use_dark: bool = False,
        batch_mode: str = "auto",
        num_threads: int = 0,
        crop_workers: int = 1,
    ) -> None:
        if batch_mode not in BATCH_MODES:
            raise ValueError(f"batch_mode must be one of {BATCH_MODES}, not {batch_mode!r}")
        if crop_workers < 1:
            raise ValueError(f"crop_workers must be >= 1, got {crop_workers}")
        self.flip_test = flip_test
        self.use_dark = use_dark
        self.batch_mode = batch_mode
        self._backend = backend
        self._num_threads = num_threads
        self._swap_lock = threading.Lock()
        self._model = _load(model_path, backend, config_path, num_threads)
        # Crops of a frame run one per worker at once where the runtime allows concurrent
        # calls: one-thread sessions keep as many cores busy as there are workers.
        self._crop_pool = ThreadPoolExecutor(crop_workers) if crop_workers > 1 else None

    # ---------------------------------------------------------------- what runs, and swaps

    @property
    def runtime_info(self) -> RuntimeInfo:
        return self._model.session.runtime_info

    @property
    def dataset_info(self) -> DatasetInfo:
        return self._model.dataset_info

    @property
    def input_size_wh(self) -> tuple[int, int]:
        return self._model.input_size_wh

    @property
    def model_path(self) -> Path:
        return self._model.model_path

    def set_backend(self, backend: str) -> RuntimeInfo:
        """Run the same model on ``backend`` from the next frame on; returns what really runs."""
        with self._swap_lock:
            current = self._model
            self._model = _load(current.model_path, backend, current.config_path, self._num_threads)
            self._backend = backend
        return self.runtime_info

    def set_model(
        self, model_path: str | Path, config_path: str | Path | None = None
    ) -> RuntimeInfo:
        """Run another model (ONNX, or .pth with its config) on the current backend."""
        with self._swap_lock:
            self._model = _load(model_path, self._backend, config_path, self._num_threads)
        return self.runtime_info

    # ------------------------------------------------------------------------- inference

    def batched(self) -> bool:
        """Whether this frame's crops go through the runtime in one call."""
        if self.batch_mode != "auto":
            return self.batch_mode == "batched"
        return self.runtime_info.backend in BATCHED_BACKENDS

    def estimate(self, frame_bgr: np.ndarray, boxes: np.ndarray) -> PoseResult:
        """Keypoints for every box (extra columns such as a score are ignored)."""
        model = self._model  # one reference for the whole frame, even if a swap happens now
        count = model.dataset_info.num_keypoints
        boxes = np.asarray(boxes, dtype=np.float32)
        if boxes.size == 0:
            return PoseResult(np.zeros((0, count, 2), np.float32), np.zeros((0, count), np.float32))
        boxes = boxes.reshape(len(boxes), -1)
        width, height = model.input_size_wh
        centers, scales = bbox_xywh_to_cs(bbox_xyxy_to_xywh(boxes[:, :4]), width / height)
        crops = warp_crops(frame_bgr, centers, scales, (width, height))
        if model.rgb:
            crops = crops[..., ::-1]
        batch = normalize_crops(crops, model.mean, model.std)
        heatmaps = self._infer(model.session, batch)
        if self.flip_test:
            flipped = self._infer(model.session, np.ascontiguousarray(batch[..., ::-1]))
            heatmaps = merge_flip_heatmaps(heatmaps, flipped, model.dataset_info.flip_pairs)
        keypoints, scores = decode_heatmaps(heatmaps, centers, scales, use_dark=self.use_dark)
        return PoseResult(keypoints.astype(np.float32), scores.astype(np.float32))

    def _infer(self, session: InferenceSession, batch: np.ndarray) -> np.ndarray:
        if len(batch) == 1 or self.batched():
            return session.run(batch)[0]
        crops = [batch[i : i + 1] for i in range(len(batch))]
        if self._crop_pool is not None and session.concurrent_calls:
            return np.concatenate([out[0] for out in self._crop_pool.map(session.run, crops)])
        return np.concatenate([session.run(crop)[0] for crop in crops])


def create_pose_estimator(
    model: str | Path | None = None, backend: str = "auto", **options: Any
) -> PoseEstimator:
    """The pipeline's entry point: ``model`` ``None`` means the shipped model."""
    if model is None:
        try:
            model = asset_path(DEFAULT_MODEL)
        except ModelError:
            raise ModelError(
                f"the default keypoint model {DEFAULT_MODEL} is not in assets/ yet: pass a model "
                "(export one with hfpose-export)"
            ) from None
    return PoseEstimator(model, backend, **options)
