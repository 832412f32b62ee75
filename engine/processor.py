"""The per-frame work of the stages (detect, pose, track, smooth, render) on one frame.

:class:`PoseProcessor` is shared by the threaded :class:`hfpose.engine.pipeline.Pipeline`, which
calls each step from its own stage's thread, and :class:`hfpose.engine.pose_tracker.PoseTracker`,
which calls them in turn; :class:`FrameWork` is the frame travelling between the steps.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hfpose.engine.angles import attach_angles
from hfpose.engine.config import FALLBACK_FPS, PipelineConfig, detection_frames
from hfpose.engine.detection.factory import create_detector
from hfpose.engine.keypoints.estimator import create_pose_estimator
from hfpose.engine.output.rendering import HudInfo, Renderer
from hfpose.engine.people.plausibility import (
    PERSON_EVIDENCE,
    TRACK_CONFIRM_FRAMES,
    birth_score,
    is_plausible,
)
from hfpose.engine.people.smoothing import TrackSmoother
from hfpose.engine.people.tracking import Tracker
from hfpose.engine.results import Person, PipelineError
from hfpose.engine.runtime.sessions import RuntimeInfo
from hfpose.engine.sources.frame_source import Frame
from hfpose.models.metainfo import DatasetInfo

log = logging.getLogger(__name__)

STAGES = ("source", "detect", "pose", "track", "smooth", "render", "sink")


@dataclass
class FrameWork:
    """One frame travelling down the pipeline."""

    frame: Frame
    epoch: int  # increments on every seek, so tracking restarts
    born: float  # perf_counter() when the source handed the frame over
    still: bool = False  # a picture unrelated to the others (photos): nothing carries over
    boxes: np.ndarray | None = None  # (N, 5) from the detector; None: follow previous keypoints
    people: list[Person] = field(default_factory=list)
    image: np.ndarray | None = None
    sequence: int = -1  # its place among the frames the keypoint stage took (this epoch)
    followed: bool = False  # its boxes came from earlier keypoints (pose_boxes)

    def take_place_of(self, older: FrameWork) -> None:
        """This frame replaces ``older`` in a queue: it keeps ``older``'s detections when it has
        none of its own, so between detections a skipped detected frame does not leave
        the keypoint model following old people until the next detection reaches it."""
        if self.boxes is None and older.boxes is not None and older.epoch == self.epoch:
            self.boxes = older.boxes


# Columns of the boxes the keypoint stage gets: x1, y1, x2, y2, score, then the keypoint
# centre the box was placed on (NaN for a detector's box), which the next box is moved from.
BOX_COLUMNS = 7
# Detect again at once when a followed person's keypoint centre moved more than this share of
# their box's height since the box was placed (bench_det_interval.py, basketball clip at N=5:
# found 88.7% -> 92.9%, 21% -> 29% of frames detected; 0.1 gave 90.2% at 23%).
FAST_MOVE = 0.05


def keypoint_centre(person: Person) -> np.ndarray:
    """The score-weighted mean of a person's keypoints: where the body is, steadier than the
    confident keypoints' box as joints come and go below the threshold."""
    weights = np.clip(person.keypoint_scores, 0.0, None)
    if weights.sum() <= 0.0:
        return np.full(2, np.nan, np.float32)
    return (person.keypoints * weights[:, None]).sum(axis=0) / weights.sum()


