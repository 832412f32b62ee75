"""The threaded pose pipeline: source -> detect -> pose -> track -> smooth -> render -> sink.

:class:`Pipeline` is what a GUI, the CLI or a script drives: it opens the source, builds the
models, opens the sinks, runs the stages in threads (:mod:`hfpose.engine.stage_threads`: how
frames are handed on, for files and for live sources, and the keypoint stage with frames in
flight) and delivers every finished frame through ``on_result`` and to its sinks.

Stopping (``stop()``, Ctrl+C in the CLI, the end of the input, an error in any stage) ends every
thread within a second, closes every sink (so the video is playable), and an error is reported
once through ``on_error`` as a :class:`PipelineError` naming the stage and the frame.

Settings change live and take effect at the next frame without reopening the source:
``change_settings({name: value})`` for any declared setting (``hfpose.engine.config``: its
declaration names the stages it reaches), and ``set_keep_real_time`` for a file's pacing; sinks can be added and removed while running (recording start/stop);
files can be paused, stepped and seeked (:class:`hfpose.engine.run_control.RunControl`).

The per-frame work itself is :class:`hfpose.engine.processor.PoseProcessor`; its configuration
:class:`hfpose.engine.config.PipelineConfig`; :class:`hfpose.engine.pose_tracker.PoseTracker` is
the same processing without threads, for scripts.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from hfpose.engine.config import SETTINGS, PipelineConfig, config_from_settings, settings_of
from hfpose.engine.output.sinks import Sink
from hfpose.engine.processor import FrameWork, PoseProcessor
from hfpose.engine.results import FrameResult, PipelineError, RunSummary, StageStats
from hfpose.engine.run_control import RunControl, stop_signals_held
from hfpose.engine.runtime.sessions import RuntimeInfo
from hfpose.engine.sources.frame_source import FrameSource, SourceInfo
from hfpose.engine.sources.opening import open_source
from hfpose.engine.stage_threads import StageThreads

log = logging.getLogger(__name__)

# How long a start cut short by Ctrl+C waits for its threads to end and its outputs to close.
STOP_WAIT_S = 10.0


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
        self._finished = threading.Event()
        self._control = RunControl()
        self._stages = StageThreads(
            config, self._control, self._deliver, self._fail, self._shutdown
        )
        self._error: PipelineError | None = None
        self._error_lock = threading.Lock()
        self._summary = RunSummary()
        self._started_at = 0.0
        self.source: FrameSource | None = None
        self.processor: PoseProcessor | None = None
        self._wanted = settings_of(config)  # the settings asked for (change_settings)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Open the source, build the models, open the sinks, then start the threads.

        Everything a user can get wrong (missing file, camera, model, unwritable output)
        raises here, in the caller's thread, before any work starts; nothing is left open.
        A Ctrl+C or SIGTERM while the threads start is raised once they run, after the run
        has stopped as :meth:`stop` stops it (its outputs finished).
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
            info = self.source.info
            self.processor = PoseProcessor(config, info.fps if info.fps_reported else None)
            self.processor.on_nonfatal_error = self._nonfatal
            for sink in self._initial_sinks:
                self.add_sink(sink)
        except BaseException:
            self._close_sinks()
            self.source.close()
            self._finished.set()  # nothing runs: wait() must not block
            self._let_go()
            raise
        try:
            with self._lifecycle:
                if self._control.stopping:  # stopped from another thread while models loaded
                    self._close_sinks()
                    self.source.close()
                    self._finished.set()
                    try:
                        if self.on_finished is not None:
                            self.on_finished(self.summary())
                    finally:
                        self._let_go()
                    return
                self._started_at = time.perf_counter()
                with stop_signals_held():  # every thread starts, then a Ctrl+C is raised
                    self._stages.start(self.source, self.processor)
        except BaseException:
            self.stop()  # a stop as any other: outputs finished, every thread ended
            self.wait(STOP_WAIT_S)
            raise

    def stop(self) -> None:
        """Ask every stage to stop (returns at once; :meth:`wait` blocks until done)."""
        with self._lifecycle:
            self._summary.interrupted = not self._finished.is_set()
            self._control.stop()
            if not self._start_called:
                # Never started: nothing to wait for. (A start() still loading models sees
                # the stop flag and finishes the run itself; a failed one already did.)
                self._finished.set()

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
        return bool(self._stages.threads) and not self._finished.is_set()

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
            s.detection = self.processor.cadence
        if self.source is not None:
            s.dropped_frames = self._dropped_frames()
            s.ended_early = self.source.info.ended_early
            s.skipped = list(self.source.info.skipped)
        s.error = self._error
        return s

    def stats(self) -> dict[str, StageStats]:
        """Per-stage throughput, work time per frame and input queue length, right now."""
        return self._stages.stats()

    # ------------------------------------------------------------------ live controls
    # Each takes effect at the next frame the stage concerned handles; called before start()
    # they change the configuration the run starts with.

    def set_keep_real_time(self, keep: bool) -> None:
        """Files: skip the frames the stages have no time for (``True``) or take every frame
        (``False``); each stage reads it at its next hand-over."""
        self.config.keep_real_time = bool(keep)

    def change_settings(self, values: Mapping[str, Any]) -> None:
        """Apply settings given by their user-facing names (``declared_settings``), each in the
        stages its declaration names (``Setting.stages``), at their next frame. A nested
        config (smoothing, drawing) is rebuilt from all the values asked for so far, so quick
        successive edits never undo each other. Raises ValueError, before changing anything,
        for a value the declaration refuses."""
        for name, value in values.items():
            if name not in SETTINGS:
                raise TypeError(f"unknown setting {name!r}")
            SETTINGS[name].check(value)
        self._wanted.update(values)
        wanted = config_from_settings(self._wanted, source="")
        changes: dict[str, dict[str, Any]] = {}
        for name in values:
            field_name = SETTINGS[name].path[0]
            for stage in SETTINGS[name].stages:
                changes.setdefault(stage, {})[field_name] = getattr(wanted, field_name)
        for stage, fields in changes.items():
            self._request(stage, **fields)

    def add_sink(self, sink: Sink) -> None:
        """Open ``sink`` for this source and start feeding it from the next frame.

        Raises :class:`hfpose.engine.output.sinks.SinkError` (in the caller's thread) when it cannot write.
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
        self._control.pause()

    def resume(self) -> None:
        self._control.resume()

    @property
    def paused(self) -> bool:
        return self._control.paused

    def step(self) -> None:
        """While paused, let exactly one more frame through."""
        self._control.step()

    def seek(self, seconds: float) -> None:
        """Jump to ``seconds`` (files and folders); tracking restarts there.

        While paused, the frame at the new position is processed and shown.
        """
        if self.source is not None and not self.source.info.seekable:
            raise ValueError(f"{self.source.info.uri} is live: it cannot seek")
        self._control.seek(seconds)

    # ------------------------------------------------------------------ run internals

    def _request(self, stage: str, **changes: Any) -> None:
        """Hand a live change to the stage that owns it; before start() it simply becomes
        part of the configuration (the keys are PipelineConfig field names)."""
        if self.processor is not None and stage != "sink":
            self.processor.request(stage, **changes)
            return
        # before start(), and for what the consumers of results read (the sinks, the app's
        # angle dock): the configuration itself, which they read at each frame
        for field_name, value in changes.items():
            setattr(self.config, field_name, value)

    def _dropped_frames(self) -> int:
        return self.source.dropped_frames + self._stages.replaced_frames

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
            self._control.stop()
        if self.on_error is not None:
            self.on_error(self._error)

    def _close_sinks(self) -> None:
        with self._sinks_lock:
            sinks, self._sinks = self._sinks, []
            self._sinks_closed = True
        for sink in sinks:
            try:
                sink.close()
            except Exception as error:  # noqa: BLE001 - close the others, report this one
                self._fail("sink", None, error)

    def _deliver(self, work: FrameWork, started: float) -> None:
        """Runs in the sink thread for each finished frame: the display first (it should not
        wait for the encoder), then the sinks, then the run's counts."""
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
        if self.on_result is not None:
            self.on_result(result)
        with self._sinks_lock:
            for sink in self._sinks:
                sink.write(result)
        self._summary.frames += 1
        self._summary.people += len(work.people)
        self._summary.detected_frames += work.boxes is not None
        self._summary.max_people = max(self._summary.max_people, len(work.people))

    def _shutdown(self) -> None:
        """Runs in the sink thread when it ends: stop the others, close sinks and source."""
        self._control.stop()
        self._close_sinks()
        if self.source.info.is_live:
            self.source.close()  # wakes a source thread waiting for a stalled camera
        self._stages.join_others(timeout=1.0)
        self.source.close()
        summary = self.summary()
        self._finished.set()
        try:
            if self.on_finished is not None:
                self.on_finished(summary)
        finally:
            self._let_go()

    def _let_go(self) -> None:
        """The run is over: drop the callbacks the stage threads and the processor hold on
        this pipeline, and ``on_finished`` (called once, already), which a caller's closure
        over the pipeline makes a cycle too. They kept a finished run (models, sessions,
        thread pools, decoder: about 100 MB) alive until the cycle collector's next full
        pass, and an app opening source after source held a dozen of them."""
        self._stages.detach()
        if self.processor is not None:
            self.processor.on_nonfatal_error = None
        self.on_finished = None
