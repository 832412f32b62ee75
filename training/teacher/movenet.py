"""The teacher model that labels training data (MoveNet Thunder) and the header every
teacher-labelled file records; shared by the annotated-set and the photo labellers."""

from __future__ import annotations

import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from hfpose.engine.keypoints.estimator import create_pose_estimator
from hfpose.engine.runtime.auto import file_sha256
from hfpose.engine.runtime.model_files import asset_path

THUNDER_ASSET = "movenet_singlepose_thunder.onnx"


class Teacher:
    """MoveNet Thunder through the engine's public pose API, one thread by default."""

    def __init__(self, model: Path | None = None, num_threads: int = 1) -> None:
        path = Path(model) if model is not None else asset_path(THUNDER_ASSET)
        self.estimator = create_pose_estimator(path, backend="cpu", num_threads=num_threads)
        self.model_path = Path(path)
        self.num_threads = num_threads

    def __call__(self, frame_bgr: np.ndarray, boxes_xyxy: np.ndarray) -> np.ndarray:
        """(N,17,3) x, y in frame pixels and the teacher's score, row i for box i."""
        keypoints, scores = self.estimator.estimate(frame_bgr, np.asarray(boxes_xyxy))
        return np.concatenate([keypoints, scores[..., None]], axis=2).astype(np.float64)

    def describe(self) -> dict:
        return {
            "teacher": self.model_path.name,
            "model_sha256": file_sha256(self.model_path),
            "runtime": self.estimator.runtime_info.label,
            "input_size_wh": list(self.estimator.input_size_wh),
        }


def header(teacher: Teacher, rule: object, started: float, **facts: object) -> dict:
    """``info.pseudo_labels``: what made the labels, with which rule, how many, how long."""
    return {
        **teacher.describe(),
        "rule": asdict(rule),
        **facts,
        "seconds": round(time.perf_counter() - started, 1),
        "command": " ".join(["hfpose-teacher-label", *sys.argv[1:]]),
    }
