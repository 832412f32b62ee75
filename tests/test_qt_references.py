"""The Qt bindings keep Python's reference counts, in a bare loop and in the app playing a clip.

PySide6/shiboken6 6.12.0 lost a reference to ``True`` on every signal emit and to ``None`` on
every Qt call without a value; the app aborted after minutes (hfpose_app/binding_check.py,
docs/app.md). These tests catch the next such release before a user does.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings

pytest.importorskip("pytestqt")

from hfpose.app.binding_check import binding_problem  # noqa: E402
from hfpose.app.main_window import MainWindow  # noqa: E402
from hfpose.app.settings import AppSettings, SettingsStore  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CALLS = 3000
# A fresh interpreter holds a few thousand references to True: a broken release would abort
# it before it could report. The headroom lets it report instead.
BARE_LOOP = f"""
import os
from hfpose.app.binding_check import lost_references
headroom = [True, None] * {10 * CALLS}
lost = lost_references({CALLS})
print(lost["True"], lost["None"], flush=True)
os._exit(0)  # a broken release leaves counts too low for the interpreter's own teardown
"""


def test_thousands_of_emits_and_qt_calls_lose_no_reference_to_true_or_none() -> None:
    run = subprocess.run(
        [sys.executable, "-c", BARE_LOOP], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr[-2000:]
    lost_true, lost_none = (int(n) for n in run.stdout.split())
    # a broken release loses one reference per call; the interpreter itself may move one or
    # two between the counts (seen once on a loaded machine: None 1 of 3,000)
    assert max(lost_true, lost_none) < CALLS // 100, f"{CALLS} emits and Qt calls lost references"
    assert binding_problem() is None


@pytest.mark.slow
def test_the_app_playing_a_clip_for_hundreds_of_frames_keeps_true_and_none(
    qtbot, tmp_path: Path, pose_model: str, data_dir: Path
) -> None:
    store = SettingsStore(QSettings(str(tmp_path / "hfpose.ini"), QSettings.Format.IniFormat))
    store.save(
        AppSettings().replace(
            backend="cpu", model=str(pose_model), record_dir=str(tmp_path), max_persons=2
        )
    )
    window = MainWindow(store)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    clip = data_dir / "videos" / "intel_asl_walk_1s5.mp4"  # 45 frames: played over and over
    plays = 0

    def play_again() -> None:
        nonlocal plays
        plays += 1
        window.open_source(str(clip))

    window.worker.finished.connect(play_again)
    play_again()
    qtbot.waitUntil(lambda: window.frames_shown >= 20, timeout=120_000)  # warmed up
    start = window.frames_shown
    true_before, none_before = sys.getrefcount(True), sys.getrefcount(None)
    frames = 300
    qtbot.waitUntil(lambda: window.frames_shown >= start + frames, timeout=600_000)
    lost_true = true_before - sys.getrefcount(True)
    lost_none = none_before - sys.getrefcount(None)
    window.worker.finished.disconnect(play_again)
    window.close()
    # A sound release: both counts move a little as the engine's objects come and go. The
    # broken one lost at least one True and several None per frame shown.
    assert plays >= 2
    assert lost_true < frames // 4, f"True lost {lost_true} references in {frames} frames"
    assert lost_none < frames // 4, f"None lost {lost_none} references in {frames} frames"
