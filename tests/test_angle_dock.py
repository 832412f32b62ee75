"""The angle plot dock in the real window, on a real clip with several people: fed every frame
from the window's frame updates, a person selected by a click on the video, the plot and its
data saved, the history restarted by a seek back."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, QSettings, Qt
from PySide6.QtGui import QImage

pytest.importorskip("pytestqt")

from hfpose.app import worker as worker_module  # noqa: E402
from hfpose.app.angle_dock import AnglePlotDock  # noqa: E402
from hfpose.app.keypoint_export import KeptFrame  # noqa: E402
from hfpose.app.main_window import MainWindow  # noqa: E402
from hfpose.app.settings import AppSettings, SettingsStore  # noqa: E402
from hfpose.engine.people.plausibility import TRACK_CONFIRM_FRAMES  # noqa: E402
from tests.helpers import FakeCamera, make_person  # noqa: E402

CLIP = "mmpose_demo_street.mp4"  # 5 frames, 960x540, several pedestrians (tests/data/README.md)
FRAMES = 5
RUN_TIMEOUT_MS = 120_000


@pytest.fixture
def window(qtbot, tmp_path: Path, pose_model: str) -> MainWindow:
    store = SettingsStore(QSettings(str(tmp_path / "hfpose.ini"), QSettings.Format.IniFormat))
    store.save(AppSettings().replace(backend="cpu", model=str(pose_model), show_angles=True))
    window = MainWindow(store)
    qtbot.addWidget(window)
    window.resize(1400, 800)
    window.show()
    window.angle_dock.show()
    qtbot.waitExposed(window)
    return window


def _widget_point(window: MainWindow, x: float, y: float) -> QPoint:
    """Where the frame's pixel (x, y) is in the video view."""
    rect = window.view.image_rect()
    scale = rect.width() / window.view.image().width()
    return QPoint(round(rect.x() + x * scale), round(rect.y() + y * scale))


