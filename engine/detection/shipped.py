"""The two detectors that ship in ``assets/detectors/``, each with the decoding of its outputs.

- ``NanoDetDetector``: NanoDet-m, COCO, 416x416 (assets/detectors/nanodet_416.onnx, converted
  by training/export/convert/nanodet_tfjs_to_onnx.py). Outputs per stride 8/16/32 the 80 class scores
  (sigmoid applied) and the GFL box: 4 sides x 11 bins, the distance being the softmax mean
  of the bins times the stride, measured from the cell centre. The frame is letterboxed
  (aspect kept) to 416 on its long side, the short side padded to a multiple of 32 only, fed
  RGB: on the 28 people annotated in mmpose's COCO and PoseTrack18 test frames it finds 23
  (IoU >= 0.5) at the default score 0.3 / NMS 0.5 (24 with a square 416x416 letterbox, 70%
  more work on 16:9 frames; the one missed is 11 pixels wide, at 0.29).
- ``BlazePoseDetector``: MediaPipe's pose detector, 224x224, 2254 SSD anchors, all decoded,
  merged with weighted NMS like MediaPipe; the person box is a 3:4 rectangle along the body
  circle's axis (hip centre, radius to the full-body keypoint), clipped to the frame. For one
  person near the camera (webcam); it misses small or distant people.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from hfpose.engine.detection.boxes import empty_boxes, letterbox, nms, weighted_nms
from hfpose.engine.detection.person_detector import DetectorError, PersonDetector
from hfpose.engine.runtime.model_files import asset_path
from hfpose.engine.runtime.sessions import InferenceSession


class NanoDetDetector(PersonDetector):
    """NanoDet-m (COCO) reduced to its person class; see the module docstring for the layout."""

    name = "nanodet"
    # 0.3 / 0.5: 23 of the 28 people annotated in mmpose_testdata's COCO and PoseTrack18 frames
    # (0.35 found 20); the extra boxes on those frames were unannotated spectators.
    default_score_threshold = 0.3
    default_nms_threshold = 0.5
    input_size = 416
    strides = (8, 16, 32)
    reg_max = 10
    person_class = 0

    def __init__(self, model_path: str | Path | None = None, backend: str = "auto", **kw) -> None:
        super().__init__(model_path or asset_path("detectors/nanodet_416.onnx"), backend, **kw)
        meta = self.session.metadata
        self._mean = tuple(float(m) for m in meta.get("mean", (103.53, 116.28, 123.675)))
        self._inv_std = 1.0 / np.asarray(meta.get("std", (57.375, 57.12, 58.395)), np.float32)
        self._rgb = meta.get("color_order", "RGB") == "RGB"
        self._bins = np.arange(self.reg_max + 1, dtype=np.float32)
        self._grids: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
        self._warm_up()

    def _check_session(self, session: InferenceSession) -> None:
        names = set(session.output_names)
        wanted = {f"{kind}_stride{s}" for kind in ("cls", "reg") for s in self.strides}
        if not wanted <= names:
            raise DetectorError(
                f"{self.model_path} is not the converted NanoDet model (outputs {sorted(names)})"
            )

    def input_size_wh(self, frame_wh: tuple[int, int]) -> tuple[int, int]:
        """416 on the long side; the short side padded to a multiple of 32 when the model's
        height and width are free (a 16:9 frame runs at 416x256: 40% less work), else 416."""
        if self.session.input_shape[2] is not None and self.session.input_shape[3] is not None:
            return self.session.input_shape[3], self.session.input_shape[2]
        scale = self.input_size / max(frame_wh)
        width, height = (max(32, math.ceil(side * scale / 32) * 32) for side in frame_wh)
        return min(width, self.input_size), min(height, self.input_size)

    def _grid(self, size_wh: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Cell centres (pixels) and strides of all levels, in the model's output order."""
        if size_wh not in self._grids:
            centers, strides = [], []
            for stride in self.strides:
                ys, xs = np.mgrid[0 : size_wh[1] // stride, 0 : size_wh[0] // stride]
                cells = np.column_stack([xs.ravel(), ys.ravel()]).astype(np.float32) + 0.5
                centers.append(cells * stride)
                strides.append(np.full(len(cells), stride, np.float32))
            self._grids[size_wh] = (np.concatenate(centers), np.concatenate(strides))
        return self._grids[size_wh]

    def preprocess(self, frame_bgr: np.ndarray) -> tuple[np.ndarray, float]:
        height, width = frame_bgr.shape[:2]
        image, scale, _ = letterbox(frame_bgr, self.input_size_wh((width, height)))
        # OpenCV's blob maker (swap, mean, NCHW in one pass) takes half numpy's time here.
        blob = cv2.dnn.blobFromImage(image, 1.0, None, self._mean, swapRB=self._rgb)
        blob *= self._inv_std[None, :, None, None]
        return blob, scale

    def detect(self, frame_bgr: np.ndarray) -> np.ndarray:
        blob, scale = self.preprocess(frame_bgr)
        outputs = dict(zip(self.session.output_names, self.session.run(blob), strict=True))
        scores = np.concatenate(
            [outputs[f"cls_stride{s}"][0, :, self.person_class] for s in self.strides]
        )
        keep = np.nonzero(scores > self.score_threshold)[0]
        if len(keep) == 0:
            return empty_boxes()
        all_centers, all_strides = self._grid((blob.shape[3], blob.shape[2]))
        regression = np.concatenate([outputs[f"reg_stride{s}"][0] for s in self.strides])[keep]
        logits = regression.reshape(-1, 4, self.reg_max + 1)
        probabilities = np.exp(logits - logits.max(axis=2, keepdims=True))
        probabilities /= probabilities.sum(axis=2, keepdims=True)
        # Distances to the left, top, right and bottom side, in input pixels.
        distances = (probabilities @ self._bins) * all_strides[keep, None]
        centers = all_centers[keep]
        boxes = np.concatenate([centers - distances[:, :2], centers + distances[:, 2:]], axis=1)
        boxes /= scale
        height, width = frame_bgr.shape[:2]
        np.clip(boxes, 0, [width, height, width, height], out=boxes)
        chosen = nms(boxes, scores[keep], self.nms_threshold)
        return np.column_stack([boxes[chosen], scores[keep][chosen]]).astype(np.float32)


def ssd_anchor_centers(
    input_size: int = 224,
    strides: tuple[int, ...] = (8, 16, 32, 32, 32),
    anchors_per_layer: int = 2,
    offset: float = 0.5,
) -> np.ndarray:
    """(A, 2) normalised anchor centres as MediaPipe's SsdAnchorsCalculator makes them for
    BlazePose (fixed anchor size, aspect ratio 1 plus one interpolated scale = 2 per layer).

    Consecutive layers with the same stride share one feature map, each adding its anchors at
    every cell: 28x28x2 + 14x14x2 + 7x7x6 = 2254.
    """
    centers = []
    layer = 0
    while layer < len(strides):
        stride = strides[layer]
        same = 0
        while layer < len(strides) and strides[layer] == stride:
            same += 1
            layer += 1
        cells = math.ceil(input_size / stride)
        ys, xs = np.mgrid[0:cells, 0:cells]
        grid = (np.column_stack([xs.ravel(), ys.ravel()]) + offset) / cells
        centers.append(np.repeat(grid, anchors_per_layer * same, axis=0))
    return np.concatenate(centers).astype(np.float32)


def body_circle_to_box(
    hips: np.ndarray, radius_points: np.ndarray, width_ratio: float = 0.75
) -> np.ndarray:
    """(N,4) boxes from BlazePose's body circle (centre at the hips, radius to the point above
    the head): 2r along the body axis, ``width_ratio`` * 2r across it, axis-aligned.

    MediaPipe crops the circle's square; our crops are 3:4, so a square box would leave the
    person small in the crop. A 3:4 rectangle along the body axis (any rotation, e.g. lying
    down) encloses the same body with a quarter less background.
    """
    axis = radius_points - hips
    radius = np.linalg.norm(axis, axis=1)
    sin = np.abs(axis[:, 0]) / np.maximum(radius, 1e-6)  # angle of the axis from vertical
    cos = np.abs(axis[:, 1]) / np.maximum(radius, 1e-6)
    half_along, half_across = radius, radius * width_ratio
    half_x = sin * half_along + cos * half_across
    half_y = cos * half_along + sin * half_across
    half = np.column_stack([half_x, half_y])
    return np.concatenate([hips - half, hips + half], axis=1)


class BlazePoseDetector(PersonDetector):
    """MediaPipe's pose detector: every anchor decoded, weighted NMS, body circle -> box."""

    name = "blazepose"
    default_score_threshold = 0.5  # MediaPipe's min_score_thresh for this model
    default_nms_threshold = 0.3  # MediaPipe's min_suppression_threshold
    input_size = 224
    num_keypoints = 4

    def __init__(self, model_path: str | Path | None = None, backend: str = "auto", **kw) -> None:
        super().__init__(
            model_path or asset_path("detectors/blazepose_detector.onnx"), backend, **kw
        )
        self._anchors = ssd_anchor_centers(self.input_size)
        self._warm_up()

    def _check_session(self, session: InferenceSession) -> None:
        if session.input_shape[1:] != (self.input_size, self.input_size, 3) or set(
            session.output_names
        ) != {"regressors", "scores"}:
            raise DetectorError(f"{self.model_path} is not the converted BlazePose detector")

    def detect(self, frame_bgr: np.ndarray) -> np.ndarray:
        return self.detect_with_keypoints(frame_bgr)[0]

    def detect_with_keypoints(self, frame_bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The boxes (N, 5) and the keypoints (N, 4, 2, frame pixels) they were placed from, in
        MediaPipe's order: the hips' midpoint and the point above the head that sets the body
        circle (the box's two), then the shoulders' midpoint and the upper body's circle point."""
        image, scale, (pad_x, pad_y) = letterbox(
            frame_bgr, (self.input_size, self.input_size), center=True
        )
        blob = cv2.cvtColor(image, cv2.COLOR_BGR2RGB).astype(np.float32) * (1 / 127.5) - 1.0
        outputs = dict(zip(self.session.output_names, self.session.run(blob[None]), strict=True))
        raw = outputs["regressors"][0]
        # MediaPipe clips the logits at +-100; float64 keeps exp(100) finite.
        logits = np.clip(outputs["scores"][0, :, 0].astype(np.float64), -100.0, 100.0)
        scores = (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)
        keep = np.nonzero(scores > self.score_threshold)[0]
        if len(keep) == 0:
            return empty_boxes(), np.zeros((0, self.num_keypoints, 2), np.float32)
        # Offsets are in input pixels relative to the anchor centre (anchor size fixed to 1).
        anchors = self._anchors[keep] * self.input_size
        raw = raw[keep]
        centers = raw[:, 0:2] + anchors
        half = raw[:, 2:4] * 0.5
        boxes = np.concatenate([centers - half, centers + half], axis=1)
        keypoints = raw[:, 4:].reshape(-1, self.num_keypoints, 2) + anchors[:, None, :]
        merged, merged_scores = weighted_nms(
            boxes, keypoints.reshape(len(keep), -1), scores[keep], self.nms_threshold
        )
        keypoints = merged.reshape(-1, self.num_keypoints, 2)
        keypoints = (keypoints - np.array([pad_x, pad_y], np.float32)) / scale
        person_boxes = body_circle_to_box(keypoints[:, 0], keypoints[:, 1])
        height, width = frame_bgr.shape[:2]
        np.clip(person_boxes, 0, [width, height, width, height], out=person_boxes)
        return np.column_stack([person_boxes, merged_scores]).astype(np.float32), keypoints
