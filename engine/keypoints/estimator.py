"""Top-down pose estimation: person boxes in a BGR frame -> keypoints in frame pixels.

Any top-down keypoint model: HF-HRNet and other heatmap models, SimCC (RTMPose / DWPose) and
direct keypoints (MoveNet); ``hfpose.engine.keypoints.families`` tells them apart and decodes them.

Public API (stable):

- ``PoseEstimator(model, backend="auto", config_path=None, flip_test=False,
  use_dark=True, batch_mode="auto", num_threads=0, crop_workers=1, precision="fast",
  crowd_mode="auto")`` (``precision``: ``hfpose.engine.runtime.backends.PRECISIONS``; ``num_threads``
  0: the runtime uses every core; ``crop_workers`` N spreads a frame's crops over N cores on a
  runtime whose session runs calls side by side, ``InferenceSession.concurrent_calls``, in one
  of ``CROWD_MODES``: ``split``, up to N calls at once (one crop per call, or a batch cut in N
  parts), or ``threads``, a frame of N crops or more in one call on N intra-op threads (a
  second session of the same file; fewer crops keep one thread per call); ``auto`` lets
  ``hfpose.engine.runtime.auto.crowd_ways`` time both on this machine, for a CPU runtime);
  ``model`` is a file or the name of a shipped model (``hf-hrnet``, ``movenet-lightning``,
  ``movenet-thunder``).
- ``create_pose_estimator(model=None, backend="auto", **options) -> PoseEstimator``: ``None``
  is the shipped model (``assets/`` + ``DEFAULT_MODEL``); a ``.pth`` needs ``config_path``.
- ``PoseEstimator.estimate(frame_bgr, boxes) -> PoseResult``; ``boxes`` (N, 4 or 5) x1, y1,
  x2, y2[, score] in frame pixels. ``PoseResult`` (a NamedTuple, unpack as
  ``keypoints, scores = ...``): ``keypoints`` (N, K, 2) float32 x, y in frame pixels and
  ``scores`` (N, K) float32 (heatmap peak values; the model's own score for MoveNet), row i
  for box i. Safe from several threads at once (the pipeline's frames in flight): every
  session is. ``flip_test`` applies to heatmap and SimCC models; ``use_dark`` to heatmap
  models (DARK sub-pixel decoding: on the shipped model's held-out people +0.6 MPII PCKh and
  +0.9 coco_found AP, -0.2 LSPET PCK, for well under a millisecond per person).
- ``runtime_info`` (what really runs; ``crowds`` says how a crowd's crops share the cores),
  ``dataset_info`` (``hfpose.models.metainfo.DatasetInfo``: names,
  flip pairs, skeleton), ``input_size_wh``, ``model_path``, ``model_name``, ``decoder``
  (``family`` and ``crop``: the input it is fed).

Everything a model needs comes from its ONNX metadata (written by ``hfpose-export`` and the
MoveNet converter): input size, mean/std, padding, keypoint layout. A foreign ONNX file without
metadata gets its family's defaults (``hfpose.engine.keypoints.families``), its input size read from the
graph.

Batching: ``batch_mode="auto"`` sends all crops of a frame in one call on backends where that
measured faster and one call per crop elsewhere; ``benchmarks/bench_models.py`` measures it
(``BATCHED_BACKENDS`` records the outcome on the development machine).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from hfpose.engine.keypoints.families import (
    DEFAULT_SHIPPED_MODEL,
    SHIPPED_MODELS,
    KeypointDecoder,
    identify,
    resolve_model,
)
from hfpose.engine.runtime.auto import crowd_ways, probe_input_shape
from hfpose.engine.runtime.backends import create_session
from hfpose.engine.runtime.discovery import ORT_CPU
from hfpose.engine.runtime.model_files import ModelError, asset_path
from hfpose.engine.runtime.sessions import InferenceSession, RuntimeInfo
from hfpose.models.metainfo import DatasetInfo

# Backends (RuntimeInfo.backend) that get all crops of a frame in one call. Measured with
# benchmarks/bench_models.py and by hand (HF-HRNet-18, 2-core AMD EPYC, shared machine):
# OpenVINO bf16 is 1.13-1.22x faster batched (4 or 8 crops) in CPU time and in wall time.
# ONNX Runtime's CPU provider is not: per crop costs 4% (4 crops) to 12% (8 crops) less CPU
# time; with both threads free batched was ~10% faster in wall time, but next to a busy
# detector thread (the pipeline's case) the two were within noise, so it runs per crop.
# GPUs and NPUs are throughput devices where one call per frame is the norm.
BATCHED_BACKENDS = frozenset({"openvino", "gpu", "npu", "torch"})
BATCH_MODES = ("auto", "batched", "per_crop")
CROWD_MODES = ("auto", "split", "threads")
# Providers (RuntimeInfo.provider) that run on this machine's CPU cores: a crowd's crops share
# those cores with the detector, so how they spread over them is worth a probe.
CPU_PROVIDERS = frozenset({ORT_CPU, "OpenVINO CPU", "LiteRT XNNPACK"})


# The shipped keypoint model, looked up like the detectors (checkout or installed data files).
DEFAULT_MODEL = SHIPPED_MODELS[DEFAULT_SHIPPED_MODEL]


class PoseResult(NamedTuple):
    """Keypoints of all boxes of one frame, row i for box i."""

    keypoints: np.ndarray  # (N, K, 2) float32 x, y in frame pixels
    scores: np.ndarray  # (N, K) float32


@dataclass(frozen=True)
class _LoadedModel:
    """A session with the decoder that feeds and reads it."""

    session: InferenceSession
    model_path: Path
    decoder: KeypointDecoder


def _load(
    model: str | Path,
    backend: str,
    config_path: str | Path | None,
    num_threads: int,
    precision: str = "fast",
) -> _LoadedModel:
    model_path = resolve_model(model)
    session = create_session(model_path, backend, config_path, num_threads, precision)
    return _LoadedModel(
        session=session,
        model_path=model_path,
        decoder=identify(model_path, session),
    )


def started_pool(workers: int) -> ThreadPoolExecutor:
    """A thread pool whose ``workers`` threads all exist on return.

    ThreadPoolExecutor starts a thread per submit only while none is idle, so a lazily grown
    pool would start threads in the middle of a video, the first time a frame holds enough
    people: a thread count that changes mid-run looks like a leak to benchmarks/soak.py and
    puts thread start-up on the hot path. Each task here waits until all have started.
    """
    pool = ThreadPoolExecutor(workers)
    everyone_started = threading.Barrier(workers)
    for future in [pool.submit(everyone_started.wait) for _ in range(workers)]:
        future.result()
    return pool


class PoseEstimator:
    """Any top-down keypoint model on the chosen backend, swappable between frames."""

    def __init__(
        self,
        model: str | Path,
        backend: str = "auto",
        config_path: str | Path | None = None,
        flip_test: bool = False,
        use_dark: bool = True,
        batch_mode: str = "auto",
        num_threads: int = 0,
        crop_workers: int = 1,
        precision: str = "fast",
        crowd_mode: str = "auto",
    ) -> None:
        if batch_mode not in BATCH_MODES:
            raise ValueError(f"batch_mode must be one of {BATCH_MODES}, not {batch_mode!r}")
        if crowd_mode not in CROWD_MODES:
            raise ValueError(f"crowd_mode must be one of {CROWD_MODES}, not {crowd_mode!r}")
        if crop_workers < 1:
            raise ValueError(f"crop_workers must be >= 1, got {crop_workers}")
        self.flip_test = flip_test
        self.use_dark = use_dark
        self.batch_mode = batch_mode
        self._model = _load(model, backend, config_path, num_threads, precision)
        # Crops of a frame run one per worker at once where the runtime allows concurrent
        # calls: one-thread sessions keep as many cores busy as there are workers.
        self._crop_workers = crop_workers
        self._crop_pool = started_pool(crop_workers) if crop_workers > 1 else None
        # A frame of crop_workers crops or more runs here in one call on crop_workers times
        # num_threads threads, where that measured better than cutting it in parts.
        self._crowd_session: InferenceSession | None = None
        self._choose_crowd_mode(crowd_mode, num_threads)

    # ---------------------------------------------------------------------- what runs

    @property
    def runtime_info(self) -> RuntimeInfo:
        return replace(self._model.session.runtime_info, model=self.model_name, crowds=self.crowds)

    @property
    def crowds(self) -> str:
        """How a frame's crops share the cores, in words."""
        workers = self._crop_workers
        if self._crowd_session is not None:
            return f"{workers}+ crops in one call on {workers} threads"
        if self._crop_pool is not None and self._model.session.concurrent_calls:
            return f"crops in {workers} calls side by side"
        return "one call at a time"

    @property
    def decoder(self) -> KeypointDecoder:
        return self._model.decoder

    @property
    def dataset_info(self) -> DatasetInfo:
        return self._model.decoder.dataset_info

    @property
    def input_size_wh(self) -> tuple[int, int]:
        return self._model.decoder.crop.size_wh

    @property
    def model_name(self) -> str:
        return self._model.decoder.model_name

    @property
    def model_path(self) -> Path:
        return self._model.model_path

    # ------------------------------------------------------------------------- inference

    def batched(self) -> bool:
        """Whether this frame's crops go through the runtime in one call."""
        if self.batch_mode != "auto":
            return self.batch_mode == "batched"
        return self.runtime_info.backend in BATCHED_BACKENDS

    def estimate(self, frame_bgr: np.ndarray, boxes: np.ndarray) -> PoseResult:
        """Keypoints for every box (extra columns such as a score are ignored)."""
        model = self._model
        count = model.decoder.dataset_info.num_keypoints
        boxes = np.asarray(boxes, dtype=np.float32)
        if boxes.size == 0:
            return PoseResult(np.zeros((0, count, 2), np.float32), np.zeros((0, count), np.float32))
        crops = model.decoder.prepare(frame_bgr, boxes.reshape(len(boxes), -1))
        outputs = self._infer(model.session, crops.batch)
        flipped = None
        if self.flip_test and model.decoder.flip_supported:
            flipped = self._infer(model.session, np.ascontiguousarray(crops.batch[..., ::-1]))
        keypoints, scores = model.decoder.decode(outputs, crops, flipped, self.use_dark)
        return PoseResult(keypoints.astype(np.float32), scores.astype(np.float32))

    def _choose_crowd_mode(self, wanted: str, num_threads: int) -> None:
        """Sets ``_crowd_session`` where a crowd runs in one call on several threads: asked
        for, or (``auto``) measured better on this machine than cut in parts side by side."""
        session = self._model.session
        info = session.runtime_info
        spreads = self._crop_pool is not None and session.concurrent_calls
        if wanted == "split" or not spreads or info.provider not in CPU_PROVIDERS:
            return
        workers = self._crop_workers
        twins: list[InferenceSession] = []  # built once, for the probe or for the crowds

        def twin() -> InferenceSession:
            if not twins:
                twins.append(session.with_threads(num_threads * workers))
            return twins[0]

        def one_call_runner() -> Callable[[np.ndarray], list[np.ndarray]]:
            threaded = twin()
            return lambda batch: self._in_one_call(threaded, batch)

        try:
            if wanted == "auto":
                question = (
                    f"crowd, {info.label}, {'batched' if self.batched() else 'per crop'}, "
                    f"{workers} workers of {num_threads} threads"
                )
                wanted = crowd_ways(
                    self._model.model_path,
                    question,
                    probe_input_shape(session)[1:],
                    lambda batch: self._split(session, batch),
                    one_call_runner,
                )
            if wanted == "threads":
                self._crowd_session = twin()
        except NotImplementedError:  # a session with one thread count: crowds split
            return

    def _infer(self, session: InferenceSession, batch: np.ndarray) -> list[np.ndarray]:
        """The model on a frame's crops, over the cores: a crowd of ``crop_workers`` or more in
        one call on as many threads where that measured better (``_crowd_session``), else cut
        into parts run side by side (:meth:`_split`)."""
        if self._crowd_session is not None and len(batch) >= self._crop_workers:
            return self._in_one_call(self._crowd_session, batch)
        return self._split(session, batch)

    def _in_one_call(self, session: InferenceSession, batch: np.ndarray) -> list[np.ndarray]:
        """The crops in one call, or one call per crop (:meth:`batched`), one after another:
        ``session``'s own threads spread each call over the cores."""
        if self.batched():
            return session.run(batch)
        outputs = [session.run(batch[i : i + 1]) for i in range(len(batch))]
        return [np.concatenate(part) for part in zip(*outputs, strict=True)]

    def _split(self, session: InferenceSession, batch: np.ndarray) -> list[np.ndarray]:
        """The model on a frame's crops: in one call or one per crop (:meth:`batched`), spread
        over the crop workers where the session runs calls side by side (a batched call is
        cut into one part per worker: a crowd's crops then use the cores the detector leaves
        idle instead of one)."""
        side_by_side = self._crop_pool is not None and session.concurrent_calls
        if self.batched():
            parts = min(len(batch), self._crop_workers) if side_by_side else 1
        else:
            parts = len(batch)
        if parts == 1:
            return session.run(batch)
        chunks = np.array_split(batch, parts)
        if side_by_side:
            outputs = list(self._crop_pool.map(session.run, chunks))
        else:
            outputs = [session.run(chunk) for chunk in chunks]
        return [np.concatenate(part) for part in zip(*outputs, strict=True)]


def create_pose_estimator(
    model: str | Path | None = None, backend: str = "auto", **options: Any
) -> PoseEstimator:
    """The pipeline's entry point: ``model`` ``None`` means the shipped HF-HRNet; a name of
    ``hfpose.engine.keypoints.families.SHIPPED_MODELS`` (``movenet-thunder``) a shipped model."""
    if model is None:
        try:
            model = asset_path(DEFAULT_MODEL)
        except ModelError:
            raise ModelError(
                f"the default keypoint model {DEFAULT_MODEL} is not in assets/ yet: pass a model "
                "(export one with hfpose-export)"
            ) from None
    return PoseEstimator(model, backend, **options)
