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
from PySide6.QtGui import QFont, QResizeEvent
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
from hfpose.engine.angles import ANGLES
from hfpose.engine.backend_discovery import BackendStatus
from hfpose.engine.config import SETTINGS
from hfpose.engine.keypoint_models import DEFAULT_SHIPPED_MODEL, SHIPPED_MODEL_NOTES

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
    "litert": "LiteRT (XNNPACK)",
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


# The dialog's words for the engine's choices; the choices themselves are the engine's.
CHOICE_TITLES = {
    "precision": PRECISION_TITLES,
    "smoothing": SMOOTHING_TITLES,
    "draw_style": STYLE_TITLES,
    "reps_angle": {a.name: a.name.replace("_", " ") for a in ANGLES},
}
CHECKBOX_TITLES = {
    "joint_angles": "Work out joint and segment angles (exports, angle plot)",
    "show_angles": "Joint angles beside the joints",
    "show_boxes": "Person boxes",
    "show_ids": "Track IDs",
    "show_hud": "HUD (frames per second, stage times, backend)",
}


def setting_widget(name: str) -> QWidget:
    """The editor of a declared engine setting: range, step, tooltip and the word for 0
    ("no limit", "auto") come from its declaration."""
    spec = SETTINGS[name]
    if spec.type is bool:
        box = QCheckBox(CHECKBOX_TITLES[name])
        box.setToolTip(spec.help)
        return box
    if spec.choices:
        combo = _combo(CHOICE_TITLES[name])
        combo.setToolTip(spec.help)
        return combo
    low, high = spec.dialog_range
    if spec.type is int:
        spin: QSpinBox | QDoubleSpinBox = QSpinBox()
        spin.setRange(int(low), int(high))
        spin.setSingleStep(int(spec.step))
    else:
        spin = QDoubleSpinBox()
        spin.setDecimals(spec.decimals)
        spin.setRange(low, high)
        spin.setSingleStep(spec.step)
    if spec.zero_means and low == 0:
        spin.setSpecialValueText(spec.zero_means)
    spin.setToolTip(spec.help[:1].upper() + spec.help[1:])
    return spin


def _show(widget: QWidget, value: object) -> None:
    if isinstance(widget, QCheckBox):
        widget.setChecked(bool(value))
    elif isinstance(widget, QComboBox):
        _select(widget, str(value))
    else:
        widget.setValue(value)  # type: ignore[attr-defined]


def _read(widget: QWidget) -> object:
    if isinstance(widget, QCheckBox):
        return widget.isChecked()
    if isinstance(widget, QComboBox):
        return widget.currentData()
    if isinstance(widget, QDoubleSpinBox):
        return round(widget.value(), widget.decimals())
    return widget.value()  # type: ignore[attr-defined]


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


