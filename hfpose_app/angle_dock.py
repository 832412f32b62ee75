"""The angle plot dock: the chosen angles of one person over the last seconds, and their reps.

The main window feeds it every frame's people (:meth:`AnglePlotDock.feed`) from its frame
update, the same GUI-thread call that paints the video: no signal per frame of its own. Each
track's angles are kept for ``HISTORY_S`` so picking another person (a click on them in the
video, or the track list) shows their recent past at once; a track gone for that long is
forgotten, unless it is the one plotted. Time goes by the source's timestamps; a step back in
time (a seek, a rewind) starts the history afresh. Curves are redrawn only while the dock is
visible, and only once per shown frame however many frames arrived, so the plot never holds
back the video.
"""

from __future__ import annotations

import csv
import math
from collections import deque
from collections.abc import Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDockWidget,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QMessageBox,
    QSplitter,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from hfpose.app.keypoint_export import KeptFrame
from hfpose.app.setting_fields import setting_widget
from hfpose.app.settings import AppSettings
from hfpose.engine.angles import ANGLE_BY_NAME
from hfpose.engine.output.angle_sinks import degrees_cell
from hfpose.engine.output.rendering import track_color
from hfpose.engine.repetitions import RepetitionCounter
from hfpose.engine.results import Person

HISTORY_S = 120.0  # seconds of angles kept per track
DEFAULT_WINDOW_S = 10.0
DEFAULT_PLOTTED = ("left_knee", "right_knee", "left_elbow", "right_elbow")
_PALETTE = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6",
            "#bfef45", "#fabed4", "#469990", "#dcbeff", "#9a6324", "#800000", "#aaffc3",
            "#808000", "#000075", "#a9a9a9")  # fmt: skip


class TrackHistory:
    """One track's angles over time: times and one row of values per frame."""

    def __init__(self) -> None:
        self.times: deque[float] = deque()
        self.rows: deque[list[float]] = deque()

    def add(self, time_s: float, row: list[float]) -> None:
        self.times.append(time_s)
        self.rows.append(row)
        while self.times and self.times[0] < time_s - HISTORY_S:
            self.times.popleft()
            self.rows.popleft()

    def since(self, start_s: float) -> tuple[np.ndarray, np.ndarray]:
        """Times (n,) and values (n, angles) from ``start_s`` on."""
        times = np.fromiter(self.times, float, len(self.times))
        first = int(np.searchsorted(times, start_s))
        rows = [self.rows[i] for i in range(first, len(self.rows))]
        width = len(self.rows[0]) if self.rows else 0
        return times[first:], np.array(rows, float).reshape(len(rows), width)


