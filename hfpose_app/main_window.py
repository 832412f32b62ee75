"""The main window: sources, transport, settings, full screen and the status bar.

It only wires widgets to :class:`hfpose.app.worker.PipelineWorker`; every frame, statistic and
error arrives by signal, and no method here waits on inference, decoding or disk.
"""

from __future__ import annotations

import importlib.metadata
import time
from pathlib import Path

from PySide6.QtCore import Qt, Slot
from PySide6.QtGui import (
    QCloseEvent,
    QDragEnterEvent,
    QDropEvent,
)
from PySide6.QtWidgets import (
    QFileDialog,
    QInputDialog,
    QLineEdit,
    QMessageBox,
)

from hfpose.app.settings import AppSettings, SettingsStore
from hfpose.app.settings_dialog import SettingsDialog
from hfpose.app.source_names import describe_source, source_title
from hfpose.app.video_view import PLACEHOLDER, VideoView
from hfpose.app.widgets import (
    MessageBanner,
    RecordIndicator,
    format_time,
)
from hfpose.app.window_outputs import WindowOutputs
from hfpose.app.worker import FrameUpdate, PipelineWorker
from hfpose.engine.runtime.discovery import available_backends
from hfpose.engine.sources.frame_source import SourceInfo
from hfpose.engine.sources.opening import CameraInfo

VIDEO_FILTER = (
    "Videos (*.mp4 *.mkv *.avi *.mov *.webm *.m4v *.mpg *.mpeg *.wmv *.flv *.ts);;All files (*)"
)
SEEK_STEPS_PER_SECOND = 10  # the slider's resolution: a tenth of a second


