"""The pipeline's stages in threads, handing frames on through bounded queues.

Each stage runs in its own thread, so decoding, detection, keypoint inference, drawing and
encoding overlap on different cores while memory stays bounded. The keypoint stage runs two
frames at once on two cores or more (``PipelineConfig.pose_frames_in_flight``) and hands them
on in order:

- a *file* is processed frame by frame, in order, none dropped; a full queue blocks the stage
  before it (back-pressure), so the source never races ahead;
- with a *live* source (webcam, stream) every hand-over, source to detector and each stage to
  the next, replaces a frame still waiting there with the newer one (counted as skipped): each
  stage starts on the newest frame, so the latency stays one frame's processing however long it
  runs. ``keep_real_time`` treats a file the same way, for a player that paces it at its own
  rate (the app).

The work on each frame is :class:`hfpose.engine.processor.PoseProcessor`'s; what becomes of a
finished frame, a failure and the end of the run is decided by the owner
(:class:`hfpose.engine.pipeline.Pipeline`) through the callbacks given to :class:`StageThreads`.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Protocol

import numpy as np

from hfpose.engine.config import PipelineConfig
from hfpose.engine.keypoints.estimator import started_pool
from hfpose.engine.output.rendering import HudInfo
from hfpose.engine.processor import STAGES, FrameWork, PoseProcessor
from hfpose.engine.results import StageStats
from hfpose.engine.run_control import POLL_S, RunControl
from hfpose.engine.sources.frame_source import Frame, FrameSource

_END = object()  # end-of-input marker that flows through every queue


def _ignore(*_args: object, **_kwargs: object) -> None:
    """What the owner's callbacks become once it has let go (:meth:`StageThreads.detach`)."""


class FailFn(Protocol):
    """Records the run's fatal error; ``drain``: let the frames already read finish first."""

    def __call__(
        self, stage: str, frame_index: int | None, error: BaseException, drain: bool = False
    ) -> None: ...


class StageMeter:
    """Throughput and per-frame work time of one stage over the last couple of seconds."""

    def __init__(self, name: str, window: int = 60) -> None:
        self.name = name
        self.frames = 0
        self._done: deque[float] = deque(maxlen=window)
        self._busy: deque[float] = deque(maxlen=window)
        self._lock = threading.Lock()

    def record(self, busy_s: float) -> None:
        with self._lock:
            self.frames += 1
            self._done.append(time.perf_counter())
            self._busy.append(busy_s)

    def snapshot(self, queue_size: int = 0) -> StageStats:
        with self._lock:
            fps = 0.0
            if len(self._done) >= 2 and self._done[-1] > self._done[0]:
                fps = (len(self._done) - 1) / (self._done[-1] - self._done[0])
            latency = 1000.0 * sum(self._busy) / len(self._busy) if self._busy else 0.0
            return StageStats(self.name, self.frames, fps, latency, queue_size)


