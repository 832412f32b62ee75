"""The app's memory over many runs and a long live session, in the real window.

A finished run (models, sessions, thread pools, decoder: about 100 MB) goes as soon as the
next source replaces it, not at the cycle collector's next full pass (the GUI soak grew from
1.0 to 2.2 GiB in four minutes of reopening a clip), and the angle dock keeps only the tracks
seen in its history's span.
"""

from __future__ import annotations

import gc
import math
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings

pytest.importorskip("pytestqt")

from hfpose.app.angle_dock import HISTORY_S, AnglePlotDock  # noqa: E402
from hfpose.app.keypoint_export import KeptFrame  # noqa: E402
from hfpose.app.main_window import MainWindow  # noqa: E402
from hfpose.app.settings import AppSettings, SettingsStore  # noqa: E402
from hfpose.engine.pipeline import Pipeline  # noqa: E402
from tests.helpers import make_person  # noqa: E402

CLIP = "mmpose_demo_street.mp4"  # 5 frames at 5 fps, several pedestrians (tests/data/README.md)
PLAYS = 2


def _pipelines_alive() -> int:
    return sum(isinstance(o, Pipeline) for o in gc.get_objects())


@pytest.mark.slow
def test_a_clip_opened_again_and_again_keeps_one_run_alive(
    qtbot, tmp_path: Path, pose_model: str, data_dir: Path
) -> None:
    store = SettingsStore(QSettings(str(tmp_path / "hfpose.ini"), QSettings.Format.IniFormat))
    store.save(AppSettings().replace(backend="cpu", model=str(pose_model)))
    window = MainWindow(store)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    gc.collect()
    before = _pipelines_alive()
    gc.disable()  # only reference counting frees the finished runs now
    try:
        for _ in range(PLAYS):
            with qtbot.waitSignal(window.worker.finished, timeout=120_000):
                window.open_source(str(data_dir / "videos" / CLIP))
        alive = _pipelines_alive() - before
    finally:
        gc.enable()
    assert window.frames_shown >= PLAYS
    assert alive <= 1, f"{alive} runs alive after {PLAYS} plays: finished ones were kept"


def _frame(index: int, time_s: float, track_ids: list[int]) -> KeptFrame:
    people = []
    for track_id in track_ids:
        person = make_person(100 + 50 * (track_id % 10), 200)
        person.track_id = track_id
        person.angles = {"right_knee": 90.0, "left_knee": math.nan}
        people.append(person)
    return KeptFrame(index, time_s, people)


def test_the_angle_dock_forgets_tracks_gone_for_its_history_span_but_the_chosen_one(
    qtbot,
) -> None:
    """A live camera on a street meets a new person every few seconds, for hours: each gone
    track's angles were kept to the end of the session."""
    dock = AnglePlotDock(AppSettings())
    qtbot.addWidget(dock)
    dock.show()
    dock.feed([_frame(0, 0.0, [1])])
    dock.select(1)
    fps, new_person_every_s, minutes = 5, 2.0, 10
    frames = [
        _frame(i, i / fps, [2 + int(i / fps / new_person_every_s)])
        for i in range(1, minutes * 60 * fps)
    ]
    for start in range(0, len(frames), fps):  # the GUI takes them about once a second
        dock.feed(frames[start : start + fps])
    now = frames[-1].timestamp
    seen_lately = {p.track_id for f in frames if f.timestamp >= now - HISTORY_S for p in f.people}
    assert set(dock.histories) == seen_lately | {1}  # the chosen person stays listed
    assert set(dock.counters) <= set(dock.histories)
    assert dock.selected == 1 and dock.person_combo.currentData() == 1
