"""The configuration of a run: :class:`PipelineConfig`, what every stage reads.

Shared by the threaded :class:`hfpose.engine.pipeline.Pipeline`, the synchronous
:class:`hfpose.engine.pose_tracker.PoseTracker` and the shells (app, CLI) that fill it in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from hfpose.engine.detection.factory import DETECTOR_NAMES
from hfpose.engine.keypoints.families import SHIPPED_MODELS
from hfpose.engine.output.rendering import RenderOptions
from hfpose.engine.people.plausibility import DEFAULT_MIN_POSE_SCORE
from hfpose.engine.people.smoothing import SmoothingConfig
from hfpose.engine.repetitions import RepetitionConfig
from hfpose.engine.runtime.backends import PRECISIONS
from hfpose.engine.runtime.discovery import BACKENDS, available_cores
from hfpose.engine.settings import Setting, check_declared, declared_fields, setting
from hfpose.engine.sources.frame_source import FrameSource

# The frame rate assumed for the detection cadence when a source reports none (a stream
# without one, PoseTracker given no fps): most webcams and videos run at 25-30 fps, and at
# 30 the default det_interval_s detects every 5th frame, as before it was set in seconds.
FALLBACK_FPS = 30.0


def detection_frames(seconds: float, fps: float | None) -> int:
    """Frames from one detection to the next: as many as span at most ``seconds`` at ``fps``
    (``FALLBACK_FPS`` when it is None), at least 1 (detection on every frame).

    Counting frames, not reading timestamps, keeps which frames are detected the same
    whatever the machine's speed: a file gives the same skeletons on any machine, and a live
    source that drops frames on a busy one is not made busier by detecting more often."""
    rate = fps if fps else FALLBACK_FPS
    return max(1, int(seconds * rate + 1e-6))


@dataclass
class PipelineConfig:
    """Everything a run needs; ``Pipeline.change_settings`` changes the running copy.

    The user-facing settings are declared here, each once, with :func:`setting` (help text,
    choices, range, the stages a live change reaches), and on the nested
    :class:`SmoothingConfig` and :class:`RenderOptions`; :func:`declared_settings` lists them all for the CLI, the app and
    ``PoseTracker``. The other fields are the engine's own:

    ``source`` is what :func:`hfpose.engine.sources.opening.open_source` accepts (a path,
    ``webcam:0``, a URL) or an already open :class:`FrameSource`. ``model_threads`` is each
    model's share of the CPU: ``None`` splits the cores between the detector and the keypoint
    model, which run at the same time in their own stages (0: every core for each, as suits
    one thread calling both in turn). ``keep_real_time``: a file source paced at its rate (the
    app's player) skips the frames the stages have no time for, as a live source does,
    instead of slowing the playback down.
    """

    source: str | int | FrameSource = "webcam:0"
    model: str | None = setting(
        None,
        f"keypoint model: {', '.join(SHIPPED_MODELS)} (hf-hrnet is the default), or a file "
        "(.onnx of the heatmap, SimCC or MoveNet kind, or .pth with torch)",
        metavar="NAME|PATH",
        stages=("pose",),
    )
    model_config: str | None = setting(
        None, "config of a .pth checkpoint (ONNX carries its own)", metavar="YAML", stages=("pose",)
    )
    backend: str = setting(
        "auto",
        "where the models run; gpu:1 or openvino:GPU name a device, auto picks what runs "
        "fastest here",
        choices=BACKENDS,
        prefix_choice=True,
        stages=("detect", "pose"),
    )
    # "fast" lets the keypoint model run in bf16 where the CPU has it natively, or as its
    # checked int8 copy; "fp32" runs it exactly as trained.
    precision: str = setting(
        "fast",
        "fast: bf16 where the CPU has it natively, or the model's checked int8 copy, whichever "
        "the machine runs faster; fp32: exactly as trained",
        choices=PRECISIONS,
        stages=("pose",),
    )
    detector: str = setting(
        DETECTOR_NAMES[0],
        f"person detector: {', '.join(DETECTOR_NAMES)}, or a path to an ONNX detector",
        stages=("detect",),
    )
    det_interval_s: float = setting(
        0.17,
        "the longest time between person detections, in seconds of video; the frames in "
        "between follow people by their keypoints (frames: worked out from the source's "
        f"frame rate, {FALLBACK_FPS:g} fps where it reports none)",
        minimum=0.0,
        zero_means="every frame",
        ui_range=(0.0, 2.0),
        step=0.05,
        decimals=2,
        metavar="S",
        stages=("detect",),
    )
    max_persons: int = setting(
        0,
        "at most N people per frame, the detector's surest first",
        minimum=0,
        zero_means="no limit",
        ui_range=(0, 100),
        metavar="N",
        stages=("pose",),
    )
    kpt_thr: float = setting(
        0.3,
        "hide keypoints below this score (nor follow or track by them)",
        minimum=0.0,
        maximum=1.0,
        step=0.05,
        decimals=2,
        stages=("pose", "track", "render"),
    )
    min_pose_score: float = setting(
        DEFAULT_MIN_POSE_SCORE,
        "drop people whose mean keypoint score is below S: boxes on cones, rocks, signs (0 "
        "keeps every box); new tracks need more (hfpose.engine.people.plausibility)",
        minimum=0.0,
        maximum=1.0,
        step=0.01,
        decimals=2,
        metavar="S",
        stages=("pose", "track"),
    )
    joint_angles: bool = setting(
        True,
        "work out joint and segment angles from the smoothed keypoints (hfpose.engine.angles)",
        flag="--no-angles",
        stages=("smooth",),
    )
    smoothing: SmoothingConfig = field(default_factory=SmoothingConfig)
    render: RenderOptions = field(default_factory=RenderOptions)
    repetitions: RepetitionConfig = field(default_factory=RepetitionConfig)
    # 2 s: people hidden behind others in a crowd for more than 1 s came back under a new ID
    # (benchmarks/phantom_people.py: with confirmed tracks, opencv_vtest.avi 94 IDs at 1 s, 90
    # at 2 s, and one real person lost at 1 s, none at 2 s)
    track_max_lost_s: float = 2.0
    queue_size: int = 4
    folder_fps: float = 30.0
    model_threads: int | None = None
    keep_real_time: bool = False

    def __post_init__(self) -> None:
        check_declared(self)
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
        """The keypoint model's threads, and over how many cores a frame's crops spread: a
        crowd leaves the detector idle, so its crops keep all the cores busy that one call's
        threads would leave unused (in parts side by side or in one call on more threads,
        ``PoseEstimator``'s ``crowd_mode``)."""
        threads = self.threads_per_model
        workers = max(1, available_cores() // threads) if threads else 1
        return {"num_threads": threads, "crop_workers": workers}

    @property
    def pose_frames_in_flight(self) -> int:
        """At most this many frames in the pipeline's keypoint stage at once: two where there
        are two cores, the second only while the first leaves a core idle
        (:meth:`hfpose.engine.processor.PoseProcessor.pose_lag`).

        One person's crop keeps one core busy; with detection every few frames the detector
        mostly idles, and a one-thread model call cannot use the other core (two intra-op
        threads cost more CPU time than they save on a small model). A second frame in flight
        can, at the price of following people by their keypoints two frames back."""
        return 2 if available_cores() >= 2 else 1


NESTED = {
    "smoothing": SmoothingConfig,
    "render": RenderOptions,
    "repetitions": RepetitionConfig,
}
# the stage each nested config belongs to: a change of any of its fields reaches that stage
# (repetitions are counted where the results are consumed: the sinks and the app's angle dock)
NESTED_STAGES = {"smoothing": ("smooth",), "render": ("render",), "repetitions": ("sink",)}


def _declare_all() -> dict[str, Setting]:
    found = list(declared_fields(PipelineConfig))
    for field_name, nested in NESTED.items():
        found += [
            replace(s, path=(field_name, *s.path), stages=NESTED_STAGES[field_name])
            for s in declared_fields(nested)
        ]
    return {s.name: s for s in found}


SETTINGS: dict[str, Setting] = _declare_all()


def declared_settings() -> list[Setting]:
    """Every user-facing setting, in declaration order (the CLI's and the dialog's order)."""
    return list(SETTINGS.values())


def config_from_settings(values: Mapping[str, Any], **engine_fields: Any) -> PipelineConfig:
    """A configuration from settings by their user-facing names (the others keep their
    defaults) plus any of the engine's own fields (``source``, ``queue_size``...)."""
    top: dict[str, Any] = dict(engine_fields)
    nested: dict[str, dict[str, Any]] = {name: {} for name in NESTED}
    for name, value in values.items():
        spec = SETTINGS.get(name)
        if spec is None:
            raise TypeError(f"unknown setting {name!r}")
        if len(spec.path) == 1:
            top[spec.path[0]] = value
        else:
            nested[spec.path[0]][spec.path[1]] = value
    return PipelineConfig(
        **top, **{name: NESTED[name](**kwargs) for name, kwargs in nested.items()}
    )


def settings_of(config: PipelineConfig) -> dict[str, Any]:
    """The user-facing settings of ``config`` by name (the inverse of
    :func:`config_from_settings`)."""
    values = {}
    for name, spec in SETTINGS.items():
        value: Any = config
        for part in spec.path:
            value = getattr(value, part)
        values[name] = value
    return values
