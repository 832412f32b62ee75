"""Synthetic COCO-17 people for the tracking, smoothing and rendering tests."""

from __future__ import annotations

import numpy as np

from hfpose.engine.results import Person

# A standing person, 1 unit tall, origin at the hips' midpoint (x right, y down).
_TEMPLATE = np.array(
    [
        [0.0, -0.42], [-0.03, -0.45], [0.03, -0.45], [-0.07, -0.43], [0.07, -0.43],
        [-0.12, -0.30], [0.12, -0.30], [-0.16, -0.15], [0.16, -0.15], [-0.18, 0.0],
        [0.18, 0.0], [-0.08, 0.0], [0.08, 0.0], [-0.09, 0.25], [0.09, 0.25],
        [-0.10, 0.48], [0.10, 0.48],
    ]
)  # fmt: skip


def make_person(cx: float, cy: float, height: float = 200.0, score: float = 0.9) -> Person:
    """A person centred on (cx, cy), ``height`` pixels tall, all keypoints at ``score``."""
    keypoints = _TEMPLATE * height + np.array([cx, cy])
    x1, y1 = keypoints.min(axis=0) - 0.05 * height
    x2, y2 = keypoints.max(axis=0) + 0.05 * height
    return Person(
        keypoints=keypoints.astype(np.float32),
        keypoint_scores=np.full(17, score, np.float32),
        bbox=np.array([x1, y1, x2, y2], np.float32),
        bbox_score=0.95,
    )
