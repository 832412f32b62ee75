"""The configuration of a run: :class:`PipelineConfig`, what every stage reads.

Shared by the threaded :class:`hfpose.engine.pipeline.Pipeline`, the synchronous
:class:`hfpose.engine.pose_tracker.PoseTracker` and the shells (app, CLI) that fill it in.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from hfpose.engine.plausibility import DEFAULT_MIN_POSE_SCORE
from hfpose.engine.rendering import RenderOptions
from hfpose.engine.runtimes import PRECISIONS
from hfpose.engine.smoothing import SmoothingConfig
from hfpose.engine.sources import FrameSource


@dataclass
class PipelineConfig:
    """Everything a run needs; the live setters change the running copy.

    ``source`` is what :func:`hfpose.engine.sources.open_source` accepts (a path, ``webcam:0``, a URL)
    or an already open :class:`FrameSource`. ``model`` ``None`` means the shipped model.
    ``max_persons`` 0 means no limit. ``det_interval`` N runs the detector on every Nth frame
    and follows people by their previous keypoints in between. ``model_threads`` is each
    model's share of the CPU: ``None`` splits the cores between the detector and the keypoint
    model, which run at the same time in their own stages (0: every core for each, as suits
    one thread calling both in turn). ``min_pose_score``: people whose mean keypoint score
    is lower are dropped as phantoms, and new tracks need more (:mod:`hfpose.engine.plausibility`).
    ``keep_real_time``: a file source paced at its rate (the app's player) skips the frames the
    stages have no time for, as a live source does, instead of slowing the playback down.
    """

    source: str | int | FrameSource = "webcam:0"
    model: str | None = None
    model_config: str | None = None  # the config of a .pth checkpoint (ONNX files carry theirs)
    device: str = "auto"
    detector: str = "nanodet"
    det_interval: int = 1
    max_persons: int = 0
    kpt_thr: float = 0.3
    min_pose_score: float = DEFAULT_MIN_POSE_SCORE
    smoothing: SmoothingConfig = field(default_factory=SmoothingConfig)
    render: RenderOptions = field(default_factory=RenderOptions)
    track_max_lost_s: float = 1.0
    queue_size: int = 4
    folder_fps: float = 30.0
    model_threads: int | None = None
    # hfpose.engine.runtimes.PRECISIONS: "fast" lets the keypoint model run in bf16 where the CPU has
    # it natively, or as its checked int8 copy; "fp32" runs it exactly as trained.
    precision: str = "fast"
    keep_real_time: bool = False

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.det_interval < 1:
            raise ValueError(f"det_interval must be >= 1, got {self.det_interval}")
        if self.max_persons < 0:
            raise ValueError(f"max_persons must be >= 0, got {self.max_persons}")
        if not 0.0 <= self.kpt_thr <= 1.0:
            raise ValueError(f"kpt_thr must be between 0 and 1, got {self.kpt_thr}")
        if not 0.0 <= self.min_pose_score <= 1.0:
            raise ValueError(f"min_pose_score must be between 0 and 1, got {self.min_pose_score}")
        if self.queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {self.queue_size}")
        if self.model_threads is not None and self.model_threads < 0:
            raise ValueError(f"model_threads must be >= 0, got {self.model_threads}")

    @property
    def threads_per_model(self) -> int:
        """Intra-op threads for each model's session (see ``model_threads``)."""
        if self.model_threads is not None:
            return self.model_threads
        return max(1, available_cores() // 2)

    @property
    def pose_threading(self) -> dict[str, int]:
        """The keypoint model's threads, and how many crops it runs at once: a crowd leaves
        the detector idle, so crops keep all the cores busy that their sessions' threads
        would otherwise leave unused."""
        threads = self.threads_per_model
        workers = max(1, available_cores() // threads) if threads else 1
        return {"num_threads": threads, "crop_workers": workers}


def available_cores() -> int:
    """Cores this process may run on (its affinity, where the OS reports one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1
