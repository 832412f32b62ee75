"""The settings dialog's editors and words: one editor per declared engine setting, built from
its declaration (range, step, tooltip, the word for 0), the dialog's titles for the engine's
choices, a path field with a Browse button and a label that keeps the height of its wrapped
lines. The angle plot's dock builds its editors here too, so both show a setting alike.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont, QResizeEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QWidget,
)

from hfpose.engine.angles import ANGLES
from hfpose.engine.config import SETTINGS

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


def combo_box(titles: dict[str, str]) -> QComboBox:
    """A combo box showing the titles, each holding its key as data."""
    combo = QComboBox()
    for key, title in titles.items():
        combo.addItem(title, key)
    return combo


def select_data(combo: QComboBox, key: str) -> None:
    """Select the entry holding ``key``; an unknown key leaves the selection as it is."""
    index = combo.findData(key)
    if index >= 0:
        combo.setCurrentIndex(index)


def hint_label(text: str) -> QLabel:
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
        combo = combo_box(CHOICE_TITLES[name])
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


def show_value(widget: QWidget, value: object) -> None:
    """Show ``value`` in the editor :func:`setting_widget` made."""
    if isinstance(widget, QCheckBox):
        widget.setChecked(bool(value))
    elif isinstance(widget, QComboBox):
        select_data(widget, str(value))
    else:
        widget.setValue(value)  # type: ignore[attr-defined]


def read_value(widget: QWidget) -> object:
    """The value the editor :func:`setting_widget` made holds (a float to its decimals)."""
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
