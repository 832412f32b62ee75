"""The data that flows out of the pipeline: people, per-stage statistics, frame results.

Kept in its own light module (numpy only) so the tracker, the smoother, the renderer, the sinks
and the GUI all share one definition without importing the pipeline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from hfpose.engine.sources.frame_source import EarlyEnd, SkippedEntry, SourceInfo

if TYPE_CHECKING:  # sessions imports ONNX Runtime: this module stays numpy-only
    from hfpose.engine.runtime.sessions import RuntimeInfo


@dataclass
class Person:
    """One person in one frame; coordinates are image pixels of the source frame.

    ``track_id`` is -1 until the tracker has assigned one. ``angles`` are the joint and
    segment angles in degrees by name (:mod:`hfpose.engine.angles`; NaN where a keypoint they
    need is under the threshold), empty when they are not worked out.
    """

    keypoints: np.ndarray  # (K, 2) float32 x, y
    keypoint_scores: np.ndarray  # (K,) float32
    bbox: np.ndarray  # (4,) float32 x1, y1, x2, y2
    bbox_score: float = 1.0
    track_id: int = -1
    angles: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-ready mmpose 1.x instance (bbox as a list of one box, as mmpose writes it),
        with the angles (null where missing) when there are any."""
        entry = {
            "track_id": int(self.track_id),
            "keypoints": np.round(self.keypoints.astype(float), 2).tolist(),
            "keypoint_scores": np.round(self.keypoint_scores.astype(float), 4).tolist(),
            "bbox": [np.round(self.bbox.astype(float), 2).tolist()],
            "bbox_score": round(float(self.bbox_score), 4),
        }
        if self.angles:
            entry["angles"] = {
                name: None if math.isnan(value) else round(value, 2)
                for name, value in self.angles.items()
            }
        return entry


@dataclass
class StageStats:
    """Throughput and latency of one pipeline stage over a recent window."""

    name: str
    frames: int = 0  # frames the stage has finished since the start
    fps: float = 0.0  # frames finished per second (recent window)
    latency_ms: float = 0.0  # mean time spent working on one frame (recent window)
    queue_size: int = 0  # items waiting in the stage's input queue


@dataclass
class FrameResult:
    """Everything the pipeline knows about one frame, delivered to the result callback.

    ``image`` is the annotated frame (BGR uint8) and ``frame`` the untouched source frame.
    ``latency_ms`` is the time from the frame leaving the source to this result.
    """

    index: int
    timestamp: float
    image: np.ndarray
    frame: np.ndarray
    people: list[Person]
    stats: dict[str, StageStats] = field(default_factory=dict)
    runtime: RuntimeInfo | None = None  # what runs the keypoint model (None: not from a run)
    source_info: SourceInfo | None = None
    latency_ms: float = 0.0
    dropped_frames: int = 0  # frames a live source skipped so far (always 0 for files)
    detected: bool = True  # False when people were followed from the previous frame's keypoints


class PipelineError(RuntimeError):
    """A failure inside a stage, with where it happened; ``fatal`` errors stopped the run."""

    def __init__(
        self, stage: str, frame_index: int | None, cause: BaseException, fatal: bool = True
    ):
        self.stage = stage
        self.frame_index = frame_index
        self.cause = cause
        self.fatal = fatal
        where = f"{stage} stage" + (f", frame {frame_index}" if frame_index is not None else "")
        super().__init__(f"{where}: {cause}")


@dataclass
class RunSummary:
    """What a finished run did; ``error`` is set when it stopped on a failure."""

    frames: int = 0
    people: int = 0  # person instances over all frames
    max_people: int = 0
    detected_frames: int = 0  # frames the person detector ran on (the others followed people)
    detection: str = ""  # the detection cadence in words (PoseProcessor.cadence)
    seconds: float = 0.0
    fps: float = 0.0
    runtime: RuntimeInfo | None = None
    detector_runtime: RuntimeInfo | None = None
    dropped_frames: int = 0
    interrupted: bool = False
    error: PipelineError | None = None
    ended_early: EarlyEnd | None = None  # the input stopped before its announced end
    skipped: list[SkippedEntry] = field(default_factory=list)  # unreadable entries passed over