class AnglePlotDock(QDockWidget):
    """Live angles and repetitions of the selected person; see the module's docstring."""

    settings_edited = Signal(object)  # AppSettings: the reps thresholds or the overlay changed

    def __init__(self, settings: AppSettings, parent: QWidget | None = None) -> None:
        super().__init__("Angles", parent)
        self.setObjectName("angle_dock")
        self.settings = settings
        self.names: tuple[str, ...] = ()  # the angle columns, from the first person seen
        self.histories: dict[int, TrackHistory] = {}
        self.counters: dict[int, RepetitionCounter] = {}
        self.selected: int | None = None
        self.latest_people: list[Person] = []
        self.latest_time = math.nan
        self.frames_fed = 0
        self.redraws = 0
        self.curves: dict[str, pg.PlotDataItem] = {}
        self._listed: tuple | None = None  # what the track list shows
        self._titled: int | None = None  # whose number the plot's title shows
        self._build()

    # ------------------------------------------------------------------------------- widgets
    def _build(self) -> None:
        body = QWidget()
        column = QVBoxLayout(body)
        column.setContentsMargins(4, 4, 4, 4)

        top = QHBoxLayout()
        self.person_combo = QComboBox()
        self.person_combo.setToolTip("Whose angles to plot; or click on a person in the video")
        self.person_combo.activated.connect(self._person_chosen)
        self.window_spin = QDoubleSpinBox()
        self.window_spin.setRange(1.0, HISTORY_S)
        self.window_spin.setValue(DEFAULT_WINDOW_S)
        self.window_spin.setSuffix(" s")
        self.window_spin.setToolTip("How many seconds the plot shows")
        self.window_spin.valueChanged.connect(lambda _v: self.redraw())
        self.save_button = QToolButton()
        self.save_button.setText("Save")
        self.save_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(self.save_button)
        self.save_png_action = menu.addAction("Plot as PNG…", self._save_png_dialog)
        self.save_csv_action = menu.addAction("Plot data as CSV…", self._save_csv_dialog)
        self.save_button.setMenu(menu)
        top.addWidget(QLabel("Person"))
        top.addWidget(self.person_combo, 1)
        top.addWidget(QLabel("Last"))
        top.addWidget(self.window_spin)
        top.addWidget(self.save_button)
        column.addLayout(top)

        self.plot = pg.PlotWidget(background="w")
        self.plot.setLabel("left", "angle", units="°")
        self.plot.setLabel("bottom", "time", units="s")
        self.plot.showGrid(x=True, y=True, alpha=0.3)
        self.plot.addLegend(offset=(5, 5))
        self.plot.setMouseEnabled(x=False, y=True)
        self.angle_list = QListWidget()
        self.angle_list.setToolTip("The angles to plot (hfpose.engine.angles defines them)")
        self.angle_list.itemChanged.connect(self._angle_toggled)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.plot)
        splitter.addWidget(self.angle_list)
        splitter.setStretchFactor(0, 3)
        column.addWidget(splitter, 1)

        self.overlay_box = QCheckBox("Angle values on the video")
        self.overlay_box.setToolTip(
            "Draw each joint angle beside its joint (the Drawing settings' show_angles)"
        )
        self.overlay_box.toggled.connect(self._overlay_toggled)
        column.addWidget(self.overlay_box)

        reps = QFormLayout()
        self.reps_angle = setting_widget("reps_angle")
        self.reps_low = setting_widget("reps_low")
        self.reps_high = setting_widget("reps_high")
        for spin in (self.reps_low, self.reps_high):
            spin.setSuffix("°")
        self._show_settings()
        self.reps_angle.currentIndexChanged.connect(lambda _i: self._reps_edited())
        self.reps_low.valueChanged.connect(lambda _v: self._reps_edited())
        self.reps_high.valueChanged.connect(lambda _v: self._reps_edited())
        thresholds = QHBoxLayout()
        thresholds.addWidget(QLabel("rest ≤"))
        thresholds.addWidget(self.reps_low)
        thresholds.addWidget(QLabel("reach ≥"))
        thresholds.addWidget(self.reps_high)
        self.reps_label = QLabel("Repetitions: 0")
        font = self.reps_label.font()
        font.setBold(True)
        self.reps_label.setFont(font)
        reps.addRow("Count reps of", self.reps_angle)
        reps.addRow(thresholds)
        reps.addRow(self.reps_label)
        column.addLayout(reps)
        self.setWidget(body)

    def _fill_angle_list(self) -> None:
        self.angle_list.blockSignals(True)
        self.angle_list.clear()
        for name in self.names:
            item = QListWidgetItem(name)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            checked = name in DEFAULT_PLOTTED
            item.setCheckState(Qt.CheckState.Checked if checked else Qt.CheckState.Unchecked)
            definition = ANGLE_BY_NAME.get(name)
            if definition is not None:
                item.setToolTip(
                    f"{definition.meaning} ({definition.low:g} to {definition.high:g}°)"
                )
            self.angle_list.addItem(item)
        self.angle_list.blockSignals(False)
        self._rebuild_curves()

    # ------------------------------------------------------------------------------ choices
    def plotted(self) -> list[str]:
        """The angles ticked in the checklist."""
        return [
            self.angle_list.item(i).text()
            for i in range(self.angle_list.count())
            if self.angle_list.item(i).checkState() == Qt.CheckState.Checked
        ]

    def set_plotted(self, names: Sequence[str]) -> None:
        for i in range(self.angle_list.count()):
            item = self.angle_list.item(i)
            wanted = item.text() in names
            item.setCheckState(Qt.CheckState.Checked if wanted else Qt.CheckState.Unchecked)

    def _angle_toggled(self, _item: QListWidgetItem) -> None:
        self._rebuild_curves()

    def _rebuild_curves(self) -> None:
        self.plot.clear()
        legend = self.plot.plotItem.legend
        if legend is not None:
            legend.clear()
        self.curves = {}
        for name in self.plotted():
            color = _PALETTE[self.names.index(name) % len(_PALETTE)]
            self.curves[name] = self.plot.plot([], [], pen=pg.mkPen(color, width=2), name=name)
        self.redraw()

    def select(self, track_id: int | None) -> None:
        """Plot ``track_id``'s angles (None: nobody)."""
        self.selected = track_id
        self._fill_person_combo()
        self._show_reps()
        self.redraw()

    def select_at(self, x: float, y: float) -> bool:
        """Select the person whose box holds the image point (x, y), the smallest box where
        boxes overlap; False when nobody is there."""
        hits = [
            p for p in self.latest_people
            if p.track_id >= 0 and p.bbox[0] <= x <= p.bbox[2] and p.bbox[1] <= y <= p.bbox[3]
        ]  # fmt: skip
        if not hits:
            return False
        area = [(p.bbox[2] - p.bbox[0]) * (p.bbox[3] - p.bbox[1]) for p in hits]
        self.select(hits[int(np.argmin(area))].track_id)
        return True

    def _person_chosen(self, index: int) -> None:
        track_id = self.person_combo.itemData(index)
        if track_id is not None:
            self.select(int(track_id))

    def _fill_person_combo(self) -> None:
        """The track list, rebuilt only when who is in view or selected changed (rebuilding
        a combo box every frame costs the GUI thread more than the plot)."""
        present = sorted({p.track_id for p in self.latest_people if p.track_id >= 0})
        ids = sorted(set(present) | ({self.selected} if self.selected is not None else set()))
        if (present, ids, self.selected) == self._listed:
            return
        self._listed = (present, ids, self.selected)
        combo = self.person_combo
        combo.blockSignals(True)
        combo.clear()
        for track_id in ids:
            suffix = "" if track_id in present else " (out of sight)"
            combo.addItem(f"#{track_id}{suffix}", track_id)
        if self.selected is not None:
            combo.setCurrentIndex(ids.index(self.selected))
        combo.blockSignals(False)

    def _overlay_toggled(self, checked: bool) -> None:
        self.settings = self.settings.replace(show_angles=checked)
        self.settings_edited.emit(self.settings)

    def _reps_edited(self) -> None:
        low, high = self.reps_low.value(), self.reps_high.value()
        if low >= high:
            self.reps_label.setText("Repetitions: the rest threshold must be under the reach")
            return
        self.settings = self.settings.replace(
            reps_angle=self.reps_angle.currentData(), reps_low=low, reps_high=high
        )
        self._recount()
        self.settings_edited.emit(self.settings)

    def set_settings(self, settings: AppSettings) -> None:
        """Show settings changed elsewhere (the settings dialog)."""
        self.settings = settings
        widgets = (self.overlay_box, self.reps_angle, self.reps_low, self.reps_high)
        for widget in widgets:
            widget.blockSignals(True)
        self._show_settings()
        for widget in widgets:
            widget.blockSignals(False)
        self._recount()

    def _show_settings(self) -> None:
        s = self.settings
        self.overlay_box.setChecked(s.show_angles)
        self.reps_angle.setCurrentIndex(max(0, self.reps_angle.findData(s.reps_angle)))
        self.reps_low.setValue(s.reps_low)
        self.reps_high.setValue(s.reps_high)

    # --------------------------------------------------------------------------- the data
    def clear(self) -> None:
        """Forget every track (a new source)."""
        self.histories.clear()
        self.counters.clear()
        self.latest_people = []
        self.latest_time = math.nan
        self.selected = None
        self._fill_person_combo()
        self._show_reps()
        self.redraw()

    def feed(self, frames: Sequence[KeptFrame]) -> None:
        """Take the frames shown since the last call (every frame, oldest first) and redraw."""
        if not frames:
            return
        for frame in frames:
            if frame.timestamp < self.latest_time:  # a seek back: the history restarts
                selected = self.selected
                self.clear()
                self.selected = selected
            self._add(frame)
        self.frames_fed += len(frames)
        if self.selected is None and self.latest_people:
            self.selected = min(p.track_id for p in self.latest_people)
        self._fill_person_combo()
        self._show_reps()
        self.redraw()

    def _add(self, frame: KeptFrame) -> None:
        self.latest_time = frame.timestamp
        self.latest_people = [p for p in frame.people if p.track_id >= 0]
        for person in self.latest_people:
            if not self.names and person.angles:
                self.names = tuple(person.angles)
                self._fill_angle_list()
            row = [person.angles.get(name, math.nan) for name in self.names]
            history = self.histories.setdefault(person.track_id, TrackHistory())
            history.add(frame.timestamp, row)
            counter = self._counter(person.track_id)
            counter.update(frame.timestamp, person.angles.get(self.settings.reps_angle, math.nan))
        self._forget_gone(frame.timestamp)

    def _forget_gone(self, now_s: float) -> None:
        """Drop the tracks not seen for ``HISTORY_S``, all but the chosen one: none of their
        angles is in the span kept any more, and a camera on a street meets someone new
        every few seconds for hours."""
        gone = [
            track_id
            for track_id, history in self.histories.items()
            if track_id != self.selected and history.times[-1] < now_s - HISTORY_S
        ]
        for track_id in gone:
            del self.histories[track_id]
            self.counters.pop(track_id, None)

    def _counter(self, track_id: int) -> RepetitionCounter:
        counter = self.counters.get(track_id)
        if counter is None:
            s = self.settings
            counter = RepetitionCounter(s.reps_low, s.reps_high)
            self.counters[track_id] = counter
        return counter

    def _recount(self) -> None:
        """New thresholds or angle: count again over each track's kept history."""
        self.counters.clear()
        if self.settings.reps_angle in self.names:
            column = self.names.index(self.settings.reps_angle)
            for track_id, history in self.histories.items():
                counter = self._counter(track_id)
                for time_s, row in zip(history.times, history.rows):
                    counter.update(time_s, row[column])
        self._show_reps()

    def _show_reps(self) -> None:
        counter = self.counters.get(self.selected) if self.selected is not None else None
        text = f"Repetitions: {counter.count if counter else 0}"
        last = counter.last if counter else None
        if last is not None:
            text += f"   last: {last.range_deg:.0f}° range in {last.duration_s:.1f} s"
        if text != self.reps_label.text():
            self.reps_label.setText(text)

    def plot_data(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """What the plot shows: the selected person's times over the window, and the values
        of each ticked angle."""
        history = self.histories.get(self.selected) if self.selected is not None else None
        if history is None or not history.times:
            return np.empty(0), {name: np.empty(0) for name in self.curves}
        times, rows = history.since(self.latest_time - self.window_spin.value())
        return times, {name: rows[:, self.names.index(name)] for name in self.curves}

    def redraw(self) -> None:
        """Set the curves to the window's data (skipped while the dock is hidden)."""
        if not self.isVisible():
            return
        times, values = self.plot_data()
        for name, curve in self.curves.items():
            curve.setData(times, values[name], connect="finite")
        if times.size:  # the window's span, from the first sample while there are fewer
            end = self.latest_time
            start = max(end - self.window_spin.value(), min(times[0], end - 1.0))
            self.plot.setXRange(start, end, padding=0)
        if self.selected != self._titled:  # a new title lays the plot out again: only then
            self._titled = self.selected
            r, g, b = (
                reversed(track_color(self.selected)) if self.selected is not None else (0,) * 3
            )
            self.plot.setTitle(
                "" if self.selected is None else f"#{self.selected}", color=(r, g, b)
            )
        self.redraws += 1

    # ------------------------------------------------------------------------------ saving
    def save_png(self, path: str) -> bool:
        """The plot as it is on screen, as an image."""
        return self.plot.grab().save(path, "PNG")

    def save_csv(self, path: str) -> None:
        """The plotted data: ``time_s`` and one column per ticked angle (empty: missing).

        Raises OSError when the file cannot be written."""
        times, values = self.plot_data()
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["time_s", "track_id", *values])
            for i, time_s in enumerate(times.tolist()):
                cells = [degrees_cell(column[i]) for column in values.values()]
                writer.writerow([f"{time_s:.6f}", self.selected, *cells])

    def _save_png_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save the plot", "angles.png", "PNG (*.png)")
        if path and not self.save_png(path):
            QMessageBox.warning(self, "Save the plot", f"Cannot write {path}.")

    def _save_csv_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Save the plot's data", "angles.csv", "CSV (*.csv)"
        )
        if not path:
            return
        try:
            self.save_csv(path)
        except OSError as error:
            QMessageBox.warning(
                self, "Save the plot's data", f"Cannot write {path}: {error.strerror}."
            )