class MainWindow(WindowOutputs):
    """The app's window: what each action, worker signal and widget event does."""

    def __init__(self, store: SettingsStore | None = None) -> None:
        super().__init__()
        self.setWindowTitle("hfpose")
        self.setAcceptDrops(True)
        self.store = store or SettingsStore()
        self.settings: AppSettings = self.store.load()
        self.source_info: SourceInfo | None = None
        self.settings_dialog: SettingsDialog | None = None
        self.last_update: FrameUpdate | None = None
        self.frames_shown = 0
        self._camera_names: dict[str, str] = {}  # webcam:N -> the name the OS gives it
        self._cameras: list[CameraInfo] | None = None  # None: not looked for yet
        self._playing = False

        self.worker = PipelineWorker(self)
        self.view = VideoView()
        self.view.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.view.double_clicked.connect(self.toggle_full_screen)
        self.banner = MessageBanner()
        self.record_indicator = RecordIndicator()

        self._build_actions()
        self._build_menus()
        self._build_toolbar()
        self._build_central()
        self._build_status_bar()
        self._build_angle_dock()
        self._connect_worker()
        self._update_controls()
        self._show_playback()

        geometry, state = self.store.window_state()
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1100, 740)
        if state is not None:
            self.restoreState(state)

    @Slot(object)
    def _angle_dock_edited(self, settings: AppSettings) -> None:
        self.apply_settings(settings)
        if self.settings_dialog is not None:
            self.settings_dialog.set_settings(self.settings)

    def _connect_worker(self) -> None:
        w = self.worker
        w.frame_ready.connect(self._on_frame)
        w.opened.connect(self._on_opened)
        w.playing_changed.connect(self._on_playing_changed)
        w.finished.connect(self._on_finished)
        w.failed.connect(self._on_failed)
        w.warning.connect(lambda text: self.banner.show_message(text, "warning"))
        w.runtime_changed.connect(self._on_runtime_changed)
        w.recording_started.connect(self._on_recording_started)
        w.recording_stopped.connect(self._on_recording_stopped)
        w.snapshot_saved.connect(self._on_snapshot_saved)
        w.cameras_found.connect(self._on_cameras_found)
        w.exported.connect(lambda path: self._say_saved("Keypoints", path))

    # ------------------------------------------------------------------------------ sources
    @Slot()
    def open_file_dialog(self) -> None:
        recent = self.store.recent_files()
        start = str(Path(recent[0]).parent) if recent else str(Path.home())
        path, _ = QFileDialog.getOpenFileName(self, "Open a video", start, VIDEO_FILTER)
        if path:
            self.open_source(path)

    @Slot()
    def open_stream_dialog(self) -> None:
        last_url = next((p for p in self.store.recent_files() if "://" in p), "")
        url, ok = QInputDialog.getText(
            self,
            "Open a stream",
            "RTSP or HTTP address (rtsp://…, http://…):",
            QLineEdit.EchoMode.Normal,
            last_url,
        )
        if ok and url.strip():
            self.open_source(url.strip())

    def open_source(self, source: str) -> None:
        """Open a file path, ``webcam:N`` or a URL; the result comes back by signal."""
        self.banner.hide()
        if self.worker.recording_path:
            self.worker.stop_recording()
        if "://" in source:
            self.store.add_recent_file(source)
        elif not source.startswith("webcam:"):
            if not Path(source).exists():  # a video file or a folder of images
                self.banner.show_message(f"Cannot open {source}: the file does not exist.")
                return
            self.store.add_recent_file(str(Path(source).resolve()))
        self.source_label.setText(f"Opening {self._title(source)}…")
        self.view.clear("Opening…")
        self.last_update = None
        self.worker.open(source, self.settings)

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        files = self.store.recent_files()
        for path in files:
            action = self.recent_menu.addAction(source_title(path))
            action.setToolTip(path)
            action.triggered.connect(lambda _checked=False, p=path: self.open_source(p))
        if not files:
            self.recent_menu.addAction("No recent files").setEnabled(False)
            return
        self.recent_menu.addSeparator()
        self.recent_menu.addAction("Clear the list", self.store.clear_recent_files)

    def _camera_menu_shown(self) -> None:
        """Show the cameras found last time at once; look again in the background (probing
        cameras can take seconds on some systems) and update the open menu."""
        self._fill_camera_menu()
        self.worker.find_cameras()

    @Slot(object)
    def _on_cameras_found(self, cameras: list[CameraInfo]) -> None:
        self._cameras = cameras
        self._fill_camera_menu()

    def _fill_camera_menu(self) -> None:
        self.camera_menu.clear()
        if self._cameras is None:
            self.camera_menu.addAction("Looking for cameras…").setEnabled(False)
            return
        cameras = self._cameras
        for camera in cameras:
            self._camera_names[camera.spec] = camera.name
            action = self.camera_menu.addAction(f"{camera.name}  ({camera.device})")
            action.triggered.connect(lambda _checked=False, s=camera.spec: self.open_source(s))
        if not cameras:
            self.camera_menu.addAction("No camera found").setEnabled(False)

    # -------------------------------------------------------------------------- drag & drop
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 (Qt override)
        urls = event.mimeData().urls()
        if urls and (urls[0].isLocalFile() or urls[0].scheme() in ("rtsp", "http", "https")):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 (Qt override)
        url = event.mimeData().urls()[0]
        self.open_source(url.toLocalFile() if url.isLocalFile() else url.toString())
        event.acceptProposedAction()

    # ----------------------------------------------------------------------------- transport
    @Slot()
    def toggle_play(self) -> None:
        if self.source_info is None:
            if recent := self.store.recent_files():
                self.open_source(recent[0])
            else:
                self.open_file_dialog()
            return
        if self._playing:
            self.worker.pause()
        else:
            self.worker.play()

    @Slot()
    def stop(self) -> None:
        self.worker.stop()

    @Slot()
    def step(self) -> None:
        if self.source_info is not None and not self.source_info.is_live:
            self.worker.step()

    def _slider_moved(self, value: int) -> None:
        self._show_time(value / SEEK_STEPS_PER_SECOND)

    def _seek_to_slider(self, value: int) -> None:
        self.worker.seek(value / SEEK_STEPS_PER_SECOND)
        self._show_time(value / SEEK_STEPS_PER_SECOND)

    def _show_time(self, position_s: float) -> None:
        duration = self.source_info.duration if self.source_info else None
        if duration:
            self.time_label.setText(f"{format_time(position_s)} / {format_time(duration)}")
        else:
            self.time_label.setText(format_time(position_s))

    # -------------------------------------------------------------------------- settings
    @Slot()
    def show_settings(self) -> None:
        if self.settings_dialog is None:
            dialog = SettingsDialog(self.settings, available_backends(), self)
            dialog.settings_changed.connect(self.apply_settings)
            dialog.finished.connect(self._settings_closed)
            if self.last_update is not None:
                dialog.set_running(self.last_update.runtime_label)
            self.settings_dialog = dialog
        self.settings_dialog.show()
        self.settings_dialog.raise_()
        self.settings_dialog.activateWindow()

    def _settings_closed(self) -> None:
        self.store.save(self.settings)
        if self.settings_dialog is not None:
            self.settings_dialog.deleteLater()
        self.settings_dialog = None

    @Slot(object)
    def apply_settings(self, settings: AppSettings) -> None:
        """Live: the worker hands the change to the running pipeline for its next frame."""
        self.settings = settings
        self.store.save(settings)
        self.worker.apply_settings(settings)
        self.angle_dock.set_settings(settings)
        self._show_playback()

    def set_playback(self, mode: str) -> None:
        """Play files slower to process than their rate "every-frame" or in "real-time"."""
        if mode != self.settings.playback:
            self.apply_settings(self.settings.replace(playback=mode))
            if self.settings_dialog is not None:
                self.settings_dialog.set_settings(self.settings)

    def _show_playback(self) -> None:
        """The View menu's check mark and the status bar say which playback mode is on."""
        real_time = self.settings.playback == "real-time"
        (self.real_time_action if real_time else self.every_frame_action).setChecked(True)
        self.playback_label.setText("real time" if real_time else "every frame")
        self.playback_label.setToolTip(
            "Files slower to process than their frame rate keep their clock and skip frames "
            "(View menu)"
            if real_time
            else "Files slower to process than their frame rate play slower, showing every "
            "frame (View menu)"
        )
        live = self.source_info is not None and self.source_info.is_live
        self.playback_label.setVisible(not live)

    @Slot()
    def show_about(self) -> None:
        try:
            version = importlib.metadata.version("hfpose")
        except importlib.metadata.PackageNotFoundError:
            version = "(source checkout)"
        running = self.last_update.runtime_label if self.last_update else "nothing yet"
        QMessageBox.about(
            self,
            "About hfpose",
            f"<b>hfpose</b> {version}<br>Real-time human pose estimation with HF-HRNet "
            "(Zhang et al., IEEE TCSVT 2024).<br><br>"
            f"Keypoint model running on: {running}<br>"
            "Keys: Space play/pause · Right step · R record · S snapshot · F full screen",
        )

    # ------------------------------------------------------------------------ full screen
    @Slot()
    def toggle_full_screen(self) -> None:
        if self.isFullScreen():
            self.leave_full_screen()
        else:
            for widget in (self.menuBar(), self.toolbar, self.statusBar(), self.transport):
                widget.hide()
            self.showFullScreen()
            self.full_screen_action.setChecked(True)

    @Slot()
    def leave_full_screen(self) -> None:
        if not self.isFullScreen():
            return
        self.showNormal()
        for widget in (self.menuBar(), self.toolbar, self.statusBar(), self.transport):
            widget.show()
        self.full_screen_action.setChecked(False)

    # ------------------------------------------------------------------------ worker events
    @Slot()
    def _on_frame(self) -> None:
        update = self.worker.take_frame()
        self.angle_dock.feed(self.worker.take_people())
        if update is None:
            return
        self.last_update = update
        self.frames_shown += 1
        self.view.set_image(update.image)
        fps_text = f"{update.fps:.1f} fps"
        if update.dropped_frames:  # live: frames the backend had no time for, never queued
            fps_text += f" · {update.dropped_frames} skipped"
        self.fps_label.setText(fps_text)
        # End to end: the engine's source-to-output time plus the wait for this paint.
        shown_ms = update.latency_ms + 1000.0 * (time.perf_counter() - update.arrived)
        self.latency_label.setText(f"latency {shown_ms:.0f} ms")
        people = update.people
        self.people_label.setText(f"{people} {'person' if people == 1 else 'people'}")
        self.backend_label.setText(update.runtime_label)
        if self.source_info is not None and not self.source_info.is_live:
            if not self.seek_slider.isSliderDown():
                self.seek_slider.setValue(round(update.time_s * SEEK_STEPS_PER_SECOND))
                self._show_time(update.time_s)

    @Slot(object)
    def _on_opened(self, info: SourceInfo) -> None:
        self.source_info = info
        self.angle_dock.clear()
        self.source_label.setText(describe_source(info, self._title(info.uri)))
        self.setWindowTitle(f"{self._title(info.uri)} — hfpose")
        duration = info.duration or 0.0
        self.seek_slider.setRange(0, round(duration * SEEK_STEPS_PER_SECOND))
        self.seek_slider.setValue(0)
        self._show_time(0.0)
        self._update_controls()
        self._show_playback()

    def _title(self, uri: str) -> str:
        return self._camera_names.get(uri) or source_title(uri)

    @Slot(bool)
    def _on_playing_changed(self, playing: bool) -> None:
        self._playing = playing
        self._update_controls()

    @Slot()
    def _on_finished(self) -> None:
        self.statusBar().showMessage("End of the video", 5000)

    @Slot(str)
    def _on_failed(self, message: str) -> None:
        self.banner.show_message(message, "error")
        if self.view.image() is None:  # nothing opened: back to the invitation
            self.view.clear(PLACEHOLDER)
            self.source_label.setText("No source")
        self._update_controls()

    @Slot(str)
    def _on_runtime_changed(self, label: str) -> None:
        self.backend_label.setText(label)
        if self.settings_dialog is not None:
            self.settings_dialog.set_running(label)

    def _update_controls(self) -> None:
        has_source = self.source_info is not None
        seekable = has_source and not self.source_info.is_live
        if self._playing:
            self.play_action.setText("&Pause")
            self.play_action.setIcon(self._pause_icon)
        else:
            self.play_action.setText("&Play")
            self.play_action.setIcon(self._play_icon)
        self.stop_action.setEnabled(has_source)
        self.step_action.setEnabled(seekable)
        # a file over HTTP plays as a file but cannot jump (servers need not take ranges)
        self.seek_slider.setEnabled(seekable and self.source_info.seekable)
        self.time_label.setVisible(has_source)

    # ------------------------------------------------------------------------------ closing
    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt override)
        """Finalise any recording and join every thread (bounded to a second) before closing."""
        if self.settings_dialog is not None:
            self.settings_dialog.accept()  # keep what the user saw applied (close would undo it)
        self.store.save(self.settings)
        self.store.save_window_state(self.saveGeometry(), self.saveState())
        self.worker.shutdown(timeout_s=1.0)
        super().closeEvent(event)
