"""The settings dialog: every change applies live to the running stream; Cancel takes it back.

The dialog is modeless and emits ``settings_changed`` on each edit, so a user sees the effect
of a threshold or a backend at the next frame instead of after closing a form. The backend list
comes from the engine (``available_backends``): an option this machine cannot run is disabled
and says why, so nobody picks "GPU" and silently gets the CPU.
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QRadioButton,
    QStackedWidget,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from hfpose.app.setting_fields import (
    BACKEND_TITLES,
    CODEC_TITLES,
    CONTAINER_TITLES,
    DETECTOR_TITLES,
    PLAYBACK_TITLES,
    PathField,
    WrappedLabel,
    combo_box,
    hint_label,
    read_value,
    select_data,
    setting_widget,
    show_value,
)
from hfpose.app.settings import AppSettings
from hfpose.engine.keypoints.families import DEFAULT_SHIPPED_MODEL, SHIPPED_MODEL_NOTES
from hfpose.engine.runtime.discovery import BackendStatus


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
        self.detector = combo_box(DETECTOR_TITLES)
        self.detector_path = PathField("Choose an ONNX person detector", "ONNX (*.onnx)")
        for name in ("det_interval_s", "max_persons", "kpt_thr", "min_pose_score"):
            self._field(name)
        self.playback = combo_box(PLAYBACK_TITLES)
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
            hint_label(
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
            hint_label(
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
        form.addRow(hint_label("View > Angle plot shows the angles and repetitions live."))
        return page

    def _recording_tab(self) -> QWidget:
        page = QWidget()
        form = QFormLayout(page)
        self.record_dir = PathField("Folder for recordings", folder=True)
        self.container = combo_box(CONTAINER_TITLES)
        self.codec = combo_box(CODEC_TITLES)
        self.keep_audio = QCheckBox("Copy the source's audio into recordings")
        form.addRow("Folder", self.record_dir)
        form.addRow("Container", self.container)
        form.addRow("Codec", self.codec)
        form.addRow(self.keep_audio)
        form.addRow(
            hint_label(
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
                show_value(widget, getattr(s, name))
            select_data(self.detector, s.detector)
            self.detector_path.set_text(s.detector_path)
            select_data(self.playback, s.playback)
            self.record_dir.set_text(s.record_dir)
            select_data(self.container, s.container)
            select_data(self.codec, s.codec)
            self.keep_audio.setChecked(s.keep_audio)
        finally:
            self._loading = False
        self._update_enabled()

    def settings(self) -> AppSettings:
        config = self.model_config.text() if self.model_custom.isChecked() else ""
        return AppSettings(
            **{name: read_value(widget) for name, widget in self.fields.items()},
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
