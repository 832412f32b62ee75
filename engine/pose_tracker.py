"""``PoseTracker``: the pipeline's processing without threads, for scripts.

``people = PoseTracker()(frame)``: the same detector, keypoint model, tracker and smoother as
:class:`hfpose.engine.pipeline.Pipeline`, called in turn on each frame given.
"""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Sequence
from typing import Any, ClassVar

import cv2
import numpy as np

from hfpose.engine.config import config_from_settings
from hfpose.engine.people.smoothing import SmoothingConfig
from hfpose.engine.processor import FrameWork, PoseProcessor
from hfpose.engine.results import Person
from hfpose.engine.runtime.sessions import RuntimeInfo
from hfpose.engine.sources.frame_source import Frame
from hfpose.models.metainfo import DatasetInfo


class PoseTracker:
    """Synchronous, thread-free pose tracking for scripts: ``people = tracker(frame)``.

    The same detector, keypoint model, tracker and smoother as :class:`Pipeline`. Timestamps
    default to the wall clock; pass the frame's own time for video files. With ``stills``
    every call is an unrelated photo: no tracking, smoothing or box carried between calls.
    ``fps``, the video's frame rate, turns ``det_interval_s`` into frames (None: the
    fallback rate, :data:`hfpose.engine.config.FALLBACK_FPS`). Each person carries their
    joint and segment angles, ``person.angles`` (name -> degrees, :mod:`hfpose.engine.angles`),
    unless ``joint_angles=False``.

    Threads: one tracker may be called from several threads; the calls take turns, each
    frame whole (detect, keypoints, track, smooth) before the next starts, in the order the
    calls arrive, so nothing is mixed up or lost. Frames of one video must still come in
    order: a tracker follows one stream; give each stream (each camera) a tracker of its own,
    which then run side by side.
    """

    # A script that names nothing gets the model's raw keypoints: unlike the app's and the
    # CLI's viewers, it did not ask for smoothing (which also lags behind fast moves).
    DEFAULTS: ClassVar[dict[str, Any]] = {"smoothing": "none"}

    def __init__(self, *, stills: bool = False, fps: float | None = None, **settings: Any) -> None:
        """``settings``: any of :func:`hfpose.engine.config.declared_settings` by name
        (``model``, ``backend``, ``detector``, ``det_interval_s``, ``max_persons``,
        ``kpt_thr``, ``min_pose_score``, ``smoothing`` and its parameters...); the rest keep
        their declared defaults (and ``DEFAULTS``). ``smoothing`` may also be a whole
        :class:`SmoothingConfig`. ``device`` is the deprecated name of ``backend``."""
        if "device" in settings:
            warnings.warn("PoseTracker(device=...) is now backend=...", DeprecationWarning, 2)
            settings["backend"] = settings.pop("device")
        smoothing = settings.get("smoothing")
        if isinstance(smoothing, SmoothingConfig):
            del settings["smoothing"]
        values = {**self.DEFAULTS, **settings}
        # one thread calls the models in turn: each may use every core
        self.config = config_from_settings(values, source="", model_threads=0)
        if isinstance(smoothing, SmoothingConfig):
            self.config.smoothing = smoothing
        self.processor = PoseProcessor(self.config, fps)
        self.stills = stills
        self._turns = threading.Lock()
        self._index = 0
        self._t0 = time.perf_counter()

    @property
    def runtime_info(self) -> RuntimeInfo:
        return self.processor.runtime_info

    @property
    def dataset_info(self) -> DatasetInfo:
        return self.processor.dataset_info

    def __call__(self, image_bgr: np.ndarray, timestamp: float | None = None) -> list[Person]:
        """The people in ``image_bgr``: ``(H, W, 3) uint8 BGR`` as OpenCV reads it; grayscale
        ``(H, W)`` / ``(H, W, 1)`` and BGRA ``(H, W, 4)`` uint8 are converted, anything else
        (floats, 16-bit, channels first, empty) is refused (:func:`as_bgr_image`)."""
        image_bgr = as_bgr_image(image_bgr)
        with self._turns:
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
        image_bgr = as_bgr_image(image_bgr)
        with self._turns:
            return self.processor.renderer.render(image_bgr, people, None)


EXPECTED_IMAGE = "(H, W, 3) uint8 BGR"


def as_bgr_image(image: Any) -> np.ndarray:
    """``image`` as the models take it, ``(H, W, 3) uint8 BGR``.

    Grayscale and BGRA uint8 are converted: nothing is guessed. Floats and 16-bit images are
    refused rather than scaled, because their range is not known (0..1 or 0..255; 16, 12 or
    10 bits): a wrong guess finds nobody without a word. Anything else is refused too; every
    refusal is one ``ValueError`` naming the expected layout and, where there is one, the
    conversion to make.
    """
    if not isinstance(image, np.ndarray):
        raise ValueError(
            f"expected an image as a numpy array {EXPECTED_IMAGE}, got {type(image).__name__}"
        )
    shape = image.shape
    if image.dtype != np.uint8:
        hint = ""
        if image.dtype.kind == "f":
            hint = "; from floats in 0..1: (image * 255).round().astype(np.uint8)"
        elif image.dtype == np.uint16:
            hint = "; from 16 bits: (image >> 8).astype(np.uint8)"
        raise ValueError(f"expected {EXPECTED_IMAGE}, got dtype {image.dtype}{hint}")
    channels = shape[2] if image.ndim == 3 else (1 if image.ndim == 2 else 0)
    if channels not in (1, 3, 4):
        hint = ""
        if image.ndim == 3 and shape[0] in (1, 3, 4):
            hint = "; channels first? image.transpose(1, 2, 0)"
        raise ValueError(f"expected {EXPECTED_IMAGE}, got shape {shape}{hint}")
    if shape[0] == 0 or shape[1] == 0:
        raise ValueError(f"expected {EXPECTED_IMAGE}, got an empty image of shape {shape}")
    if channels == 1:
        return cv2.cvtColor(image.reshape(shape[:2]), cv2.COLOR_GRAY2BGR)
    if channels == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return np.ascontiguousarray(image)
