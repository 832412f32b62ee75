"""Person detectors: a BGR frame in, person boxes ``(N, 5)`` x1, y1, x2, y2, score out.

Public API (stable):

- ``create_detector(name_or_path="nanodet", backend="auto", score_threshold=None,
  nms_threshold=None) -> PersonDetector``; names: ``nanodet`` (default, shipped),
  ``blazepose`` (shipped), or a path to a user's YOLOX / RTMDet / YOLOv8-style ONNX model.
- ``PersonDetector.detect(frame_bgr) -> np.ndarray (N, 5)`` float32, frame pixels, best first.
- ``PersonDetector.runtime_info`` (what really runs), ``.name``, ``.set_backend(backend)``.
- ``DETECTOR_NAMES``; ``DetectorError`` for a model whose outputs we cannot interpret.

Detectors:

- ``NanoDetDetector``: NanoDet-m, COCO, 416x416 (assets/detectors/nanodet_416.onnx, converted
  by models/convert/nanodet_tfjs_to_onnx.py). Outputs per stride 8/16/32 the 80 class scores
  (sigmoid applied) and the GFL box: 4 sides x 11 bins, the distance being the softmax mean
  of the bins times the stride, measured from the cell centre. The frame is letterboxed
  (aspect kept) to 416 on its long side, the short side padded to a multiple of 32 only, fed RGB: on the 28 people annotated in mmpose's COCO and PoseTrack18 test
  frames it finds 23 (IoU >= 0.5) at the default score 0.3 / NMS 0.5 (24 with a square
  416x416 letterbox, 70% more work on 16:9 frames; the one missed is 11 pixels wide, at 0.29).
- ``BlazePoseDetector``: MediaPipe's pose detector, 224x224, 2254 SSD anchors, all decoded,
  merged with weighted NMS like MediaPipe; the person box is a 3:4 rectangle along the body
  circle's axis (hip centre, radius to the full-body keypoint), clipped to the frame. For one
  person near the camera (webcam); it misses small or distant people.
- ``OnnxPersonDetector``: a user's model; the layout (mmdeploy end2end ``dets``/``labels``,
  YOLOv8 (1, 4+C, N), YOLOX raw (1, N, 5+C), YOLOv5 (1, N, 5+C)) is recognised from the output
  shapes, anything else refused by name; details in its docstring.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from hfpose.engine.model_files import asset_path, read_onnx_metadata
from hfpose.engine.runtimes import create_session
from hfpose.engine.sessions import InferenceSession, RuntimeInfo
from hfpose.engine.tracking import box_iou

DETECTOR_NAMES = ("nanodet", "blazepose")


class DetectorError(ValueError):
    """A detector model whose inputs or outputs this engine cannot interpret."""


def letterbox(
    frame: np.ndarray,
    size_wh: tuple[int, int],
    center: bool = False,
    fill: int = 0,
    antialias: bool = True,
) -> tuple[np.ndarray, float, tuple[float, float]]:
    """Resize keeping the aspect ratio and pad with ``fill``; returns image, scale, (pad_x,
    pad_y). ``antialias``: :func:`shrink` (the shipped detectors'); else plain bilinear, as
    the exporters of users' detectors (YOLO, RTMDet) resize.

    A frame pixel p maps to p * scale + pad in the network input.
    """
    height, width = frame.shape[:2]
    scale = min(size_wh[0] / width, size_wh[1] / height)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    pad_x = (size_wh[0] - new_w) // 2 if center else 0
    pad_y = (size_wh[1] - new_h) // 2 if center else 0
    canvas = np.full((size_wh[1], size_wh[0], 3), fill, dtype=np.uint8)
    resized = shrink(frame, (new_w, new_h)) if antialias else cv2.resize(frame, (new_w, new_h))
    canvas[pad_y : pad_y + new_h, pad_x : pad_x + new_w] = resized
    return canvas, scale, (float(pad_x), float(pad_y))


def shrink(frame: np.ndarray, size_wh: tuple[int, int]) -> np.ndarray:
    """Resize with little aliasing, fast: an integer-factor area average, then bilinear.

    Plain bilinear downscaling aliases small people away (NanoDet, letterboxed square, found
    22 instead of 24 of the 28 annotated people); INTER_AREA at a fractional ratio costs 6 ms on a 1080p frame,
    its integer-ratio path plus a bilinear step about 2 ms. The rows and columns cut to make
    the ratio an integer (fewer than the factor) lie at the right and bottom edges.
    """
    height, width = frame.shape[:2]
    factor = int(min(width / size_wh[0], height / size_wh[1]))
    if factor >= 2:
        cropped = frame[: height - height % factor, : width - width % factor]
        frame = cv2.resize(
            cropped, (width // factor, height // factor), interpolation=cv2.INTER_AREA
        )
    return cv2.resize(frame, size_wh, interpolation=cv2.INTER_LINEAR)


def nms(boxes_xyxy: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression, best score first."""
    if len(boxes_xyxy) == 0:
        return np.zeros(0, dtype=np.int64)
    xywh = np.column_stack([boxes_xyxy[:, :2], boxes_xyxy[:, 2:4] - boxes_xyxy[:, :2]])
    keep = cv2.dnn.NMSBoxes(xywh.tolist(), scores.tolist(), 0.0, iou_threshold)
    keep = np.asarray(keep, dtype=np.int64).reshape(-1)
    return keep[np.argsort(-scores[keep], kind="stable")]


def weighted_nms(
    boxes_xyxy: np.ndarray, values: np.ndarray, scores: np.ndarray, iou_threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """MediaPipe's WEIGHTED suppression: each kept detection is the score-weighted mean of
    itself and everything it suppresses (steadier boxes than keeping only the best anchor).

    ``values`` (N, D) are averaged with the same weights (e.g. keypoints). Returns the merged
    rows of ``values`` and their scores (the best score of each cluster).
    """
    order = np.argsort(-scores, kind="stable")
    boxes_xyxy, values, scores = boxes_xyxy[order], values[order], scores[order]
    merged, merged_scores = [], []
    remaining = np.ones(len(scores), dtype=bool)
    for i in range(len(scores)):
        if not remaining[i]:
            continue
        overlap = box_iou(boxes_xyxy[i : i + 1], boxes_xyxy)[0] > iou_threshold
        cluster = remaining & overlap
        cluster[i] = True
        weights = scores[cluster]
        merged.append((values[cluster] * weights[:, None]).sum(0) / weights.sum())
        merged_scores.append(scores[i])
        remaining &= ~cluster
    if not merged:
        return np.zeros((0, values.shape[1]), np.float32), np.zeros(0, np.float32)
    return np.asarray(merged, np.float32), np.asarray(merged_scores, np.float32)


def _empty_boxes() -> np.ndarray:
    return np.zeros((0, 5), dtype=np.float32)


class PersonDetector:
    """Common part: one inference session on a chosen backend, swappable between frames."""

    name: str
    default_score_threshold: float
    default_nms_threshold: float

    def __init__(
        self,
        model_path: str | Path,
        backend: str = "auto",
        score_threshold: float | None = None,
        nms_threshold: float | None = None,
        num_threads: int = 0,
    ) -> None:
        self.model_path = Path(model_path)
        self.num_threads = num_threads
        self.score_threshold = (
            self.default_score_threshold if score_threshold is None else score_threshold
        )
        self.nms_threshold = self.default_nms_threshold if nms_threshold is None else nms_threshold
        self.session: InferenceSession = create_session(self.model_path, backend, None, num_threads)
        self._check_session(self.session)

    @property
    def runtime_info(self) -> RuntimeInfo:
        return self.session.runtime_info

    def set_backend(self, backend: str) -> None:
        """Rebuild the session on another backend (the old one keeps working if this fails)."""
        session = create_session(self.model_path, backend, None, self.num_threads)
        self._check_session(session)
        self.session = session
        self._warm_up()

    def _warm_up(self) -> None:
        """One blank frame, so the runtime's first-call set-up does not delay the first frame."""
        self.detect(np.zeros((480, 640, 3), np.uint8))

    def _check_session(self, session: InferenceSession) -> None:
        """Refuse a model whose layout this detector cannot decode (clear one-line message)."""

    def detect(self, frame_bgr: np.ndarray) -> np.ndarray:
        raise NotImplementedError


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
            return _empty_boxes()
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
        self.last_keypoints = np.zeros((0, self.num_keypoints, 2), np.float32)
        self._warm_up()

    def _check_session(self, session: InferenceSession) -> None:
        if session.input_shape[1:] != (self.input_size, self.input_size, 3) or set(
            session.output_names
        ) != {"regressors", "scores"}:
            raise DetectorError(f"{self.model_path} is not the converted BlazePose detector")

    def detect(self, frame_bgr: np.ndarray) -> np.ndarray:
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
            self.last_keypoints = np.zeros((0, self.num_keypoints, 2), np.float32)
            return _empty_boxes()
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
        self.last_keypoints = keypoints
        person_boxes = body_circle_to_box(keypoints[:, 0], keypoints[:, 1])
        height, width = frame_bgr.shape[:2]
        np.clip(person_boxes, 0, [width, height, width, height], out=person_boxes)
        return np.column_stack([person_boxes, merged_scores]).astype(np.float32)


def _anchor_free_grid(
    size_wh: tuple[int, int], strides: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """Cell offsets (N,2) and strides (N,) of an anchor-free head (YOLOX), row-major per stride."""
    cells, cell_strides = [], []
    for stride in strides:
        ys, xs = np.mgrid[0 : size_wh[1] // stride, 0 : size_wh[0] // stride]
        cells.append(np.column_stack([xs.ravel(), ys.ravel()]))
        cell_strides.append(np.full(xs.size, stride))
    return np.concatenate(cells).astype(np.float32), np.concatenate(cell_strides).astype(np.float32)


class OnnxPersonDetector(PersonDetector):
    """A user's ONNX person detector; the layout is recognised from the output shapes.

    Accepted (input (1, 3, H, W) static; the person is class 0; boxes in input pixels):

    - ``end2end``: NMS inside the model, as mmdeploy exports RTMDet / YOLOX (rtmlib's
      models): ``dets`` (1, N, 5) x1, y1, x2, y2, score, optionally ``labels`` (1, N).
      Input BGR, letterboxed top-left on grey 114; normalised with mean (103.53, 116.28,
      123.675) / std (57.375, 57.12, 58.395) like RTMDet, not at all when the file name
      contains "yolox" (mmdet's YOLOX takes raw pixels).
    - ``yolov8``: Ultralytics YOLOv8 / YOLO11 export: one output (1, 4 + C, N), rows cx, cy,
      w, h, then C class scores. Input RGB / 255, letterboxed centred on grey 114.
    - ``yolox``: the YOLOX repository's export without decoding: one output (1, N, 5 + C) with
      N = the anchor-free cells of strides 8/16/32; x, y offsets and log w, h per cell, then
      objectness and C class scores (sigmoid applied). Input BGR 0-255, top-left grey 114.
    - ``yolov5``: one output (1, N, 5 + C) with N = 3 anchors x those cells, decoded cx, cy,
      w, h, objectness, C class scores. Input RGB / 255, letterboxed centred on grey 114.

    ONNX metadata ``mean`` / ``std`` (JSON lists, input colour order) override the
    normalisation. Anything else is refused with a message saying what was found.
    """

    name = "onnx"
    default_score_threshold = 0.4
    default_nms_threshold = 0.5
    _RTMDET_MEAN = (103.53, 116.28, 123.675)
    _RTMDET_STD = (57.375, 57.12, 58.395)

    def _check_session(self, session: InferenceSession) -> None:
        shape = session.input_shape
        if len(shape) != 4 or shape[1] != 3 or shape[2] is None or shape[3] is None:
            raise DetectorError(
                f"{self.model_path.name}: expected a (1, 3, H, W) image input with fixed H and W, "
                f"got {shape}"
            )
        self.input_wh = (int(shape[3]), int(shape[2]))
        self.layout = self._recognise_layout(session)
        self._configure_input(session)

    def _output_shapes(self, session: InferenceSession) -> list[tuple[int, ...]]:
        blank = np.zeros((1, 3, self.input_wh[1], self.input_wh[0]), np.float32)
        return [tuple(o.shape) for o in session.run(blank)]

    def _recognise_layout(self, session: InferenceSession) -> str:
        shapes = self._output_shapes(session)
        cells = sum((self.input_wh[0] // s) * (self.input_wh[1] // s) for s in (8, 16, 32))
        if len(shapes[0]) == 3 and shapes[0][0] == 1 and shapes[0][2] == 5:
            if len(shapes) == 1 or (len(shapes) == 2 and shapes[1][:2] == shapes[0][:2]):
                return "end2end"
        if len(shapes) == 1 and len(shapes[0]) == 3 and shapes[0][0] == 1:
            _, rows, columns = shapes[0]
            if columns == cells and 5 <= rows < columns:
                return "yolov8"
            if rows == cells and columns > 5:
                return "yolox"
            if rows == 3 * cells and columns > 5:
                return "yolov5"
        raise DetectorError(
            f"{self.model_path.name}: unrecognised detector outputs {shapes}; accepted: "
            "end2end dets (1,N,5) [+labels (1,N)], YOLOv8 (1,4+C,N), YOLOX (1,N,5+C) or "
            "YOLOv5 (1,N,5+C) raw outputs"
        )

    def _configure_input(self, session: InferenceSession) -> None:
        meta = session.metadata
        yolox_like = self.layout == "yolox" or (
            self.layout == "end2end" and "yolox" in self.model_path.name.lower()
        )
        self._rgb = self.layout in ("yolov8", "yolov5")
        self._centered = self._rgb
        if self._rgb:
            mean, std = (0.0, 0.0, 0.0), (255.0, 255.0, 255.0)
        elif yolox_like:
            mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
        else:
            mean, std = self._RTMDET_MEAN, self._RTMDET_STD
        self._mean = np.asarray(meta.get("mean", mean), np.float32)
        self._inv_std = 1.0 / np.asarray(meta.get("std", std), np.float32)
        if self.layout == "yolox":
            self._cells, self._cell_strides = _anchor_free_grid(self.input_wh, (8, 16, 32))

    def _preprocess(self, frame_bgr: np.ndarray) -> tuple[np.ndarray, float, tuple[float, float]]:
        canvas, scale, (pad_x, pad_y) = letterbox(
            frame_bgr, self.input_wh, center=self._centered, fill=114, antialias=False
        )
        if self._rgb:
            canvas = cv2.cvtColor(canvas, cv2.COLOR_BGR2RGB)
        blob = (canvas.astype(np.float32) - self._mean) * self._inv_std
        return np.ascontiguousarray(blob.transpose(2, 0, 1)[None]), scale, (pad_x, pad_y)

    def _candidates(self, outputs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, bool]:
        """Boxes xyxy in input pixels, person scores, and whether NMS is still needed."""
        if self.layout == "end2end":
            dets = outputs[0][0]
            person = np.ones(len(dets), bool) if len(outputs) == 1 else outputs[1][0] == 0
            return dets[person, :4], dets[person, 4], False
        if self.layout == "yolov8":
            rows = outputs[0][0].T
            centers, sizes, scores = rows[:, :2], rows[:, 2:4], rows[:, 4]
        else:
            rows = outputs[0][0]
            if self.layout == "yolox":
                centers = (rows[:, :2] + self._cells) * self._cell_strides[:, None]
                sizes = np.exp(np.clip(rows[:, 2:4], -10, 10)) * self._cell_strides[:, None]
            else:
                centers, sizes = rows[:, :2], rows[:, 2:4]
            scores = rows[:, 4] * rows[:, 5]
        boxes = np.concatenate([centers - sizes / 2, centers + sizes / 2], axis=1)
        return boxes, scores, True

    def detect(self, frame_bgr: np.ndarray) -> np.ndarray:
        blob, scale, (pad_x, pad_y) = self._preprocess(frame_bgr)
        boxes, scores, needs_nms = self._candidates(self.session.run(blob))
        keep = np.nonzero(scores > self.score_threshold)[0]
        boxes, scores = boxes[keep].astype(np.float32), scores[keep].astype(np.float32)
        boxes = (boxes - np.array([pad_x, pad_y, pad_x, pad_y], np.float32)) / scale
        height, width = frame_bgr.shape[:2]
        np.clip(boxes, 0, [width, height, width, height], out=boxes)
        order = nms(boxes, scores, self.nms_threshold) if needs_nms else np.argsort(-scores)
        return np.column_stack([boxes[order], scores[order]]).astype(np.float32)


def create_detector(
    name_or_path: str | Path = "nanodet",
    backend: str = "auto",
    score_threshold: float | None = None,
    nms_threshold: float | None = None,
    num_threads: int = 0,
) -> PersonDetector:
    """``nanodet`` (default), ``blazepose``, or a path to a user's ONNX person detector.

    ``num_threads`` 0 lets the runtime use every core.

    Raises ``ModelError`` for a missing/unreadable file and ``DetectorError`` for an ONNX model
    whose outputs are not one of the accepted layouts.
    """
    options = {
        "score_threshold": score_threshold,
        "nms_threshold": nms_threshold,
        "num_threads": num_threads,
    }
    name = str(name_or_path)
    if name.lower() == "nanodet":
        return NanoDetDetector(None, backend, **options)
    if name.lower() == "blazepose":
        return BlazePoseDetector(None, backend, **options)
    path = Path(name_or_path)
    if path.suffix.lower() != ".onnx" and not path.exists():
        raise ValueError(
            f"unknown detector {name!r}: use {' or '.join(DETECTOR_NAMES)} or an .onnx file path"
        )
    # Our own converted files, picked by path (e.g. from a file dialog), keep their decoders.
    model_name = str(read_onnx_metadata(path).get("model", ""))
    if model_name.startswith("NanoDet"):
        return NanoDetDetector(path, backend, **options)
    if model_name.startswith("MediaPipe BlazePose"):
        return BlazePoseDetector(path, backend, **options)
    return OnnxPersonDetector(path, backend, **options)
