"""What every person detector is: a BGR frame in, person boxes ``(N, 5)`` x1, y1, x2, y2,
score out, from one inference session on a chosen backend, swappable between frames.

Apart from the detectors themselves so the shipped ones and a user's ONNX model build on the
same base, and the factory (:mod:`hfpose.engine.detection.factory`) can name them all without a cycle.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hfpose.engine.runtime.backends import create_session
from hfpose.engine.runtime.sessions import InferenceSession, RuntimeInfo


class DetectorError(ValueError):
    """A detector model whose inputs or outputs this engine cannot interpret."""


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

    def _warm_up(self) -> None:
        """One blank frame, so the runtime's first-call set-up does not delay the first frame."""
        self.detect(np.zeros((480, 640, 3), np.uint8))

    def _check_session(self, session: InferenceSession) -> None:
        """Refuse a model whose layout this detector cannot decode (clear one-line message)."""

    def detect(self, frame_bgr: np.ndarray) -> np.ndarray:
        raise NotImplementedError