def boxes_from_keypoints(
    people: Sequence[Person],
    anchors: np.ndarray,
    kpt_thr: float,
    image_size: tuple[int, int],
    margin: float = 0.05,
) -> np.ndarray:
    """Boxes (N, ``BOX_COLUMNS``) that follow each person from their keypoints in an earlier
    frame, as mmpose's and rtmlib's video demos and BlazePose follow people between detections.

    Each box is the person's crop box moved by how far their keypoint centre moved since it was
    placed (``anchors`` (N, 2): that centre, NaN for a detector's box: it stays), grown to hold
    every confident keypoint (with ``margin`` per side; the top more, as the head's top is not
    a keypoint). It never shrinks between detections: boxes fitted to the confident keypoints
    alone shrank to the upper body within three frames when the legs scored under the
    threshold, and lost them (``benchmarks/bench_det_interval.py``). A person with fewer than
    a third of the keypoints confident keeps the crop box.
    """
    width, height = image_size
    boxes = []
    for person, anchor in zip(people, np.asarray(anchors, np.float32).reshape(-1, 2)):
        confident = person.keypoints[person.keypoint_scores > kpt_thr]
        if len(confident) < max(2, len(person.keypoints) // 3):
            boxes.append([*person.bbox, person.bbox_score, *anchor])
            continue
        centre = keypoint_centre(person)
        moved = np.asarray(person.bbox, np.float32)
        if np.isfinite(anchor).all():
            moved = moved + np.tile(centre - anchor, 2)
        x1, y1 = confident.min(axis=0)
        x2, y2 = confident.max(axis=0)
        w, h = max(x2 - x1, 1.0), max(y2 - y1, 1.0)
        boxes.append(
            [
                max(0.0, min(moved[0], x1 - margin * w)),
                max(0.0, min(moved[1], y1 - 2 * margin * h)),
                min(float(width), max(moved[2], x2 + margin * w)),
                min(float(height), max(moved[3], y2 + margin * h)),
                person.bbox_score,
                *centre,
            ]
        )
    return np.asarray(boxes, dtype=np.float32).reshape(-1, BOX_COLUMNS)


def _moving_fast(people: Sequence[Person], boxes: np.ndarray) -> bool:
    """Whether someone's keypoint centre moved more than ``FAST_MOVE`` of their box's height
    since the box was placed: a crop that trails a fast body cuts its limbs off."""
    for person, box in zip(people, boxes):
        if np.isfinite(box[5:7]).all():
            moved = np.linalg.norm(keypoint_centre(person) - box[5:7])
            if moved > FAST_MOVE * max(box[3] - box[1], 1.0):
                return True
    return False


class PoseProcessor:
    """The per-frame work of the stages, shared by :class:`Pipeline` and :class:`PoseTracker`.

    Each ``*_step`` method is only ever called from its own stage's thread, so the objects it
    owns (detector, estimator, tracker, smoother, renderer) need no locks; live changes are
    queued with :meth:`request` and applied by the owning step at its next frame.

    ``fps`` is the source's frame rate, which turns ``config.det_interval_s`` into frames
    (:func:`hfpose.engine.config.detection_frames`); None where the source reports none.
    """

    def __init__(self, config: PipelineConfig, fps: float | None = None) -> None:
        self.config = config
        self.estimator = create_pose_estimator(
            config.model,
            config.backend,
            config_path=config.model_config,
            precision=config.precision,
            **config.pose_threading,
        )
        threads = config.threads_per_model
        self.detector = create_detector(config.detector, config.backend, num_threads=threads)
        self.dataset_info: DatasetInfo = self.estimator.dataset_info
        self.tracker = Tracker(
            self.dataset_info.sigmas,
            config.track_max_lost_s,
            kpt_thr=config.kpt_thr,
            min_birth_score=birth_score(config.min_pose_score),
            confirm_frames=TRACK_CONFIRM_FRAMES,
            evidence=PERSON_EVIDENCE,
        )
        self.smoother = TrackSmoother(config.smoothing)
        self._angle_keypoints = self.dataset_info.keypoint_names  # the smooth step's copy
        self.renderer = Renderer(config.render, self.dataset_info, kpt_thr=config.kpt_thr)
        self._pending: dict[str, dict[str, Any]] = {s: {} for s in STAGES}
        self._pending_lock = threading.Lock()
        self.fps = fps
        self.det_frames = detection_frames(config.det_interval_s, fps)
        self._since_detection = self.det_frames  # detect on the first frame
        # Set by the pose step, read by the detect step (another thread, which runs ahead):
        # the keypoints lost someone they followed, follow nobody, or someone moved fast, so
        # detect again at once rather than at the end of the interval (a person entering an
        # empty scene is found in the next frame the detect step takes).
        self._detect_soon = False
        self._epoch_detect = -1
        self._epoch_pose = -1
        self._epoch_track = -1
        # The keypoint stage's latest frames by sequence number: their people, and the
        # detector's boxes of those detected, whom the next frames follow (pose_boxes).
        self._followed: dict[int, tuple[list[Person], np.ndarray]] = {}
        self._detections: dict[int, np.ndarray] = {}
        self._pose_sequence = 0
        self._last_box_count = 0  # crops of the latest frame given to the keypoint model
        self.on_nonfatal_error: Callable[[PipelineError], None] | None = None

    # ------------------------------------------------------------------ live changes

    def request(self, stage: str, **changes: Any) -> None:
        with self._pending_lock:
            self._pending[stage].update(changes)

    def _take(self, stage: str) -> dict[str, Any]:
        with self._pending_lock:
            changes, self._pending[stage] = self._pending[stage], {}
        return changes

    def _report(self, stage: str, frame: Frame | None, error: BaseException) -> None:
        wrapped = PipelineError(stage, frame.index if frame else None, error, fatal=False)
        log.warning("%s", wrapped)
        if self.on_nonfatal_error is not None:
            self.on_nonfatal_error(wrapped)

    @property
    def runtime_info(self) -> RuntimeInfo:
        return self.estimator.runtime_info

    @property
    def cadence(self) -> str:
        """How often the detector runs, in words, with the rate it was worked out from (the
        CLI's summary says it: a frame rate the source does not report is only assumed)."""
        seconds = self.config.det_interval_s
        frames = "every frame" if self.det_frames == 1 else f"every {self.det_frames} frames"
        if not seconds:
            return frames
        rate = f"{self.fps:g} fps" if self.fps else f"an assumed {FALLBACK_FPS:g} fps"
        return f"{frames} (det_interval_s {seconds:g} at {rate})"

    # ------------------------------------------------------------------ steps

    def detect_step(self, work: FrameWork) -> None:
        changes = self._take("detect")
        if "detector" in changes or "backend" in changes:
            name = changes.get("detector", self.config.detector)
            backend = changes.get("backend", self.config.backend)
            try:
                threads = self.config.threads_per_model
                self.detector = create_detector(name, backend, num_threads=threads)
                self.config.detector = name
            except Exception as error:  # noqa: BLE001 - keep the old detector, say why
                self._report("detect", work.frame, error)
        if "det_interval_s" in changes:
            self.config.det_interval_s = changes["det_interval_s"]
            self.det_frames = detection_frames(self.config.det_interval_s, self.fps)
        restarted = work.epoch != self._epoch_detect or work.still
        self._epoch_detect = work.epoch
        if restarted or self._detect_soon or self._since_detection >= self.det_frames:
            self._detect_soon = False
            work.boxes = self.detector.detect(work.frame.image)
            self._since_detection = 1
        else:
            work.boxes = None
            self._since_detection += 1

    def pose_step(self, work: FrameWork) -> None:
        boxes = self.pose_begin(work)
        self.pose_done(work, boxes, self.pose_people(work, boxes))

    def pose_lag(self, frames_in_flight: int) -> int:
        """How many frames back the next frame follows people: ``frames_in_flight`` (it starts
        while the previous frames are still in the model), or 1 when the previous frame alone
        has a crop for every worker of the model (a crowd keeps the cores busy by itself: a
        second frame would only make them share, at a higher CPU cost)."""
        crowd = self._last_box_count >= self.config.pose_threading["crop_workers"]
        return 1 if crowd else max(1, frames_in_flight)

    def pose_begin(self, work: FrameWork, lag: int = 1) -> np.ndarray:
        """The keypoint stage's part that runs in frame order before the model: live changes,
        then the boxes (:meth:`pose_boxes`)."""
        changes = self._take("pose")
        if changes.keys() & {"model", "model_config", "backend", "precision"}:
            model = changes.get("model", self.config.model)
            model_config = changes.get("model_config", self.config.model_config)
            backend = changes.get("backend", self.config.backend)
            precision = changes.get("precision", self.config.precision)
            try:
                self.estimator = create_pose_estimator(
                    model,
                    backend,
                    config_path=model_config,
                    precision=precision,
                    **self.config.pose_threading,
                )
                self.config.model, self.config.backend = model, backend
                self.config.precision = precision
                self.config.model_config = model_config
            except Exception as error:  # noqa: BLE001 - keep the old model, say why
                self._report("pose", work.frame, error)
            if self.estimator.dataset_info != self.dataset_info:
                # Another keypoint layout (e.g. MPII): tracking and drawing follow it.
                self.dataset_info = self.estimator.dataset_info
                for stage in ("track", "smooth", "render"):
                    self.request(stage, dataset_info=self.dataset_info)
        if "max_persons" in changes:
            self.config.max_persons = changes["max_persons"]
        if "kpt_thr" in changes:
            self.config.kpt_thr = changes["kpt_thr"]
        if "min_pose_score" in changes:
            self.config.min_pose_score = changes["min_pose_score"]
        return self.pose_boxes(work, lag)

    def pose_boxes(self, work: FrameWork, lag: int = 1) -> np.ndarray:
        """The boxes the keypoint model gets on this frame, in frame order.

        The detector's where it ran; else each person's keypoints ``lag`` frames before (2
        when the keypoint stage runs two frames at once: the previous one is still in flight),
        or the previous frame's detections when that frame was detected, so a person found
        there is followed from the next frame on. Always the same frames whatever the timing.
        """
        if work.epoch != self._epoch_pose:
            self._followed.clear()
            self._detections.clear()
            self._pose_sequence = 0
            self._epoch_pose = work.epoch
        work.sequence = sequence = self._pose_sequence
        self._pose_sequence += 1
        self._detections.pop(sequence - 2, None)
        boxes = work.boxes
        if boxes is None:
            if lag > 1 and sequence - 1 in self._detections:
                boxes = self._detections[sequence - 1].copy()  # maybe still in the model
            else:
                people, anchors = self._followed.get(sequence - lag, ([], np.zeros((0, 2))))
                height, width = work.frame.image.shape[:2]
                boxes = boxes_from_keypoints(people, anchors, self.config.kpt_thr, (width, height))
                work.followed = True
        else:
            unplaced = np.full((len(boxes), BOX_COLUMNS - 5), np.nan, np.float32)
            boxes = self._detections[sequence] = np.hstack([boxes[:, :5], unplaced])
        if self.config.max_persons and len(boxes) > self.config.max_persons:
            boxes = boxes[np.argsort(-boxes[:, 4], kind="stable")[: self.config.max_persons]]
        self._last_box_count = len(boxes)
        return boxes

    def pose_people(self, work: FrameWork, boxes: np.ndarray) -> list[Person]:
        """The keypoint model on ``boxes``, a person per box; owns no state, so two frames may
        run at once."""
        keypoints, scores = self.estimator.estimate(work.frame.image, boxes[:, :4])
        return [
            Person(
                keypoints=keypoints[i].astype(np.float32),
                keypoint_scores=scores[i].astype(np.float32),
                bbox=boxes[i, :4].astype(np.float32),
                bbox_score=float(boxes[i, 4]),
            )
            for i in range(len(boxes))
        ]

    def pose_done(self, work: FrameWork, boxes: np.ndarray, people: list[Person]) -> None:
        """Frames in order: drop implausible people (boxes on objects), remember whom to
        follow, and ask for a detection when the keypoints lost someone they followed, follow
        nobody, or someone moved fast."""
        minimum = self.config.min_pose_score
        keep = [i for i, person in enumerate(people) if is_plausible(person, minimum)]
        work.people = [people[i] for i in keep]
        self._followed[work.sequence] = (work.people, boxes[keep, 5:7])
        self._followed.pop(work.sequence - 3, None)
        # Boxes from earlier keypoints were all plausible people then: one fewer is one lost.
        lost = work.followed and len(work.people) < len(boxes)
        if not work.people or lost or (work.followed and _moving_fast(work.people, boxes[keep])):
            self._detect_soon = True

    def track_step(self, work: FrameWork) -> None:
        changes = self._take("track")
        if "dataset_info" in changes:
            self.tracker = Tracker(
                changes["dataset_info"].sigmas,
                self.config.track_max_lost_s,
                kpt_thr=self.tracker.kpt_thr,
                min_birth_score=self.tracker.min_birth_score,
                confirm_frames=self.tracker.confirm_frames,
                evidence=self.tracker.evidence,
            )
        if "kpt_thr" in changes:
            self.tracker.kpt_thr = changes["kpt_thr"]
        if "min_pose_score" in changes:
            self.tracker.min_birth_score = birth_score(changes["min_pose_score"])
        if work.still:  # a photo: its people are numbered, nobody is followed into the next
            for number, person in enumerate(work.people, start=1):
                person.track_id = number
            return
        if work.epoch != self._epoch_track:
            self.tracker.reset()
            self._epoch_track = work.epoch
        work.people = self.tracker.update(work.people, work.frame.timestamp)

    def smooth_step(self, work: FrameWork) -> None:
        """Smooth the keypoints, then work out the angles from the smoothed keypoints."""
        changes = self._take("smooth")
        if "smoothing" in changes:
            self.smoother.configure(changes["smoothing"])
            self.config.smoothing = changes["smoothing"]
        elif "reset" in changes:
            self.smoother.reset()
        if "joint_angles" in changes:
            self.config.joint_angles = changes["joint_angles"]
        if "dataset_info" in changes:
            self._angle_keypoints = changes["dataset_info"].keypoint_names
        if not work.still:
            work.people = self.smoother(work.people, work.frame.timestamp)
        if self.config.joint_angles:
            # kpt_thr: the pose stage's copy, set a frame ahead of this one
            attach_angles(work.people, self._angle_keypoints, self.config.kpt_thr)

    def render_step(self, work: FrameWork, hud: HudInfo | None) -> None:
        changes = self._take("render")
        if changes:
            options = changes.get("render", self.renderer.options)
            self.renderer.configure(options, changes.get("dataset_info"), changes.get("kpt_thr"))
            self.config.render = options
        work.image = self.renderer.render(work.frame.image, work.people, hud)