class StageThreads:
    """One thread a stage, from the source's reads to the hand-over of finished frames.

    ``deliver(work, started)`` gets each finished frame in the sink thread (``started``: the
    ``perf_counter()`` it reached that thread); ``fail`` records the run's fatal error and,
    unless told to drain, stops the run through ``control``; ``on_end`` runs in the sink thread
    once it ends (end of input, stop or error) and must stop the others.
    """

    def __init__(
        self,
        config: PipelineConfig,
        control: RunControl,
        deliver: Callable[[FrameWork, float], None],
        fail: FailFn,
        on_end: Callable[[], None],
    ) -> None:
        self.config = config
        self.control = control
        self._deliver = deliver
        self._fail = fail
        self._on_end = on_end
        self.meters = {name: StageMeter(name) for name in STAGES}
        self.threads: list[threading.Thread] = []
        self._queues: dict[str, queue.Queue] = {}
        self._replaced_lock = threading.Lock()
        self.replaced_frames = 0  # frames replaced by newer ones in a queue (real time)
        self._epoch = 0
        self.source: FrameSource | None = None
        self.processor: PoseProcessor | None = None

    def start(self, source: FrameSource, processor: PoseProcessor) -> None:
        """Start every stage's thread on ``source`` (already open) with ``processor``."""
        self.source, self.processor = source, processor
        size = 1 if source.info.is_live else self.config.queue_size
        # Each stage reads from the queue named after it.
        self._queues = {name: queue.Queue(maxsize=size) for name in STAGES[1:]}
        targets = {
            "source": self._source_loop,
            "detect": lambda: self._stage_loop("detect", processor.detect_step),
            "pose": self._pose_loop,
            "track": lambda: self._stage_loop("track", processor.track_step),
            "smooth": lambda: self._stage_loop("smooth", processor.smooth_step),
            "render": lambda: self._stage_loop("render", self._render),
            "sink": self._sink_loop,
        }
        self.threads = [
            threading.Thread(target=targets[name], name=f"hfpose-{name}", daemon=True)
            for name in STAGES
        ]
        for thread in self.threads:
            thread.start()

    def detach(self) -> None:
        """Forget the owner's callbacks: the run is over. They are its bound methods, a
        reference cycle that kept a finished run (its models and decoder) alive until the
        cycle collector's next full pass; a thread still ending calls no-ops."""
        self._deliver = self._fail = self._on_end = _ignore

    def join_others(self, timeout: float) -> None:
        """Wait up to ``timeout`` for each stage thread but the calling one."""
        for thread in self.threads:
            if thread is not threading.current_thread():
                thread.join(timeout=timeout)

    def stats(self) -> dict[str, StageStats]:
        """Per-stage throughput, work time per frame and input queue length, right now."""
        return {
            name: meter.snapshot(self._queues[name].qsize() if name in self._queues else 0)
            for name, meter in self.meters.items()
        }

    # ------------------------------------------------------------------ hand-overs

    def _put(self, target: str, item: object) -> bool:
        """Hand ``item`` to stage ``target``; False when stopping.

        Real time (live source, ``keep_real_time``): replace what still waits there, never
        block. Otherwise a full queue blocks (back-pressure: every frame, none lost). The end
        marker always waits for room, so the last frame before it is never lost.
        """
        q = self._queues[target]
        if item is not _END and (self.source.info.is_live or self.config.keep_real_time):
            self._replace_waiting(q, item)
            return True
        while not self.control.stopping:
            try:
                q.put(item, timeout=POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def _get(self, name: str) -> object | None:
        q = self._queues[name]
        while not self.control.stopping:
            try:
                return q.get(timeout=POLL_S)
            except queue.Empty:
                continue
        return None

    def _replace_waiting(self, target: queue.Queue, work: FrameWork) -> None:
        """Take out every frame still waiting in ``target`` (skipped), then put ``work`` in.

        The next stage then starts on a frame at most one of this stage's periods old instead
        of one that waited a whole turn of the slower stage. Each queue has one producer (the
        stage before), so once the stale frames are out there is room.
        """
        while True:
            try:
                work.take_place_of(target.get_nowait())
            except queue.Empty:
                break
            with self._replaced_lock:
                self.replaced_frames += 1
        target.put_nowait(work)

    # ------------------------------------------------------------------ stage loops

    def _source_loop(self) -> None:
        source = self.source
        meter = self.meters["source"]
        frame: Frame | None = None
        try:
            while self.control.wait_for_turn():
                seek_to = self.control.take_seek()
                if seek_to is not None:
                    source.seek(seek_to)
                    self._epoch += 1
                started = time.perf_counter()
                frame = source.read()
                if frame is None:
                    source.info.read_to_end = not self.control.stopping
                    self._put("detect", _END)
                    return
                meter.record(time.perf_counter() - started)
                work = FrameWork(frame, self._epoch, time.perf_counter(), still=source.info.stills)
                if not self._put("detect", work):
                    return
        except BaseException as error:  # noqa: BLE001 - reported with stage and frame
            index = frame.index + 1 if frame is not None else 0
            self._fail("source", index, error, drain=True)
            self._put("detect", _END)

    def _stage_loop(self, name: str, step: Callable[[FrameWork], None]) -> None:
        following = STAGES[STAGES.index(name) + 1]
        meter = self.meters[name]
        work: FrameWork | None = None
        try:
            while True:
                item = self._get(name)
                if item is None:
                    return
                if item is _END:
                    self._put(following, _END)
                    return
                work = item
                started = time.perf_counter()
                step(work)
                meter.record(time.perf_counter() - started)
                if not self._put(following, work):
                    return
        except BaseException as error:  # noqa: BLE001 - reported with stage and frame
            self._fail(name, work.frame.index if work else None, error)

    def _pose_loop(self) -> None:
        """The keypoint stage, with up to ``pose_frames_in_flight`` frames in the model at once
        (:meth:`PoseProcessor.pose_lag` says when, :meth:`PoseProcessor.pose_boxes` whom each
        follows), handed on in order."""
        processor, meter = self.processor, self.meters["pose"]
        depth = self.config.pose_frames_in_flight
        q = self._queues["pose"]
        pending: deque[tuple[FrameWork, Future, np.ndarray]] = deque()
        work: FrameWork | None = None

        def keypoints(work: FrameWork, boxes: np.ndarray) -> tuple[list, float]:
            started = time.perf_counter()
            return processor.pose_people(work, boxes), time.perf_counter() - started

        def hand_on_oldest() -> bool:
            nonlocal work
            work, future, boxes = pending.popleft()
            people, seconds = future.result()
            processor.pose_done(work, boxes, people)
            meter.record(seconds)
            return self._put("track", work)

        pool = started_pool(depth)
        try:
            while not self.control.stopping:
                try:  # with frames in flight, wait on them rather than on the queue
                    item = q.get_nowait() if pending else q.get(timeout=POLL_S)
                except queue.Empty:
                    if pending and not hand_on_oldest():
                        return
                    continue
                if item is _END:
                    while pending:
                        if not hand_on_oldest():
                            return
                    self._put("track", _END)
                    return
                lag = processor.pose_lag(depth)
                while len(pending) >= lag:  # the frame ``lag`` back must be done first
                    if not hand_on_oldest():
                        return
                work = item
                boxes = processor.pose_begin(work, lag)
                pending.append((work, pool.submit(keypoints, work, boxes), boxes))
        except BaseException as error:  # noqa: BLE001 - reported with stage and frame
            self._fail("pose", work.frame.index if work else None, error)
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    def _render(self, work: FrameWork) -> None:
        hud = None
        if self.processor.renderer.options.draw_hud:
            stats = self.stats()
            hud = HudInfo(
                fps=stats["sink"].fps,
                stage_ms={n: stats[n].latency_ms for n in ("detect", "pose", "render")},
                people=len(work.people),
                backend=self.processor.runtime_info.label,
            )
        self.processor.render_step(work, hud)

    def _sink_loop(self) -> None:
        meter = self.meters["sink"]
        work: FrameWork | None = None
        try:
            while True:
                item = self._get("sink")
                if item is None or item is _END:
                    return
                work = item
                started = time.perf_counter()
                self._deliver(work, started)
                meter.record(time.perf_counter() - started)
        except BaseException as error:  # noqa: BLE001 - reported with stage and frame
            self._fail("sink", work.frame.index if work else None, error)
        finally:
            self._on_end()
