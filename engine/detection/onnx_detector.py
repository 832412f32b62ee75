"""A user's own ONNX person detector (YOLOX, RTMDet, YOLOv8, YOLOv5 exports), its layout
recognised from the output shapes, so ``--detector PATH.onnx`` needs no configuration.

Anything that is not one of the accepted layouts is refused by name (``DetectorError``) rather
than decoded into nonsense boxes.
"""

from __future__ import annotations

import cv2
import numpy as np

from hfpose.engine.detection.boxes import letterbox, nms
from hfpose.engine.detection.person_detector import DetectorError, PersonDetector
from hfpose.engine.runtime.sessions import InferenceSession


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
