"""The model-free geometry of detection: fitting a frame into a detector's input, and keeping
the best of overlapping boxes.

Shared by every detector (:mod:`hfpose.engine.detection.shipped`,
:mod:`hfpose.engine.detection.onnx_detector`); each maps a frame pixel p to p * scale + pad in its
input and its boxes back the same way.
"""

from __future__ import annotations

import cv2
import numpy as np

from hfpose.engine.people.tracking import box_iou


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


def empty_boxes() -> np.ndarray:
    """No person: the (0, 5) float32 array every detector returns then."""
    return np.zeros((0, 5), dtype=np.float32)
