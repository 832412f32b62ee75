"""The threaded pose pipeline: source -> detect -> pose -> track -> smooth -> render -> sink.

Each stage runs in its own thread and hands frames to the next through a bounded queue, so
decoding, detection, keypoint inference, drawing and encoding overlap on different cores while
memory stays bounded. The keypoint stage runs two frames at once on two cores or more
(``PipelineConfig.pose_frames_in_flight``) and hands them on in order:

- a *file* is processed frame by frame, in order, none dropped; a full queue blocks the stage
  before it (back-pressure), so the source never races ahead;
- with a *live* source (webcam, stream) every hand-over, source to detector and each stage to
  the next, replaces a frame still waiting there with the newer one (counted as skipped): each
  stage starts on the newest frame, so the latency stays one frame's processing however long it
  runs. ``keep_real_time`` treats a file the same way, for a player that paces it at its own
  rate (the app).

Stopping (``stop()``, Ctrl+C in the CLI, the end of the input, an error in any stage) ends every
thread within a second, closes every sink (so the video is playable), and an error is reported
once through ``on_error`` as a :class:`PipelineError` naming the stage and the frame.

Settings change live and take effect at the next frame without reopening the source:
``change_settings({name: value})`` for any declared setting (``hfpose.engine.config``), or
``set_backend``, ``set_model``, ``set_detector``, ``set_smoothing``, ``set_render_options``,
``set_max_persons``, ``set_kpt_thr``, ``set_min_pose_score``, ``set_det_interval``,
``set_keep_real_time``; sinks can be added and removed while running (recording start/stop);
files can be paused, stepped and seeked.

The per-frame work itself is :class:`hfpose.engine.processor.PoseProcessor`; its configuration
:class:`hfpose.engine.config.PipelineConfig`; :class:`hfpose.engine.pose_tracker.PoseTracker` is
the same processing without threads, for scripts.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from typing import Any

import numpy as np

from hfpose.engine.config import SETTINGS, PipelineConfig, config_from_settings, settings_of
from hfpose.engine.pose import started_pool
from hfpose.engine.processor import STAGES, FrameWork, PoseProcessor
from hfpose.engine.rendering import HudInfo, RenderOptions
from hfpose.engine.results import FrameResult, PipelineError, RunSummary, StageStats
from hfpose.engine.runtimes import RuntimeInfo
from hfpose.engine.sinks import Sink
from hfpose.engine.smoothing import SmoothingConfig
from hfpose.engine.sources import Frame, FrameSource, SourceInfo, open_source

log = logging.getLogger(__name__)

_POLL_S = 0.05  # how often a blocked stage looks at the stop flag (stop within a second)


class _StageMeter:
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


_END = object()  # end-of-input marker that flows through every queue


class Pipeline:
    """Runs the stages in threads; results arrive through ``on_result`` in the sink thread.

    Callbacks are called from pipeline threads: a GUI must hand them over to its own thread
    (the Qt app re-emits them as signals). ``on_result(FrameResult)`` per frame,
    ``on_error(PipelineError)`` for failures (``fatal`` ones ended the run; others, such as a
    model that failed to load on a live switch, leave the previous setting running), and
    ``on_finished(RunSummary)`` once when every thread has stopped and every sink is closed.
    """

    def __init__(
        self,
        config: PipelineConfig,
        sinks: Sequence[Sink] = (),
        on_result: Callable[[FrameResult], None] | None = None,
        on_error: Callable[[PipelineError], None] | None = None,
        on_finished: Callable[[RunSummary], None] | None = None,
    ) -> None:
        self.config = config
        self.on_result = on_result
        self.on_error = on_error
        self.on_finished = on_finished
        self._initial_sinks = list(sinks)
        self._sinks: list[Sink] = []
        self._sinks_lock = threading.Lock()
        self._sinks_closed = False  # set once the run has closed its sinks: no more can join
        self._lifecycle = threading.Lock()  # start() vs stop() from different threads
        self._start_called = False
        self._meters = {name: _StageMeter(name) for name in STAGES}
        self._stop = threading.Event()
        self._finished = threading.Event()
        self._control = threading.Condition()
        self._paused = False
        self._steps = 0
        self._seek_to: float | None = None
        self._epoch = 0
        self._threads: list[threading.Thread] = []
        self._queues: dict[str, queue.Queue] = {}
        self._error: PipelineError | None = None
        self._error_lock = threading.Lock()
        self._summary = RunSummary()
        self._started_at = 0.0
        self._replaced_frames = 0  # frames replaced by newer ones in a queue (real time)
        self.source: FrameSource | None = None
        self.processor: PoseProcessor | None = None
        self._wanted = settings_of(config)  # the settings asked for (change_settings)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Open the source, build the models, open the sinks, then start the threads.

        Everything a user can get wrong (missing file, camera, model, unwritable output)
        raises here, in the caller's thread, before any work starts; nothing is left open.
        """
        with self._lifecycle:
            if self._start_called:
                raise RuntimeError("a Pipeline can only be started once; create a new one")
            self._start_called = True
        config = self.config
        if isinstance(config.source, FrameSource):
            self.source = config.source
        else:
            try:
                self.source = open_source(config.source, folder_fps=config.folder_fps)
            except BaseException:
                self._finished.set()
                raise
        try:
            self.processor = PoseProcessor(config)
            self.processor.on_nonfatal_error = self._nonfatal
            for sink in self._initial_sinks:
                self.add_sink(sink)
        except BaseException:
            self._close_sinks()
            self.source.close()
            self._finished.set()  # nothing runs: wait() must not block
            raise
        with self._lifecycle:
            if self._stop.is_set():  # stopped from another thread while the models loaded
                self._close_sinks()
                self.source.close()
                self._finished.set()
                if self.on_finished is not None:
                    self.on_finished(self.summary())
                return
            self._start_threads()

    def _start_threads(self) -> None:
        live = self.source.info.is_live
        size = 1 if live else self.config.queue_size
        # Each stage reads from the queue named after it.
        self._queues = {name: queue.Queue(maxsize=size) for name in STAGES[1:]}
        self._started_at = time.perf_counter()
        targets = {
            "source": self._source_loop,
            "detect": lambda: self._stage_loop("detect", self.processor.detect_step),
            "pose": self._pose_loop,
            "track": lambda: self._stage_loop("track", self.processor.track_step),
            "smooth": lambda: self._stage_loop("smooth", self.processor.smooth_step),
            "render": lambda: self._stage_loop("render", self._render),
            "sink": self._sink_loop,
        }
        self._threads = [
            threading.Thread(target=targets[name], name=f"hfpose-{name}", daemon=True)
            for name in STAGES
        ]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Ask every stage to stop (returns at once; :meth:`wait` blocks until done)."""
        with self._lifecycle:
            self._summary.interrupted = not self._finished.is_set()
            self._stop.set()
            if not self._start_called:
                # Never started: nothing to wait for. (A start() still loading models sees
                # the stop flag and finishes the run itself; a failed one already did.)
                self._finished.set()
        with self._control:
            self._control.notify_all()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the run has finished (end of input, stop or error); True if it has."""
        return self._finished.wait(timeout)

    def run(self) -> RunSummary:
        """Start, wait for the end, return the summary; Ctrl+C stops cleanly and re-raises."""
        self.start()
        try:
            while not self.wait(0.1):
                pass
        except KeyboardInterrupt:
            self.stop()
            self.wait(5.0)
            raise
        return self.summary()

    @property
    def running(self) -> bool:
        return bool(self._threads) and not self._finished.is_set()

    @property
    def error(self) -> PipelineError | None:
        return self._error

    @property
    def source_info(self) -> SourceInfo | None:
        return self.source.info if self.source else None

    @property
    def runtime_info(self) -> RuntimeInfo | None:
        """The keypoint model's RuntimeInfo (what really runs, after any fallback)."""
        return self.processor.runtime_info if self.processor else None

    def summary(self) -> RunSummary:
        s = self._summary
        s.seconds = (time.perf_counter() - self._started_at) if self._started_at else 0.0
        s.fps = s.frames / s.seconds if s.seconds > 0 else 0.0
        if self.processor is not None:
            s.runtime = self.processor.runtime_info
            s.detector_runtime = self.processor.detector.runtime_info
        if self.source is not None:
            s.dropped_frames = self._dropped_frames()
            s.ended_early = self.source.info.ended_early
        s.error = self._error
        return s

    def stats(self) -> dict[str, StageStats]:
        """Per-stage throughput, work time per frame and input queue length, right now."""
        return {
            name: meter.snapshot(self._queues[name].qsize() if name in self._queues else 0)
            for name, meter in self._meters.items()
        }

    # ------------------------------------------------------------------ live controls
    # Each takes effect at the next frame the stage concerned handles; called before start()
    # they change the configuration the run starts with.

    def set_backend(self, backend: str) -> None:
        """Move the keypoint model and the detector to another backend at the next frame."""
        self._request("detect", backend=backend)
        self._request("pose", backend=backend)

    def set_precision(self, precision: str) -> None:
        """Run the keypoint model in ``precision`` (``PipelineConfig.precision``) from the next
        frame on."""
        self._request("pose", precision=precision)

    def set_model(self, model: str | None, model_config: str | None = None) -> None:
        """Load another keypoint model (``None``: the shipped one) at the next frame;
        ``model_config`` is the config a ``.pth`` checkpoint needs."""
        self._request("pose", model=model, model_config=model_config)

    def set_detector(self, detector: str) -> None:
        """``nanodet``, ``blazepose`` or a path to an ONNX person detector, at the next frame."""
        self._request("detect", detector=detector)

    def set_det_interval(self, frames: int) -> None:
        SETTINGS["det_interval"].check(frames)
        self._request("detect", det_interval=frames)

    def set_max_persons(self, count: int) -> None:
        """At most ``count`` people (highest detector scores first); 0 = no limit."""
        SETTINGS["max_persons"].check(count)
        self._request("pose", max_persons=count)

    def set_kpt_thr(self, threshold: float) -> None:
        """Keypoints below ``threshold`` are not drawn nor used for box following/tracking."""
        SETTINGS["kpt_thr"].check(threshold)
        for stage in ("pose", "track", "render"):
            self._request(stage, kpt_thr=threshold)

    def set_min_pose_score(self, threshold: float) -> None:
        """People whose mean keypoint score is under ``threshold`` are dropped as phantoms."""
        SETTINGS["min_pose_score"].check(threshold)
        for stage in ("pose", "track"):
            self._request(stage, min_pose_score=threshold)

    def set_keep_real_time(self, keep: bool) -> None:
        """Files: skip the frames the stages have no time for (``True``) or take every frame
        (``False``); each stage reads it at its next hand-over."""
        self.config.keep_real_time = bool(keep)

    def set_smoothing(self, smoothing: SmoothingConfig) -> None:
        self._request("smooth", smoothing=smoothing)

    def set_render_options(self, options: RenderOptions) -> None:
        self._request("render", render=options)

    def change_settings(self, values: Mapping[str, Any]) -> None:
        """Apply settings given by their user-facing names (``declared_settings``) at the next
        frame; every declared setting is live. Smoothing and drawing parameters are rebuilt
        from all the values asked for so far, so quick successive edits never undo each other.
        Raises ValueError, before changing anything, for a value the declaration refuses."""
        for name, value in values.items():
            if name not in SETTINGS:
                raise TypeError(f"unknown setting {name!r}")
            SETTINGS[name].check(value)
        self._wanted.update(values)
        groups = {SETTINGS[name].path[0] for name in values if len(SETTINGS[name].path) > 1}
        if "model" in values or "model_config" in values:
            self.set_model(self._wanted["model"], self._wanted["model_config"])
        setters = {
            "backend": self.set_backend,
            "precision": self.set_precision,
            "detector": self.set_detector,
            "det_interval": self.set_det_interval,
            "max_persons": self.set_max_persons,
            "kpt_thr": self.set_kpt_thr,
            "min_pose_score": self.set_min_pose_score,
        }
        for name, setter in setters.items():
            if name in values:
                setter(values[name])
        wanted = config_from_settings(self._wanted, source="")
        if "smoothing" in groups:
            self.set_smoothing(wanted.smoothing)
        if "render" in groups:
            self.set_render_options(wanted.render)

    def add_sink(self, sink: Sink) -> None:
        """Open ``sink`` for this source and start feeding it from the next frame.

        Raises :class:`hfpose.engine.sinks.SinkError` (in the caller's thread) when it cannot write.
        """
        if self.source is None:
            self._initial_sinks.append(sink)
            return
        sink.open(self.source.info)
        with self._sinks_lock:
            if not self._sinks_closed:
                self._sinks.append(sink)
                return
        sink.close()
        raise RuntimeError("the pipeline has finished; start a new one to record")

    def remove_sink(self, sink: Sink) -> None:
        """Stop feeding ``sink`` and close it (the file is complete when this returns)."""
        with self._sinks_lock:
            if sink not in self._sinks:
                return
            self._sinks.remove(sink)
        sink.close()

    def pause(self) -> None:
        with self._control:
            self._paused = True

    def resume(self) -> None:
        with self._control:
            self._paused = False
            self._steps = 0
            self._control.notify_all()

    @property
    def paused(self) -> bool:
        return self._paused

    def step(self) -> None:
        """While paused, let exactly one more frame through."""
        with self._control:
            self._steps += 1
            self._control.notify_all()

    def seek(self, seconds: float) -> None:
        """Jump to ``seconds`` (files and folders); tracking restarts there.

        While paused, the frame at the new position is processed and shown.
        """
        if self.source is not None and not self.source.info.seekable:
            raise ValueError(f"{self.source.info.uri} is live: it cannot seek")
        with self._control:
            self._seek_to = float(seconds)
            self._control.notify_all()

    # ------------------------------------------------------------------ threads

    def _request(self, stage: str, **changes: Any) -> None:
        """Hand a live change to the stage that owns it; before start() it simply becomes
        part of the configuration (the keys are PipelineConfig field names)."""
        if self.processor is not None:
            self.processor.request(stage, **changes)
            return
        for field_name, value in changes.items():
            setattr(self.config, field_name, value)

    def _dropped_frames(self) -> int:
        return self.source.dropped_frames + self._replaced_frames

    def _nonfatal(self, error: PipelineError) -> None:
        if self.on_error is not None:
            self.on_error(error)

    def _fail(
        self, stage: str, frame_index: int | None, error: BaseException, drain: bool = False
    ) -> None:
        """Record the run's fatal error; stop every stage, or with ``drain`` let the frames
        already read finish first (a broken source: what was decoded is still worth keeping)."""
        with self._error_lock:
            if self._error is not None:
                return  # the first failure is the cause; later ones are its echoes
            self._error = PipelineError(stage, frame_index, error)
        log.error("%s", self._error)
        if not drain:
            self._stop.set()
            with self._control:
                self._control.notify_all()
        if self.on_error is not None:
            self.on_error(self._error)

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
        while not self._stop.is_set():
            try:
                q.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def _get(self, name: str) -> object | None:
        q = self._queues[name]
        while not self._stop.is_set():
            try:
                return q.get(timeout=_POLL_S)
            except queue.Empty:
                continue
        return None

    def _wait_for_turn(self) -> bool:
        """Block while paused (unless a step or a seek is pending); False when stopping."""
        with self._control:
            while self._paused and self._steps == 0 and self._seek_to is None:
                if self._stop.is_set():
                    return False
                self._control.wait(_POLL_S)
            if self._paused and self._steps > 0:
                self._steps -= 1
            return not self._stop.is_set()

    def _source_loop(self) -> None:
        source = self.source
        meter = self._meters["source"]
        frame: Frame | None = None
        try:
            while self._wait_for_turn():
                with self._control:
                    seek_to, self._seek_to = self._seek_to, None
                if seek_to is not None:
                    source.seek(seek_to)
                    self._epoch += 1
                started = time.perf_counter()
                frame = source.read()
                if frame is None:
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
            with self._control:
                self._replaced_frames += 1
        target.put_nowait(work)

    def _stage_loop(self, name: str, step: Callable[[FrameWork], None]) -> None:
        following = STAGES[STAGES.index(name) + 1]
        meter = self._meters[name]
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
        processor, meter = self.processor, self._meters["pose"]
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
            while not self._stop.is_set():
                try:  # with frames in flight, wait on them rather than on the queue
                    item = q.get_nowait() if pending else q.get(timeout=_POLL_S)
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
        meter = self._meters["sink"]
        work: FrameWork | None = None
        try:
            while True:
                item = self._get("sink")
                if item is None or item is _END:
                    return
                work = item
                started = time.perf_counter()
                result = FrameResult(
                    index=work.frame.index,
                    timestamp=work.frame.timestamp,
                    image=work.image,
                    frame=work.frame.image,
                    people=work.people,
                    stats=self.stats(),
                    runtime=self.processor.runtime_info,
                    source_info=self.source.info,
                    latency_ms=1000.0 * (started - work.born),
                    dropped_frames=self._dropped_frames(),
                    detected=work.boxes is not None,
                )
                # The display first: it should not wait for the encoder.
                if self.on_result is not None:
                    self.on_result(result)
                with self._sinks_lock:
                    for sink in self._sinks:
                        sink.write(result)
                self._summary.frames += 1
                self._summary.people += len(work.people)
                self._summary.max_people = max(self._summary.max_people, len(work.people))
                meter.record(time.perf_counter() - started)
        except BaseException as error:  # noqa: BLE001 - reported with stage and frame
            self._fail("sink", work.frame.index if work else None, error)
        finally:
            self._shutdown()

    def _close_sinks(self) -> None:
        with self._sinks_lock:
            sinks, self._sinks = self._sinks, []
            self._sinks_closed = True
        for sink in sinks:
            try:
                sink.close()
            except Exception as error:  # noqa: BLE001 - close the others, report this one
                self._fail("sink", None, error)

    def _shutdown(self) -> None:
        """Runs in the sink thread when it ends: stop the others, close sinks and source."""
        self._stop.set()
        with self._control:
            self._control.notify_all()
        self._close_sinks()
        if self.source.info.is_live:
            self.source.close()  # wakes a source thread waiting for a stalled camera
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=1.0)
        self.source.close()
        summary = self.summary()
        self._finished.set()
        if self.on_finished is not None:
            self.on_finished(summary)
