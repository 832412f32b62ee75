"""The bridge between the engine's threaded pipeline and the Qt GUI thread.

The engine calls back from its own threads; here those callbacks become Qt signals, and every
engine call that can block (opening a camera, loading models, opening or finalising a
recording, writing exports) runs on one control thread. The GUI thread therefore only paints
and never waits on inference or I/O.

Frames reach the GUI through a one-slot mailbox (:mod:`hfpose.app.frame_mailbox`): the sink
thread overwrites the slot and emits ``frame_ready`` only when the GUI has taken the previous
frame, so a GUI that falls behind skips to the newest frame instead of queueing (live sources
never freeze the window). Every frame still reaches the recording, which is a sink inside the
engine; the keypoints shown are kept for "Export keypoints" (:mod:`hfpose.app.keypoint_export`).

Files play at their own speed: :class:`hfpose.app.paced_source.PacedSource` releases frames when their timestamp is
due, as a player does; the engine alone would process them as fast as it can (right for the
CLI, a fast-forward in a viewer). When processing is slower than the file's rate the user
chooses (``AppSettings.playback``): "every-frame" plays slower and shows every frame,
"real-time" keeps the file's clock and skips the frames the detector has no time for, as with a
camera. Either way the latency shown is capture-to-display of the frame on screen: from the
moment the player released the frame (its capture, for a camera) to its paint.
"""

from __future__ import annotations

import logging
import time
import weakref
from pathlib import Path

from PySide6.QtCore import QObject, Signal, Slot
from PySide6.QtGui import QImage

from hfpose.app.control_thread import ControlThread
from hfpose.app.frame_mailbox import FrameMailbox, FrameUpdate
from hfpose.app.keypoint_export import KeptFrame, KeptKeypoints, PeopleFeed, write_keypoints
from hfpose.app.paced_source import PacedSource
from hfpose.app.recording import RecordingSink, video_sink
from hfpose.app.settings import AppSettings
from hfpose.app.video_view import bgr_to_qimage
from hfpose.engine.config import PipelineConfig, config_from_settings
from hfpose.engine.pipeline import Pipeline
from hfpose.engine.results import FrameResult, PipelineError, RunSummary
from hfpose.engine.runtime.discovery import available_backends
from hfpose.engine.sources.frame_source import FrameSource, SourceInfo
from hfpose.engine.sources.opening import list_cameras, open_source
from hfpose.models.metainfo import COCO, DatasetInfo

log = logging.getLogger(__name__)


def user_message(error: BaseException) -> str:
    """One line for the banner: the cause first (what the user can act on), then where."""
    if isinstance(error, PipelineError):
        cause = str(error.cause) or type(error.cause).__name__
        where = f"{error.stage} stage" + (
            f", frame {error.frame_index}" if error.frame_index is not None else ""
        )
        return f"{cause[:1].upper()}{cause[1:]} ({where})."
    text = str(error) or type(error).__name__
    return f"{text[:1].upper()}{text[1:]}" + ("" if text.endswith(".") else ".")


def pipeline_config(source: FrameSource, s: AppSettings) -> PipelineConfig:
    """The engine configuration for the app's settings."""
    return config_from_settings(
        s.engine_settings(),
        source=source,
        keep_real_time=s.playback == "real-time",
        # One frame waiting per stage: a viewer wants the newest picture, and in "every-frame"
        # playback deeper queues only add frames in flight (seconds of latency when slow).
        queue_size=1,
    )


