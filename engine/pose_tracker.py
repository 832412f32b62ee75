"""``PoseTracker``: the pipeline's processing without threads, for scripts.

``people = PoseTracker()(frame)``: the same detector, keypoint model, tracker and smoother as
:class:`hfpose.engine.pipeline.Pipeline`, called in turn on each frame given.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from hfpose.engine.config import PipelineConfig
from hfpose.engine.plausibility import DEFAULT_MIN_POSE_SCORE
from hfpose.engine.processor import FrameWork, PoseProcessor
from hfpose.engine.results import Person
from hfpose.engine.smoothing import SmoothingConfig
from hfpose.engine.sources import Frame
from hfpose.models.metainfo import DatasetInfo


class PoseTracker:
    """Synchronous, thread-free pose tracking for scripts: ``people = tracker(frame)``.

    The same detector, keypoint model, tracker and smoother as :class:`Pipeline`. Timestamps
    default to the wall clock; pass the frame's own time for video files. With ``stills``
    every call is an unrelated photo: no tracking, smoothing or box carried between calls.
    """

    def __init__(
        self,
        model: str | None = None,
        device: str = "auto",
        detector: str = "nanodet",
        det_interval: int = 1,
        max_persons: int = 0,
        kpt_thr: float = 0.3,
        smoothing: str | SmoothingConfig = "none",
        stills: bool = False,
        min_pose_score: float = DEFAULT_MIN_POSE_SCORE,
    ) -> None:
        if isinstance(smoothing, str):
            smoothing = SmoothingConfig(method=smoothing)
        self.config = PipelineConfig(
            source="",
            model=model,
            device=device,
            detector=detector,
            det_interval=det_interval,
            max_persons=max_persons,
            kpt_thr=kpt_thr,
            min_pose_score=min_pose_score,
            smoothing=smoothing,
            model_threads=0,  # one thread calls the models in turn: each may use every core
        )
        self.processor = PoseProcessor(self.config)
        self.stills = stills
        self._index = 0
        self._t0 = time.perf_counter()

    @property
    def runtime_info(self) -> Any:
        return self.processor.runtime_info

    @property
    def dataset_info(self) -> DatasetInfo:
        return self.processor.dataset_info

    def __call__(self, image_bgr: np.ndarray, timestamp: float | None = None) -> list[Person]:
        if timestamp is None:
            timestamp = time.perf_counter() - self._t0
        frame = Frame(image_bgr, self._index, timestamp)
        work = FrameWork(frame, epoch=0, born=time.perf_counter(), still=self.stills)
        self._index += 1
        p = self.processor
        p.detect_step(work)
        p.pose_step(work)
        p.track_step(work)
        p.smooth_step(work)
        return work.people

    def draw(self, image_bgr: np.ndarray, people: Sequence[Person]) -> np.ndarray:
        """The frame with ``people`` drawn as the pipeline draws them (no HUD)."""
        return self.processor.renderer.render(image_bgr, people, None)