class WrappedLabel(QLabel):
    """Selectable text that wraps, and keeps the height of all its lines at any width the
    dialog allows.

    Qt lays the dialog out from its widgets' size hints and never asks a wrapped label how tall
    it gets at the width it is given (a tab page does not pass height-for-width on): the second
    and third lines of the backends' reasons were cut. So the label says how narrow it may
    get (about 55 characters), and asks for the height its text needs at that width, then at
    each width it is given.
    """

    MIN_CHARS = 55

    def __init__(self, text: str = "") -> None:
        super().__init__()
        self.setWordWrap(True)
        self.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.setText(text)

    def setText(self, text: str) -> None:  # noqa: N802 (Qt's name)
        super().setText(text)
        self._reserve_lines()

    def setFont(self, font: QFont) -> None:  # noqa: N802 (Qt's name)
        super().setFont(font)
        self._reserve_lines()

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 (Qt's name)
        super().resizeEvent(event)
        self.setMinimumHeight(self.heightForWidth(self.width()))

    def _reserve_lines(self) -> None:
        width = self.fontMetrics().averageCharWidth() * self.MIN_CHARS
        self.setMinimumWidth(width)
        self.setMinimumHeight(self.heightForWidth(max(width, self.width())))


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
        self.fields: dict[str, QWidget] = {}  # the engine's declared settings, by name

        tabs = QTabWidget()
        tabs.addTab(self._inference_tab(), "Inference")
        tabs.addTab(self._smoothing_tab(), "Smoothing")
        tabs.addTab(self._drawing_tab(), "Drawing")
        tabs.addTab(self._angles_tab(), "Angles")
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
        self.set_settings(settings)
        self._connect_edits()

    def _field(self, name: str) -> QWidget:
        """A declared setting's editor, kept as ``self.<name>`` and in ``self.fields``."""
        widget = setting_widget(name)
        self.fields[name] = widget
        setattr(self, name, widget)
        return widget

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
            detail = WrappedLabel(status.maps_to if status.available else status.reason)
            detail.setEnabled(status.available)
            row = grid.rowCount()
            grid.addWidget(button, row, 0, Qt.AlignmentFlag.AlignTop)
            grid.addWidget(detail, row, 1)
            self.backend_group.addButton(button)
            self.backend_buttons[name] = button
        self.running_label = WrappedLabel("Running now: nothing (no source open)")
        font = self.running_label.font()
        font.setBold(True)
        self.running_label.setFont(font)
        grid.addWidget(self.running_label, grid.rowCount(), 0, 1, 2)
        self._field("precision").setToolTip(
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
        for name in ("det_interval_s", "max_persons", "kpt_thr", "min_pose_score"):
            self._field(name)
        self.playback = _combo(PLAYBACK_TITLES)
        self.playback.setToolTip("For files the computer cannot process at their frame rate")
        detect_form.addRow("Detector", self.detector)
        detect_form.addRow("Detector file", self.detector_path)
        detect_form.addRow("Detect at least every", self.det_interval_s)
        self.det_interval_s.setSuffix(" s")
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
        self._field("smoothing")
        form.addRow("Method", self.smoothing)
        layout.addLayout(form)

        self.smoothing_params = QStackedWidget()
        self.smoothing_params.addWidget(QLabel("Keypoints are drawn as detected."))
        one_euro = QWidget()
        one_euro_form = QFormLayout(one_euro)
        for name in ("one_euro_min_cutoff", "one_euro_beta", "one_euro_d_cutoff"):
            self._field(name)
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
        for name in ("kalman_process_noise", "kalman_measurement_noise"):
            self._field(name)
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
        for name in ("draw_style", "radius", "thickness", "show_boxes", "show_ids", "show_hud"):
            self._field(name)
        for spin in (self.radius, self.thickness):
            spin.setSuffix(" px")
        form.addRow("Skeleton style", self.draw_style)
        form.addRow("Keypoint radius", self.radius)
        form.addRow("Line thickness", self.thickness)
        form.addRow(self.show_boxes)
        form.addRow(self.show_ids)
        form.addRow(self.show_hud)
        return page

    def _angles_tab(self) -> QWidget:
        page = QWidget()
        form = QFormLayout(page)
        for name in ("joint_angles", "show_angles", "reps_angle", "reps_low", "reps_high"):
            self._field(name)
        for spin in (self.reps_low, self.reps_high):
            spin.setSuffix("°")
        form.addRow(self.joint_angles)
        form.addRow(self.show_angles)
        form.addRow("Count repetitions of", self.reps_angle)
        form.addRow("Rest at or under", self.reps_low)
        form.addRow("Reaching at least", self.reps_high)
        form.addRow(_hint("View > Angle plot shows the angles and repetitions live."))
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
            shipped = self.model_buttons.get(s.model or DEFAULT_SHIPPED_MODEL)
            (shipped or self.model_custom).setChecked(True)
            self.model_path.set_text("" if shipped else s.model)
            self.model_config.set_text(s.model_config or "")
            for name, widget in self.fields.items():
                _show(widget, getattr(s, name))
            _select(self.detector, s.detector)
            self.detector_path.set_text(s.detector_path)
            _select(self.playback, s.playback)
            self.record_dir.set_text(s.record_dir)
            _select(self.container, s.container)
            _select(self.codec, s.codec)
            self.keep_audio.setChecked(s.keep_audio)
        finally:
            self._loading = False
        self._update_enabled()

    def settings(self) -> AppSettings:
        config = self.model_config.text() if self.model_custom.isChecked() else ""
        return AppSettings(
            **{name: _read(widget) for name, widget in self.fields.items()},
            backend=self._checked_backend(),
            model=self._chosen_model(),
            model_config=config or None,
            detector=self.detector.currentData(),
            detector_path=self.detector_path.text(),
            playback=self.playback.currentData(),
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
        for widget in self.fields.values():
            if isinstance(widget, QCheckBox):
                widget.toggled.connect(self._emit)
            elif isinstance(widget, QComboBox):
                widget.currentIndexChanged.connect(self._emit)
            else:
                widget.valueChanged.connect(self._emit)  # type: ignore[attr-defined]
        for combo in (self.detector, self.playback, self.container, self.codec):
            combo.currentIndexChanged.connect(self._emit)
        self.keep_audio.toggled.connect(self._emit)
        self.model_group.buttonToggled.connect(lambda _button, on: on and self._emit())
        for path in (self.model_path, self.model_config, self.detector_path, self.record_dir):
            path.changed.connect(self._emit)

    def _chosen_model(self) -> str | None:
        """AppSettings.model: a file, a shipped model's name, or None for the default."""
        if self.model_custom.isChecked():
            return self.model_path.text() or None
        name = next(n for n, b in self.model_buttons.items() if b.isChecked())
        return None if name == DEFAULT_SHIPPED_MODEL else name

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
