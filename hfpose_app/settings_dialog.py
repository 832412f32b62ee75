"""The settings dialog: every change applies live to the running stream; Cancel takes it back.

The dialog is modeless and emits ``settings_changed`` on each edit, so a user sees the effect
of a threshold or a backend at the next frame instead of after closing a form. The backend list
comes from the engine (``available_backends``): an option this machine cannot run is disabled
and says why, so nobody picks "GPU" and silently gets the CPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QSpinBox,
    QStackedWidget,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from hfpose.app.settings import AppSettings
from hfpose.engine.keypoint_models import DEFAULT_SHIPPED_MODEL, SHIPPED_MODEL_NOTES
from hfpose.engine.runtimes import BackendStatus

PRECISION_TITLES = {
    "fast": "Fast: bf16 where the CPU has it, or the model's checked int8 copy",
    "fp32": "Exact: fp32, as trained",
}
BACKEND_TITLES = {
    "auto": "Automatic",
    "cpu": "CPU",
    "gpu": "GPU",
    "npu": "NPU",
    "openvino": "OpenVINO",
    "torch": "Torch",
}
DETECTOR_TITLES = {
    "nanodet": "NanoDet (many people, default)",
    "blazepose": "BlazePose (one person near the camera, lightest)",
    "custom": "My own ONNX person detector (YOLOX / RTMDet / YOLOv8)",
}
SMOOTHING_TITLES = {"none": "None", "one-euro": "One-Euro filter", "kalman": "Kalman filter"}
STYLE_TITLES = {"mmpose": "mmpose colours", "openpose": "OpenPose colours"}
CONTAINER_TITLES = {"mp4": "MP4", "mkv": "Matroska (MKV)"}
CODEC_TITLES = {"h264": "H.264 (libx264)", "mpeg4": "MPEG-4 Part 2 (fallback)"}
PLAYBACK_TITLES = {
    "every-frame": "Show every frame (the video slows down)",
    "real-time": "Keep real time (skip frames, as a camera does)",
}


def _combo(titles: dict[str, str]) -> QComboBox:
    combo = QComboBox()
    for key, title in titles.items():
        combo.addItem(title, key)
    return combo


def _select(combo: QComboBox, key: str) -> None:
    index = combo.findData(key)
    if index >= 0:
        combo.setCurrentIndex(index)


def _hint(text: str) -> QLabel:
    """Grey, wrapped advice under a group of settings."""
    label = QLabel(text)
    label.setWordWrap(True)
    label.setForegroundRole(label.foregroundRole().PlaceholderText)
    return label


def _spin(low: int, high: int, suffix: str = "") -> QSpinBox:
    spin = QSpinBox()
    spin.setRange(low, high)
    spin.setSuffix(suffix)
    return spin


def _dspin(low: float, high: float, step: float, decimals: int = 3) -> QDoubleSpinBox:
    spin = QDoubleSpinBox()
    spin.setRange(low, high)
    spin.setSingleStep(step)
    spin.setDecimals(decimals)
    return spin


class PathField(QWidget):
    """A line edit with a Browse button (a file, or a folder when ``folder`` is set)."""

    changed = Signal(str)

    def __init__(self, caption: str, name_filter: str = "", folder: bool = False) -> None:
        super().__init__()
        self._caption, self._filter, self._folder = caption, name_filter, folder
        self.edit = QLineEdit()
        self.edit.setClearButtonEnabled(True)
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.edit, 1)
        layout.addWidget(browse)
        self.edit.editingFinished.connect(lambda: self.changed.emit(self.text()))

    def text(self) -> str:
        return self.edit.text().strip()

    def set_text(self, text: str) -> None:
        self.edit.setText(text)

    def _browse(self) -> None:
        start = self.text() or str(Path.home())
        if self._folder:
            chosen = QFileDialog.getExistingDirectory(self, self._caption, start)
        else:
            chosen, _ = QFileDialog.getOpenFileName(self, self._caption, start, self._filter)
        if chosen:
            self.edit.setText(chosen)
            self.changed.emit(chosen)


class SettingsDialog(QDialog):
    """Edits :class:`AppSettings`; ``settings_changed`` fires on each edit (live apply)."""

    settings_changed = Signal(object)  # AppSettings

    def __init__(
        self,
        settings: AppSettings,
        backends: Sequence[BackendStatus],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("hfpose settings")
        self.setModal(False)
        self._initial = settings
        self._loading = False
        self._backends = {b.name: b for b in backends}

        tabs = QTabWidget()
        tabs.addTab(self._inference_tab(), "Inference")
        tabs.addTab(self._smoothing_tab(), "Smoothing")
        tabs.addTab(self._drawing_tab(), "Drawing")
        tabs.addTab(self._recording_tab(), "Recording")
        self.tabs = tabs

        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok
            | QDialogButtonBox.StandardButton.Cancel
            | QDialogButtonBox.StandardButton.RestoreDefaults
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self.restore_button = buttons.button(QDialogButtonBox.StandardButton.RestoreDefaults)
        self.restore_button.clicked.connect(self.restore_defaults)

        layout = QVBoxLayout(self)
        layout.addWidget(tabs)
        layout.addWidget(buttons)
        # Wide enough that the backends' reasons wrap onto two lines, not five.
        self.setMinimumWidth(620)
        self.set_settings(settings)
        self._connect_edits()

    # ------------------------------------------------------------------------------- tabs
    def _inference_tab(self) -> QWidget:
        page = QWidget()
        layout = QVBoxLayout(page)

        backend_box = QGroupBox("Run the keypoint model on")
        grid = QGridLayout(backend_box)
        grid.setColumnStretch(1, 1)
        self.backend_group = QButtonGroup(backend_box)
        self.backend_buttons: dict[str, QRadioButton] = {}
        for name, title in BACKEND_TITLES.items():
            status = self._backends.get(name)
            if status is None:
                continue
            button = QRadioButton(title)
            button.setEnabled(status.available)
            detail = QLabel(status.maps_to if status.available else status.reason)
            detail.setWordWrap(True)
            detail.setEnabled(status.available)
            detail.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            row = grid.rowCount()
            grid.addWidget(button, row, 0, Qt.AlignmentFlag.AlignTop)
            grid.addWidget(detail, row, 1)
            self.backend_group.addButton(button)
            self.backend_buttons[name] = button
        self.running_label = QLabel("Running now: nothing (no source open)")
        self.running_label.setWordWrap(True)
        self.running_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        font = self.running_label.font()
        font.setBold(True)
        self.running_label.setFont(font)
        grid.addWidget(self.running_label, grid.rowCount(), 0, 1, 2)
        self.precision = _combo(PRECISION_TITLES)
        self.precision.setToolTip(
            "Fast variants score within 0.5 points of fp32 on the validation sets (README)"
        )
        grid.addWidget(QLabel("Precision"), grid.rowCount(), 0)
        grid.addWidget(self.precision, grid.rowCount() - 1, 1)
        layout.addWidget(backend_box)

        model_box = QGroupBox("Keypoint model")
        model_form = QFormLayout(model_box)
        self.model_group = QButtonGroup(model_box)
        self.model_buttons: dict[str, QRadioButton] = {}  # shipped models by name
        for name, (title, summary) in SHIPPED_MODEL_NOTES.items():
            button = QRadioButton(title)
            self.model_group.addButton(button)
            self.model_buttons[name] = button
            model_form.addRow(button, QLabel(summary))
        self.model_custom = QRadioButton("From disk:")
        self.model_group.addButton(self.model_custom)
        self.model_path = PathField(
            "Choose a keypoint model",
            "Models (*.onnx *.pth *.pt);;ONNX (*.onnx);;Checkpoints (*.pth *.pt)",
        )
        self.model_config = PathField(
            "Choose the model's config", "Configs (*.yaml *.yml *.py);;All files (*)"
        )
        self.model_config.edit.setPlaceholderText(
            "config for .pth checkpoints (hfpose YAML or mmpose .py)"
        )
        row = QHBoxLayout()
        row.addWidget(self.model_custom)
        row.addWidget(self.model_path, 1)
        model_form.addRow(row)
        model_form.addRow("Config", self.model_config)
        layout.addWidget(model_box)

        detect_box = QGroupBox("People")
        detect_form = QFormLayout(detect_box)
        self.detector = _combo(DETECTOR_TITLES)
        self.detector_path = PathField("Choose an ONNX person detector", "ONNX (*.onnx)")
        self.det_interval = _spin(1, 60)
        self.det_interval.setToolTip(
            "Run the detector every N frames; in between, boxes follow the keypoints (faster)"
        )
        self.max_persons = _spin(1, 100)
        self.kpt_thr = _dspin(0.0, 1.0, 0.05, 2)
        self.min_pose_score = _dspin(0.0, 1.0, 0.01, 2)
        self.min_pose_score.setToolTip(
            "Drop people whose mean keypoint score is lower: boxes on cones, rocks or signs "
            "(0 keeps every box the detector finds)"
        )
        self.playback = _combo(PLAYBACK_TITLES)
        self.playback.setToolTip("For files the computer cannot process at their frame rate")
        detect_form.addRow("Detector", self.detector)
        detect_form.addRow("Detector file", self.detector_path)
        detect_form.addRow("Detect every", self.det_interval)
        self.det_interval.setSuffix(" frame(s)")
        detect_form.addRow("Max persons", self.max_persons)
        detect_form.addRow("Keypoint threshold", self.kpt_thr)
        detect_form.addRow("Min pose score", self.min_pose_score)
        detect_form.addRow("Slow files", self.playback)
        layout.addWidget(detect_box)
        layout.addStretch(1)
        return page

    def _smoothing_tab(self) -> QWidget:
        page = QWidget()
        layout = QVBoxLayout(page)
        form = QFormLayout()
        self.smoothing = _combo(SMOOTHING_TITLES)
        form.addRow("Method", self.smoothing)
        layout.addLayout(form)

        self.smoothing_params = QStackedWidget()
        self.smoothing_params.addWidget(QLabel("Keypoints are drawn as detected."))
        one_euro = QWidget()
        one_euro_form = QFormLayout(one_euro)
        self.one_euro_min_cutoff = _dspin(0.001, 100.0, 0.1)
        self.one_euro_beta = _dspin(0.0, 10.0, 0.01, 4)
        self.one_euro_d_cutoff = _dspin(0.001, 100.0, 0.1)
        one_euro_form.addRow("Min cutoff (Hz)", self.one_euro_min_cutoff)
        one_euro_form.addRow("Beta (speed response)", self.one_euro_beta)
        one_euro_form.addRow("Derivative cutoff (Hz)", self.one_euro_d_cutoff)
        one_euro_form.addRow(
            _hint(
                "Steadier joints when still: lower the min cutoff. Less lag on fast moves: "
                "raise beta. Timing follows the video's timestamps, not frame counts."
            )
        )
        self.smoothing_params.addWidget(one_euro)
        kalman = QWidget()
        kalman_form = QFormLayout(kalman)
        self.kalman_process_noise = _dspin(1.0, 100000.0, 100.0, 0)
        self.kalman_measurement_noise = _dspin(0.1, 100.0, 0.5, 1)
        kalman_form.addRow("Process noise (px/s²)", self.kalman_process_noise)
        kalman_form.addRow("Measurement noise (px)", self.kalman_measurement_noise)
        kalman_form.addRow(
            _hint(
                "More process noise follows sudden motion; more measurement noise smooths "
                "harder. Unsure keypoints (low score) lean on the motion model."
            )
        )
        self.smoothing_params.addWidget(kalman)
        layout.addWidget(self.smoothing_params)
        layout.addStretch(1)
        return page

    def _drawing_tab(self) -> QWidget:
        page = QWidget()
        form = QFormLayout(page)
        self.draw_style = _combo(STYLE_TITLES)
        self.radius = _spin(0, 30, " px")
        self.thickness = _spin(0, 20, " px")
        for spin in (self.radius, self.thickness):
            spin.setSpecialValueText("auto (scales with the video)")
        self.show_boxes = QCheckBox("Person boxes")
        self.show_ids = QCheckBox("Track IDs")
        self.show_hud = QCheckBox("HUD (frames per second, stage times, backend)")
        form.addRow("Skeleton style", self.draw_style)
        form.addRow("Keypoint radius", self.radius)
        form.addRow("Line thickness", self.thickness)
        form.addRow(self.show_boxes)
        form.addRow(self.show_ids)
        form.addRow(self.show_hud)
        return page

    def _recording_tab(self) -> QWidget:
        page = QWidget()
        form = QFormLayout(page)
        self.record_dir = PathField("Folder for recordings", folder=True)
        self.container = _combo(CONTAINER_TITLES)
        self.codec = _combo(CODEC_TITLES)
        self.keep_audio = QCheckBox("Copy the source's audio into recordings")
        form.addRow("Folder", self.record_dir)
        form.addRow("Container", self.container)
        form.addRow("Codec", self.codec)
        form.addRow(self.keep_audio)
        form.addRow(
            _hint(
                "Recordings stay playable up to the last second written, even if the app is "
                "killed mid-recording."
            )
        )
        return page

    # ----------------------------------------------------------------------- values in/out
    def set_settings(self, s: AppSettings) -> None:
        """Show ``s`` in the widgets without emitting a change per widget."""
        self._loading = True
        try:
            button = self.backend_buttons.get(s.backend)
            if button is None or not button.isEnabled():
                button = self.backend_buttons.get("cpu")  # the stored choice cannot run here
            if button is not None:
                button.setChecked(True)
            shipped = self.model_buttons.get(s.model_path or DEFAULT_SHIPPED_MODEL)
            (shipped or self.model_custom).setChecked(True)
            self.model_path.set_text("" if shipped else s.model_path)
            self.model_config.set_text(s.model_config)
            _select(self.precision, s.precision)
            _select(self.detector, s.detector)
            self.detector_path.set_text(s.detector_path)
            self.det_interval.setValue(s.det_interval)
            self.max_persons.setValue(s.max_persons)
            self.kpt_thr.setValue(s.kpt_thr)
            self.min_pose_score.setValue(s.min_pose_score)
            _select(self.playback, s.playback)
            _select(self.smoothing, s.smoothing)
            self.one_euro_min_cutoff.setValue(s.one_euro_min_cutoff)
            self.one_euro_beta.setValue(s.one_euro_beta)
            self.one_euro_d_cutoff.setValue(s.one_euro_d_cutoff)
            self.kalman_process_noise.setValue(s.kalman_process_noise)
            self.kalman_measurement_noise.setValue(s.kalman_measurement_noise)
            _select(self.draw_style, s.draw_style)
            self.radius.setValue(s.radius)
            self.thickness.setValue(s.thickness)
            self.show_boxes.setChecked(s.show_boxes)
            self.show_ids.setChecked(s.show_ids)
            self.show_hud.setChecked(s.show_hud)
            self.record_dir.set_text(s.record_dir)
            _select(self.container, s.container)
            _select(self.codec, s.codec)
            self.keep_audio.setChecked(s.keep_audio)
        finally:
            self._loading = False
        self._update_enabled()

    def settings(self) -> AppSettings:
        return AppSettings(
            backend=self._checked_backend(),
            precision=self.precision.currentData(),
            model_path=self._chosen_model(),
            model_config=self.model_config.text() if self.model_custom.isChecked() else "",
            detector=self.detector.currentData(),
            detector_path=self.detector_path.text(),
            det_interval=self.det_interval.value(),
            max_persons=self.max_persons.value(),
            kpt_thr=round(self.kpt_thr.value(), 2),
            min_pose_score=round(self.min_pose_score.value(), 2),
            playback=self.playback.currentData(),
            smoothing=self.smoothing.currentData(),
            one_euro_min_cutoff=self.one_euro_min_cutoff.value(),
            one_euro_beta=self.one_euro_beta.value(),
            one_euro_d_cutoff=self.one_euro_d_cutoff.value(),
            kalman_process_noise=self.kalman_process_noise.value(),
            kalman_measurement_noise=self.kalman_measurement_noise.value(),
            draw_style=self.draw_style.currentData(),
            radius=self.radius.value(),
            thickness=self.thickness.value(),
            show_boxes=self.show_boxes.isChecked(),
            show_ids=self.show_ids.isChecked(),
            show_hud=self.show_hud.isChecked(),
            record_dir=self.record_dir.text() or self._initial.record_dir,
            container=self.container.currentData(),
            codec=self.codec.currentData(),
            keep_audio=self.keep_audio.isChecked(),
        )

    def _checked_backend(self) -> str:
        for name, button in self.backend_buttons.items():
            if button.isChecked():
                return name
        return self._initial.backend

    def set_running(self, label: str) -> None:
        """What the engine really runs (it may differ from the choice after a fallback)."""
        self.running_label.setText(f"Running now: {label}")

    # ------------------------------------------------------------------------------ actions
    def restore_defaults(self) -> None:
        defaults = AppSettings()
        if not self._backends.get(defaults.backend, BackendStatus("", True, "")).available:
            defaults = defaults.replace(backend="cpu")
        self.set_settings(defaults)
        self._emit()

    def reject(self) -> None:
        """Cancel undoes the live changes made since the dialog opened."""
        if self.settings() != self._initial:
            self.set_settings(self._initial)
            self.settings_changed.emit(self._initial)
        super().reject()

    def _connect_edits(self) -> None:
        self.backend_group.buttonToggled.connect(lambda _button, checked: checked and self._emit())
        for combo in (
            self.precision,
            self.detector,
            self.playback,
            self.smoothing,
            self.draw_style,
            self.container,
            self.codec,
        ):
            combo.currentIndexChanged.connect(self._emit)
        for spin in (
            self.det_interval,
            self.max_persons,
            self.kpt_thr,
            self.min_pose_score,
            self.one_euro_min_cutoff,
            self.one_euro_beta,
            self.one_euro_d_cutoff,
            self.kalman_process_noise,
            self.kalman_measurement_noise,
            self.radius,
            self.thickness,
        ):
            spin.valueChanged.connect(self._emit)
        for box in (self.show_boxes, self.show_ids, self.show_hud, self.keep_audio):
            box.toggled.connect(self._emit)
        self.model_group.buttonToggled.connect(lambda _button, on: on and self._emit())
        for path in (self.model_path, self.model_config, self.detector_path, self.record_dir):
            path.changed.connect(self._emit)

    def _chosen_model(self) -> str:
        """AppSettings.model_path: a file, a shipped model's name, or "" for the default."""
        if self.model_custom.isChecked():
            return self.model_path.text()
        name = next(n for n, b in self.model_buttons.items() if b.isChecked())
        return "" if name == DEFAULT_SHIPPED_MODEL else name

    def _update_enabled(self) -> None:
        custom_model = self.model_custom.isChecked()
        self.model_path.setEnabled(custom_model)
        self.model_config.setEnabled(custom_model)
        self.detector_path.setEnabled(self.detector.currentData() == "custom")
        self.smoothing_params.setCurrentIndex(max(0, self.smoothing.currentIndex()))

    def _emit(self) -> None:
        if self._loading:
            return
        self._update_enabled()
        self.settings_changed.emit(self.settings())