@pytest.mark.slow
def test_dock_fed_every_frame_selects_by_click_and_saves(qtbot, window, data_dir, tmp_path):
    dock = window.angle_dock
    with qtbot.waitSignal(window.worker.finished, timeout=RUN_TIMEOUT_MS):
        window.open_source(str(data_dir / "videos" / CLIP))
    qtbot.waitUntil(lambda: dock.frames_fed == FRAMES, timeout=10_000)
    assert window.frames_shown <= FRAMES  # the view may skip; the dock got them all
    people = dock.latest_people
    assert len(people) >= 2, "the street clip shows several people"
    assert dock.selected == min(p.track_id for p in people)  # nobody chosen: the first
    assert dock.redraws >= 1
    history = dock.histories[dock.selected]
    # one sample per frame from the frame a newcomer is confirmed on, by the source's times
    assert len(history.times) == FRAMES - (TRACK_CONFIRM_FRAMES - 1)
    assert list(history.times) == sorted(history.times)

    # A click on another person's box (where no other box is) selects them.
    def alone(p):
        return not any(
            q is not p and q.bbox[0] <= cx <= q.bbox[2] and q.bbox[1] <= cy <= q.bbox[3]
            for q in people
            for cx, cy in [((p.bbox[0] + p.bbox[2]) / 2, (p.bbox[1] + p.bbox[3]) / 2)]
        )

    other = next(p for p in people if p.track_id != dock.selected and alone(p))
    centre = ((other.bbox[0] + other.bbox[2]) / 2, (other.bbox[1] + other.bbox[3]) / 2)
    qtbot.mouseClick(window.view, Qt.MouseButton.LeftButton, pos=_widget_point(window, *centre))
    assert dock.selected == other.track_id
    assert dock.person_combo.currentData() == other.track_id
    qtbot.mouseClick(window.view, Qt.MouseButton.LeftButton, pos=_widget_point(window, 2, 2))
    assert dock.selected == other.track_id  # a click on nobody keeps the choice

    dock.set_plotted(["left_knee", "right_knee", "trunk_lean"])
    times, values = dock.plot_data()
    assert list(values) == ["left_knee", "right_knee", "trunk_lean"]
    assert len(times) == len(dock.histories[other.track_id].times)
    for name, curve in dock.curves.items():
        x, _ = curve.getData()
        assert len(x) == len(times), name

    png, data = tmp_path / "plot.png", tmp_path / "plot.csv"
    assert dock.save_png(str(png))
    image = QImage(str(png))
    assert not image.isNull() and image.width() > 100
    dock.save_csv(str(data))
    with open(data, newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["time_s", "track_id", "left_knee", "right_knee", "trunk_lean"]
    assert len(rows) == 1 + len(times)
    assert all(row[1] == str(other.track_id) for row in rows[1:])
    finite = [float(cell) for row in rows[1:] for cell in row[2:] if cell]
    assert finite and all(-180 <= v <= 180 for v in finite)

    # A seek back restarts the history: the frame shown is earlier than the last one.
    fed = dock.frames_fed
    window.worker.seek(0.0)
    qtbot.waitUntil(lambda: dock.frames_fed > fed, timeout=RUN_TIMEOUT_MS)
    assert all(min(h.times) <= 0.25 for h in dock.histories.values() if h.times)


def _frames(values: list[float], track_id: int = 3, start_s: float = 0.0) -> list[KeptFrame]:
    """Frames of one synthetic person whose right knee takes ``values``, 30 fps."""
    frames = []
    for i, value in enumerate(values):
        person = make_person(200, 200)
        person.track_id = track_id
        person.angles = {"right_knee": value, "left_knee": math.nan}
        frames.append(KeptFrame(i, start_s + i / 30, [person]))
    return frames


def test_dock_counts_repetitions_and_refuses_thresholds_out_of_order(qtbot, tmp_path) -> None:
    dock = AnglePlotDock(AppSettings().replace(reps_angle="right_knee", reps_low=30.0))
    qtbot.addWidget(dock)
    dock.show()
    squat = [10.0] * 5 + [50.0, 90.0, 100.0, 90.0, 50.0] + [10.0] * 5
    dock.feed(_frames(squat * 2))
    assert dock.selected == 3 and dock.counters[3].count == 2
    assert "Repetitions: 2" in dock.reps_label.text() and "90° range" in dock.reps_label.text()
    edited = []
    dock.settings_edited.connect(edited.append)
    dock.reps_low.setValue(95.0)  # above reps_high (80): refused, the count stays
    assert "must be under" in dock.reps_label.text() and not edited
    assert dock.settings.reps_low == 30.0
    dock.reps_low.setValue(20.0)
    assert edited[-1].reps_low == 20.0 and dock.counters[3].count == 2  # counted again
    # a seek back: the history restarts at the earlier time
    dock.feed(_frames([10.0, 10.0], start_s=0.0))
    assert list(dock.histories[3].times) == [0.0, 1 / 30]
    assert not dock.save_png(str(tmp_path / "missing" / "plot.png"))
    with pytest.raises(OSError):
        dock.save_csv(str(tmp_path / "missing" / "plot.csv"))


@pytest.mark.slow
def test_dock_plots_a_live_camera_fake_camera(qtbot, window, data_dir, monkeypatch) -> None:
    """The machine has no webcam: a fake one on the real live-source machinery loops the
    street clip at 30 fps; the dock plots the frames the engine delivers as they come."""
    clip = data_dir / "videos" / CLIP
    monkeypatch.setattr(worker_module, "open_source", lambda spec: FakeCamera(clip))
    dock = window.angle_dock
    window.open_source("webcam:7")

    qtbot.waitUntil(
        lambda: dock.frames_fed >= 3 and dock.selected is not None, timeout=RUN_TIMEOUT_MS
    )
    times, _ = dock.plot_data()
    assert len(times) >= 1 and list(times) == sorted(times)
    x, _ = next(iter(dock.curves.values())).getData()
    assert len(x) == len(times)