class PipelineWorker(QObject):
    """Owns the engine pipeline of the current source; every public method returns at once."""

    frame_ready = Signal()  # take the frame with take_frame()
    opened = Signal(object)  # SourceInfo
    playing_changed = Signal(bool)
    finished = Signal()  # the end of a file
    failed = Signal(str)  # one line for the banner
    warning = Signal(str)  # something did not apply, the run goes on
    runtime_changed = Signal(str)  # RuntimeInfo.label of the keypoint model
    recording_started = Signal(str)
    recording_stopped = Signal(str)
    exported = Signal(str)
    snapshot_saved = Signal(str)
    cameras_found = Signal(object)  # list[CameraInfo]
    # Internal: engine threads -> GUI thread.
    _started = Signal(int, object, object)  # generation, pipeline, settings used
    _run_finished = Signal(int, object, object)  # generation, RunSummary, pipeline
    _recording_failed = Signal(str)
    _open_failed = Signal(int, str)  # generation, message

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._control = ControlThread(lambda error: self.failed.emit(user_message(error)))
        self._generation = 0
        self._pipeline: Pipeline | None = None
        self._running: set[Pipeline] = set()  # started and not yet finished (may be stopping)
        self._published: weakref.WeakSet[Pipeline] = weakref.WeakSet()  # seen by _on_started
        self._completed: weakref.WeakSet[Pipeline] = weakref.WeakSet()  # end handled
        self._source_spec: str | None = None
        self._source_info: SourceInfo | None = None
        self._settings = AppSettings()
        self._playing = False
        self._closing = False
        self._recording: RecordingSink | None = None
        self._recording_pipeline: Pipeline | None = None
        self._runtime_label = ""
        self._dataset_info: DatasetInfo = COCO
        self._mailbox = FrameMailbox()
        self._kept = KeptKeypoints()
        self._feed = PeopleFeed()  # every frame's people until the GUI takes them
        self.last_time_s = 0.0
        self._started.connect(self._on_started)
        self._run_finished.connect(self._on_run_finished)
        self._recording_failed.connect(self._on_recording_failed)
        self._open_failed.connect(self._on_open_failed)
        # Warm the engine's cached OpenVINO device query now, off the GUI thread, so the
        # settings dialog (which lists the backends) opens at once later.
        self._control.submit(available_backends)

    # ------------------------------------------------------------------------------ state
    @property
    def playing(self) -> bool:
        return self._playing

    @property
    def recording_path(self) -> str | None:
        return str(self._recording.path) if self._recording else None

    def has_keypoints(self) -> bool:
        return bool(self._kept)

    def take_frame(self) -> FrameUpdate | None:
        """The newest frame (None if already taken); re-arms ``frame_ready``."""
        update = self._mailbox.take()
        if update is not None:
            self.last_time_s = update.time_s
        return update

    def take_people(self) -> list[KeptFrame]:
        """Every frame's people since the last call (the angle plot's input), oldest first."""
        return self._feed.take()

    # ----------------------------------------------------------------------------- sources
    def open(
        self,
        spec: str,
        settings: AppSettings,
        start_s: float = 0.0,
        recording: RecordingSink | None = None,
    ) -> None:
        """Open ``spec`` (file, ``webcam:N``, URL) and play it; the old run stops first.

        ``recording`` is a sink to feed from the very first frame (Record on a stopped file).
        """
        self._settings = settings
        self._source_spec = spec
        self._generation += 1
        generation = self._generation
        old, self._pipeline = self._pipeline, None
        self._set_playing(False)
        self._runtime_label = ""  # the new run's first frame announces (and explains) its own
        self._kept.clear()
        self._feed.clear()
        self._mailbox.clear()

        def task() -> None:
            if old is not None:
                old.stop()
                old.wait(2.0)
            try:
                source = open_source(spec)
            except Exception as error:  # noqa: BLE001 - SourceError and FFmpeg oddities
                self._fail(generation, error)
                return
            if not source.info.is_live:
                source = PacedSource(source)
                if start_s > 0:
                    source.seek(start_s)
            try:
                pipeline = Pipeline(
                    pipeline_config(source, settings),
                    sinks=[recording] if recording is not None else [],
                    on_result=lambda r: self._on_result(generation, r),
                    on_error=lambda e: self._on_error(generation, e),
                )
            except Exception as error:  # noqa: BLE001 - a setting the engine refuses
                source.close()
                self._fail(generation, error)
                return
            pipeline.on_finished = lambda s: self._run_finished.emit(generation, s, pipeline)
            try:
                pipeline.start()  # closes the source itself when it fails
            except Exception as error:  # noqa: BLE001 - model, backend, sink: all user-facing
                self._fail(generation, error)
                return
            if recording is not None:
                recording.owner = pipeline
            if self._closing or generation != self._generation:
                pipeline.stop()  # superseded while models were loading
                return
            self._started.emit(generation, pipeline, settings)

        self._control.submit(task)

    def _fail(self, generation: int, error: BaseException) -> None:
        self._open_failed.emit(generation, user_message(error))

    @Slot(int, str)
    def _on_open_failed(self, generation: int, message: str) -> None:
        if generation != self._generation or self._closing:
            return
        if self._recording is not None and self._recording_pipeline is None:
            path = str(self._recording.path)  # it was to start with this run: never opened
            self._recording = None
            self.recording_stopped.emit(path)
        self.failed.emit(message)

    @Slot(int, object, object)
    def _on_started(self, generation: int, pipeline: Pipeline, used: AppSettings) -> None:
        if generation != self._generation or self._closing:
            pipeline.stop()
            return
        self._pipeline = pipeline
        self._published.add(pipeline)
        self._running.add(pipeline)
        self._source_info = pipeline.source_info
        processor = pipeline.processor
        self._dataset_info = processor.dataset_info
        self.opened.emit(self._source_info)
        runtime = pipeline.runtime_info
        self.runtime_changed.emit(runtime.label if runtime is not None else "")
        self._apply_changes(used, self._settings)  # edits made while the models loaded
        if self._recording is not None and self._recording_pipeline is None:
            self._recording_pipeline = pipeline  # recording from the first frame
            self.recording_started.emit(str(self._recording.path))
        self._set_playing(True)
        if not pipeline.running:  # a very short input ended before this signal arrived
            self._on_run_finished(generation, pipeline.summary(), pipeline)

    # --------------------------------------------------------------------- engine threads
    def _on_result(self, generation: int, result: FrameResult) -> None:
        """Sink thread: keep the keypoints, convert the image, post it to the mailbox."""
        if generation != self._generation:
            return
        image = bgr_to_qimage(result.image)
        sink_stats = result.stats.get("sink")
        runtime = result.runtime
        label = runtime.label if runtime is not None else ""
        update = FrameUpdate(
            image=image,
            frame_index=result.index,
            time_s=result.timestamp,
            fps=sink_stats.fps if sink_stats else 0.0,
            latency_ms=result.latency_ms,
            people=len(result.people),
            runtime_label=label,
            dropped_frames=result.dropped_frames,
            arrived=time.perf_counter(),
        )
        self._kept.add(result.index, result.timestamp, result.people)
        self._feed.add(result.index, result.timestamp, result.people)
        if self._mailbox.post(update):
            self.frame_ready.emit()
        if label != self._runtime_label:
            self._runtime_label = label
            self.runtime_changed.emit(label)
            if runtime is not None and runtime.fallback_reason:
                self.warning.emit(
                    f"Backend '{runtime.requested}' is not available here; running on "
                    f"{label.split(' (')[0]} instead: {runtime.fallback_reason}."
                )

    def _on_error(self, generation: int, error: PipelineError) -> None:
        if generation != self._generation or self._closing:
            return
        if error.fatal:
            self.failed.emit(user_message(error))
        else:
            self.warning.emit(user_message(error))

    @Slot(int, object, object)
    def _on_run_finished(self, generation: int, summary: RunSummary, pipeline: Pipeline) -> None:
        """Every engine thread has stopped and every sink is closed (the recording is final).

        Handled once per run, and only after :meth:`_on_started` (which catches a run that
        ended before it was published).
        """
        if pipeline not in self._published or pipeline in self._completed:
            return
        self._completed.add(pipeline)
        self._running.discard(pipeline)
        if self._recording is not None and self._recording_pipeline is pipeline:
            path = str(self._recording.path)
            self._recording = self._recording_pipeline = None
            self.recording_stopped.emit(path)
        if generation != self._generation or pipeline is not self._pipeline:
            return
        self._pipeline = None
        self._set_playing(False)
        if summary.error is None and not summary.interrupted:
            self.finished.emit()

    # --------------------------------------------------------------------------- transport
    def play(self) -> None:
        """Resume; after the end or a stop, play the source again from the start."""
        if self._pipeline is None:
            if self._source_spec is not None:
                self.open(self._source_spec, self._settings)
            return
        self._pipeline.resume()
        self._set_playing(True)

    def pause(self) -> None:
        if self._pipeline is not None:
            self._pipeline.pause()
            self._set_playing(False)

    def stop(self) -> None:
        """End the run (the recording is finalised); Play starts the source again."""
        pipeline, self._pipeline = self._pipeline, None
        self._set_playing(False)
        if pipeline is not None:
            pipeline.stop()

    def step(self) -> None:
        """Pause if playing, then let exactly one more frame through."""
        if self._pipeline is None or self._source_info is None or self._source_info.is_live:
            return
        if self._playing:
            self.pause()
        self._pipeline.step()

    def seek(self, seconds: float) -> None:
        if self._source_info is None or self._source_info.is_live:
            return
        if self._pipeline is None and self._source_spec is not None:
            self.open(self._source_spec, self._settings, start_s=seconds)
            return
        if self._pipeline is not None:
            self._pipeline.seek(seconds)

    def _set_playing(self, playing: bool) -> None:
        if playing != self._playing:
            self._playing = playing
            self.playing_changed.emit(playing)

    # ---------------------------------------------------------------------------- settings
    def apply_settings(self, settings: AppSettings) -> None:
        """Hand the changed settings to the running pipeline; they apply at its next frame."""
        old, self._settings = self._settings, settings
        if self._pipeline is not None:
            self._apply_changes(old, settings)

    def _apply_changes(self, old: AppSettings, new: AppSettings) -> None:
        pipeline = self._pipeline
        if pipeline is None:
            return
        before, after = old.engine_settings(), new.engine_settings()
        try:
            pipeline.change_settings({k: v for k, v in after.items() if before[k] != v})
        except ValueError as error:
            self.warning.emit(user_message(error))
            return
        if new.playback != old.playback:
            pipeline.set_keep_real_time(new.playback == "real-time")
        if not self._playing and self._source_info is not None:
            if not self._source_info.is_live and new != old:
                # Paused: process the frame on screen again so the change is visible now.
                pipeline.seek(self.last_time_s)

    # --------------------------------------------------------------------------- recording
    def start_recording(self, path: str, settings: AppSettings) -> None:
        """Record from the next frame; on a stopped or ended source, replay it from the start
        and record all of it."""
        if self._recording is not None:
            return
        sink = RecordingSink(video_sink(path, settings), self._recording_failed.emit)
        pipeline = self._pipeline
        if pipeline is None:
            if self._source_spec is None:
                self.failed.emit("Nothing to record: open a video or a camera first.")
                return
            self._recording, self._recording_pipeline = sink, None
            self.open(self._source_spec, self._settings, recording=sink)
            return
        self._recording, self._recording_pipeline = sink, pipeline

        def task() -> None:
            sink.owner = pipeline
            try:
                pipeline.add_sink(sink)  # opens the file: may block on a slow disk
            except Exception as error:  # noqa: BLE001 - SinkError: folder missing, read-only
                self._recording_failed.emit(f"Cannot record: {error}.")
                return
            self.recording_started.emit(str(sink.path))

        self._control.submit(task)

    def stop_recording(self) -> None:
        sink, pipeline = self._recording, self._recording_pipeline
        self._recording = self._recording_pipeline = None
        if sink is None:
            return

        def task() -> None:
            # FIFO: a run opened with this sink has started (or failed) by now.
            owner = pipeline or sink.owner
            try:
                if owner is not None:
                    owner.remove_sink(sink)  # closes (finalises) the file
                else:
                    sink.close()
            finally:  # a close that failed is reported by the control thread
                self.recording_stopped.emit(str(sink.path))

        self._control.submit(task)

    @Slot(str)
    def _on_recording_failed(self, message: str) -> None:
        sink, pipeline = self._recording, self._recording_pipeline
        self._recording = self._recording_pipeline = None
        if sink is not None and pipeline is not None:
            self._control.submit(lambda: pipeline.remove_sink(sink))
        self.failed.emit(message)
        self.recording_stopped.emit(str(sink.path) if sink is not None else "")

    def find_cameras(self) -> None:
        """List the cameras off the GUI thread; the answer comes as ``cameras_found``."""
        self._control.submit(lambda: self.cameras_found.emit(list_cameras()))

    # ---------------------------------------------------------------------- snapshot/export
    def save_snapshot(self, image: QImage, path: str) -> None:
        """PNG encoding and the disk write happen on the control thread."""

        def task() -> None:
            try:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                self.failed.emit(f"Cannot save the snapshot in {Path(path).parent}: {error}.")
                return
            if image.save(path, "PNG"):
                self.snapshot_saved.emit(path)
            else:
                self.failed.emit(f"Cannot save the snapshot to {path} (disk full or read-only?).")

        self._control.submit(task)

    def export_keypoints(self, path: str) -> None:
        """Write the keypoints of this run (JSON if the name ends in .json, else CSV)."""
        frames = self._kept.in_order()
        info = self._source_info
        dataset_info = self._dataset_info
        if not frames or info is None:
            self.failed.emit("No keypoints yet: play a video or a camera first.")
            return

        def task() -> None:
            try:
                write_keypoints(path, frames, info, dataset_info)
            except Exception as error:  # noqa: BLE001 - SinkError / OSError
                self.failed.emit(f"Cannot export keypoints: {error}.")
                return
            self.exported.emit(path)

        self._control.submit(task)

    # ------------------------------------------------------------------------------ closing
    def shutdown(self, timeout_s: float = 1.0) -> None:
        """Stop the run, finalise the recording and join the engine threads (bounded)."""
        self._closing = True
        self._generation += 1
        self._pipeline = None
        running = list(self._running)
        for pipeline in running:
            pipeline.stop()
        deadline = time.perf_counter() + timeout_s
        for pipeline in running:
            pipeline.wait(max(0.0, deadline - time.perf_counter()))
        self._recording = self._recording_pipeline = None
        self._control.close()

    def finish_pending_io(self, timeout_s: float = 5.0) -> bool:
        """After :meth:`shutdown`: let a snapshot or export already asked for reach the disk."""
        return self._control.join(timeout_s)
