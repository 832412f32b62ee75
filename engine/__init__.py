"""hfpose engine: headless real-time pose pipeline (no GUI, no torch on the runtime path).

Public API (names are stable; the GUI and the CLI build on them):

Pipeline (``hfpose.engine.pipeline``: the threaded runner; ``.config``: ``PipelineConfig``;
``.processor``: the per-frame work; ``.pose_tracker``: ``PoseTracker``)
    ``Pipeline(config, sinks=(), on_result=None, on_error=None, on_finished=None)``:
    ``start()``, ``stop()``, ``wait(timeout)``, ``run() -> RunSummary``, ``running``,
    ``stats() -> {stage: StageStats}``, ``summary()``, ``runtime_info``, ``source_info``,
    ``error``; live: ``change_settings({name: value})`` (each setting reaches the stages its
    declaration names), ``set_keep_real_time``, ``add_sink``, ``remove_sink``, ``pause``, ``resume``, ``step``, ``seek(seconds)``.
    ``PipelineConfig``, ``STAGES``; ``PoseTracker(...)(frame) -> list[Person]`` for scripts.
Results (``hfpose.engine.results``)
    ``FrameResult`` (index, timestamp, image, frame, people, stats, runtime, source_info,
    latency_ms, dropped_frames, detected), ``Person`` (track_id, bbox, bbox_score, keypoints,
    keypoint_scores), ``StageStats`` (frames, fps, latency_ms, queue_size), ``RunSummary``,
    ``PipelineError`` (``stage``, ``frame_index``, ``fatal``).
Sources (``hfpose.engine.sources``: ``.opening``: opening and cameras; ``.frame_source``: the
types; ``.video_file``, ``.image_folder``, ``.live``: the readers)
    ``open_source(spec)``, ``VideoFileSource``, ``CameraSource``, ``StreamSource``,
    ``ImageFolderSource``, ``LiveFrameSource``, ``FrameSource``, ``Frame``, ``SourceInfo``
    (``stills``: photos, nothing carried between them; ``ended_early``: an ``EarlyEnd`` with
    where and why the input stopped short, also in ``RunSummary.ended_early``; ``skipped``:
    unreadable entries passed over, also in ``RunSummary.skipped``; ``complete``),
    ``SourceError``, ``list_cameras() -> list[CameraInfo]``, ``is_live_spec``, ``open_url``
    (an http(s) URL that announces a length is a file, else live).
Sinks (``hfpose.engine.output.sinks``)
    ``VideoSink(path, audio=True, codecs=VIDEO_CODECS, container="mp4")``,
    ``JsonKeypointSink``, ``CsvKeypointSink``, ``CocoResultsSink``, ``Sink``, ``SinkError``,
    ``VIDEO_CODECS``, ``VIDEO_CONTAINERS``, ``container_for(path)``; what outputs may be
    (never an input or another output, devices written through, one run per output):
    ``hfpose.engine.output.output_files``.
Tracking, smoothing (``hfpose.engine.people``), rendering (``hfpose.engine.output.rendering``)
    ``Tracker``; ``SmoothingConfig``, ``TrackSmoother``, ``OneEuroFilter``,
    ``KalmanPointFilter``, ``SMOOTHING_METHODS``; ``Renderer``, ``RenderOptions``, ``HudInfo``,
    ``SkeletonAnnotator``, ``BoxAnnotator``, ``TrackIdAnnotator``, ``HudAnnotator``,
    ``RENDER_STYLES``.
Backends and detectors: see ``hfpose.engine.runtime`` (``.backends``: ``create_session``,
fallbacks; ``.discovery``: ``available_backends``; ``.sessions``: ``InferenceSession``,
``RuntimeInfo``; ``.model_files``: ``ModelError``, ``asset_path``), ``hfpose.engine.detection``
(``.factory``: ``create_detector``) and ``hfpose.engine.keypoints`` (``.estimator``:
``PoseEstimator``).

Names are imported on first use, so ``import hfpose.engine.runtime.backends`` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "hfpose.engine.config": ("PipelineConfig",),
    "hfpose.engine.pipeline": ("Pipeline",),
    "hfpose.engine.pose_tracker": ("PoseTracker",),
    "hfpose.engine.processor": ("PoseProcessor", "STAGES"),
    "hfpose.engine.results": (
        "FrameResult",
        "Person",
        "PipelineError",
        "RunSummary",
        "StageStats",
    ),
    "hfpose.engine.sources.frame_source": (
        "EarlyEnd",
        "Frame",
        "FrameSource",
        "SourceError",
        "SourceInfo",
    ),
    "hfpose.engine.sources.video_file": ("VideoFileSource",),
    "hfpose.engine.sources.image_folder": ("ImageFolderSource",),
    "hfpose.engine.sources.live": ("CameraSource", "LiveFrameSource", "StreamSource"),
    "hfpose.engine.sources.opening": (
        "CameraInfo",
        "is_live_spec",
        "list_cameras",
        "open_source",
        "open_url",
    ),
    "hfpose.engine.output.sinks": (
        "CocoResultsSink",
        "CsvKeypointSink",
        "JsonKeypointSink",
        "Sink",
        "SinkError",
        "VIDEO_CODECS",
        "VIDEO_CONTAINERS",
        "VideoSink",
    ),
    "hfpose.engine.people.tracking": ("Tracker",),
    "hfpose.engine.people.smoothing": (
        "KalmanPointFilter",
        "OneEuroFilter",
        "SMOOTHING_METHODS",
        "SmoothingConfig",
        "TrackSmoother",
    ),
    "hfpose.engine.output.rendering": (
        "BoxAnnotator",
        "HudAnnotator",
        "HudInfo",
        "RENDER_STYLES",
        "RenderOptions",
        "Renderer",
        "SkeletonAnnotator",
        "TrackIdAnnotator",
    ),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
