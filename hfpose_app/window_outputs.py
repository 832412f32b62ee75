"""What the window saves: recordings (into the recordings folder, or to a chosen file), snapshots
of the frame on screen, keypoint exports, and the banner that says where each went.

:class:`WindowOutputs` stands between :class:`~hfpose.app.window_chrome.WindowChrome`, whose
actions call these slots, and :class:`~hfpose.app.main_window.MainWindow`, which holds the state
they read (declared below). As there, the work is the worker's: each result comes back by signal.
"""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import QUrl, Slot
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QFileDialog

from hfpose.app.keypoint_export import ANGLES_SUFFIX
from hfpose.app.settings import AppSettings
from hfpose.app.source_names import source_stem
from hfpose.app.video_view import VideoView
from hfpose.app.widgets import MessageBanner, RecordIndicator
from hfpose.app.window_chrome import WindowChrome
from hfpose.app.worker import FrameUpdate, PipelineWorker
from hfpose.engine.sources.frame_source import SourceInfo

# JSON carries keypoints and angles; the CSVs are one row per keypoint, or per person (angles).
EXPORT_FILTER = "JSON (*.json);;CSV (*.csv);;Angles CSV (*_angles.csv)"


class WindowOutputs(WindowChrome):
    """The window's recording, snapshot and export slots, and the replies to them."""

    # set by MainWindow
    worker: PipelineWorker
    settings: AppSettings
    source_info: SourceInfo | None
    last_update: FrameUpdate | None
    view: VideoView
    banner: MessageBanner
    record_indicator: RecordIndicator

    @Slot()
    def toggle_record(self) -> None:
        if self.worker.recording_path:
            self.worker.stop_recording()
            return
        self.record_action.setChecked(False)  # checked again once the sink really runs
        if self.source_info is None:
            self.banner.show_message("Open a video or a camera first, then press R to record.")
            return
        folder = Path(self.settings.record_dir)
        stem = source_stem(self.source_info)
        name = f"hfpose_{stem}_{time.strftime('%Y%m%d_%H%M%S')}.{self.settings.container}"
        self._start_recording(str(folder / name))

    @Slot()
    def record_to_dialog(self) -> None:
        if self.source_info is None:
            self.banner.show_message("Open a video or a camera first, then choose where to record.")
            return
        name = f"hfpose_{source_stem(self.source_info)}.{self.settings.container}"
        suggested = str(Path(self.settings.record_dir) / name)
        path, chosen = QFileDialog.getSaveFileName(
            self, "Record to", suggested, "MP4 (*.mp4);;Matroska (*.mkv)"
        )
        if path:
            if Path(path).suffix.lower() not in (".mp4", ".mkv"):
                path += ".mkv" if "mkv" in chosen else ".mp4"
            self._start_recording(path)

    def _start_recording(self, path: str) -> None:
        self.worker.start_recording(path, self.settings)  # the result comes back by signal

    @Slot()
    def snapshot(self) -> None:
        """Save the annotated frame on screen as PNG in the recordings folder."""
        image = self.view.image()
        if image is None:
            self.banner.show_message("Nothing to snapshot yet: open a video or a camera.")
            return
        stem = source_stem(self.source_info) if self.source_info else "frame"
        index = self.last_update.frame_index if self.last_update else 0
        name = f"hfpose_{stem}_{time.strftime('%Y%m%d_%H%M%S')}_f{index:06d}.png"
        self.worker.save_snapshot(image, str(Path(self.settings.record_dir) / name))

    @Slot()
    def export_keypoints_dialog(self) -> None:
        if not self.worker.has_keypoints():
            self.banner.show_message("No keypoints yet: play a video or a camera first.")
            return
        stem = source_stem(self.source_info) if self.source_info else "keypoints"
        suggested = str(Path(self.settings.record_dir) / f"hfpose_{stem}_keypoints.json")
        path, chosen = QFileDialog.getSaveFileName(
            self, "Export keypoints", suggested, EXPORT_FILTER
        )
        if path:
            if chosen.startswith("Angles") and not path.lower().endswith(ANGLES_SUFFIX):
                path = str(Path(path).with_suffix("")) + ANGLES_SUFFIX
            elif not Path(path).suffix:
                path += ".csv" if "CSV" in chosen else ".json"
            self.export_keypoints(path)

    def export_keypoints(self, path: str) -> None:
        self.worker.export_keypoints(path)

    def open_recordings_folder(self) -> None:
        folder = Path(self.settings.record_dir)
        folder.mkdir(parents=True, exist_ok=True)
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))

    # ----------------------------------------------------------------- the worker's replies
    @Slot(str)
    def _on_snapshot_saved(self, path: str) -> None:
        self._say_saved("Snapshot", path)

    @Slot(str)
    def _on_recording_started(self, path: str) -> None:
        self.record_action.setChecked(True)
        self.record_indicator.start()
        self.record_indicator.setToolTip(path)

    @Slot(str)
    def _on_recording_stopped(self, path: str) -> None:
        self.record_action.setChecked(False)
        self.record_indicator.stop()
        if path:
            self._say_saved("Recording", path)

    def _say_saved(self, what: str, path: str) -> None:
        """The whole path (the status bar's fields cut a long one) and a way to its folder."""
        folder = QUrl.fromLocalFile(str(Path(path).parent))
        self.banner.show_message(
            f"{what} saved: {path}",
            "info",
            ("Open folder", lambda: QDesktopServices.openUrl(folder)),
        )
