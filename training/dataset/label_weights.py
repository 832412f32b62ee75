"""How much each keypoint label counts in the loss: humans fully, the teacher by its score.

A COCO-format annotation from ``hfpose-teacher-label`` marks the teacher's labels in
``pseudo_keypoints`` and carries the teacher's own score of every point in
``teacher_keypoints`` (x, y, score). The heatmap target of a teacher point is weighted by that
score (MoveNet's scores are informative: gating at 0.3 keeps ~90% of face points and removes most
wrong ones), and points under the gate do not count at all. A human label always
weighs 1, whatever the teacher thought of that joint: human labels win where they exist. Older
pseudo-labels without teacher scores (BlazePose faces, already gated when made) weigh 1.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# Teacher points scoring under this do not count (the teacher's own gate).
TEACHER_SCORE_GATE = 0.3


def label_weights(annotation: dict[str, Any], num_joints: int) -> np.ndarray:
    """(K,) float32 in [0, 1] before gating: 0 unlabelled, 1 human, teacher score for its points."""
    keypoints = np.asarray(annotation["keypoints"], dtype=np.float64).reshape(-1, 3)
    weights = (keypoints[:num_joints, 2] > 0).astype(np.float32)
    pseudo = np.asarray(annotation.get("pseudo_keypoints", [0] * num_joints)) > 0
    teacher = annotation.get("teacher_keypoints")
    if teacher is not None:
        scores = np.asarray(teacher, dtype=np.float64).reshape(-1, 3)[:num_joints, 2]
        taught = pseudo & (weights > 0)
        weights[taught] = np.clip(scores[taught], 0.0, 1.0)
    return weights


def gate_weights(weights: np.ndarray, gate: float = TEACHER_SCORE_GATE) -> np.ndarray:
    """Weights under ``gate`` become 0 (humans' 1s always pass)."""
    weights = np.asarray(weights, dtype=np.float32)
    return np.where(weights >= gate, weights, 0.0).astype(np.float32)
