"""The angle plot dock in the real window, on a real clip with several people: fed every frame
from the window's frame updates, a person selected by a click on the video, the plot and its
data saved, the history restarted by a seek back."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, QSettings, Qt
from PySide6.QtGui import QImage

pytest.importorskip("pytestqt")

from hfpose.app.main_window import MainWindow  # noqa: E402
from hfpose.app.settings import AppSettings, SettingsStore  # noqa: E402

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
    assert len(history.times) == FRAMES  # one sample per frame, by the source's times
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
