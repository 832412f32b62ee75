"""A file slower to process than its frame rate, in the app: every frame, or real time.

The file is really too fast for the pipeline: the 45-frame test clip re-encoded at 600 frames per
second (75 ms for the whole clip), so detection, keypoints and drawing cannot keep up on any
machine. Real window, real models, real decoding; nothing is simulated.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import pytest
from PySide6.QtCore import QSettings

pytest.importorskip("pytestqt")


from hfpose.app.main_window import MainWindow  # noqa: E402
from hfpose.app.settings import AppSettings, SettingsStore  # noqa: E402

CLIP = "intel_asl_walk_1s5.mp4"  # 45 frames, 640x480 (CC BY 4.0, tests/data/README.md)
FAST_FPS = 600
RUN_TIMEOUT_MS = 120_000


@pytest.fixture
def fast_clip(data_dir: Path, tmp_path: Path) -> Path:
    """The test clip's frames at FAST_FPS (H.264 MP4)."""
    out = tmp_path / f"asl_walk_{FAST_FPS}fps.mp4"
    with av.open(str(data_dir / "videos" / CLIP)) as source, av.open(str(out), "w") as target:
        stream = target.add_stream("libx264", rate=Fraction(FAST_FPS))
        stream.width, stream.height, stream.pix_fmt = 640, 480, "yuv420p"
        for index, frame in enumerate(source.decode(video=0)):
            picture = frame.reformat(format="yuv420p")
            picture.pts, picture.time_base = index, Fraction(1, FAST_FPS)
            target.mux(stream.encode(picture))
        target.mux(stream.encode(None))
    return out


@pytest.fixture
def window(qtbot, tmp_path: Path, pose_model: str) -> MainWindow:
    store = SettingsStore(QSettings(str(tmp_path / "hfpose.ini"), QSettings.Format.IniFormat))
    store.save(
        AppSettings().replace(
            backend="cpu", model=str(pose_model), record_dir=str(tmp_path / "rec")
        )
    )
    window = MainWindow(store)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    return window


def play_and_export(qtbot, window: MainWindow, clip: Path, tmp_path: Path) -> list[int]:
    """Play ``clip`` to its end; the frame indices the pipeline processed, from the export."""
    with qtbot.waitSignal(window.worker.finished, timeout=RUN_TIMEOUT_MS):
        window.open_source(str(clip))
    path = tmp_path / "kp.json"
    with qtbot.waitSignal(window.worker.exported, timeout=10_000):
        window.export_keypoints(str(path))
    return [f["frame_id"] for f in json.loads(path.read_text())["instance_info"]]


@pytest.mark.slow
def test_every_frame_mode_processes_each_frame_of_a_too_fast_file(
    qtbot, window, fast_clip, tmp_path
) -> None:
    assert window.settings.playback == "every-frame"  # the default: today's behaviour
    assert window.every_frame_action.isChecked()
    assert window.playback_label.text() == "every frame"
    assert play_and_export(qtbot, window, fast_clip, tmp_path) == list(range(45))
    assert "skipped" not in window.fps_label.text()
    assert window.latency_label.text().startswith("latency ")


def test_keep_real_time_skips_frames_of_a_too_fast_file_and_says_so(
    qtbot, window, fast_clip, tmp_path
) -> None:
    window.real_time_action.trigger()  # View > Files: keep real time
    assert window.settings.playback == "real-time"
    assert window.playback_label.text() == "real time"
    assert window.store.load().playback == "real-time"  # remembered
    processed = play_and_export(qtbot, window, fast_clip, tmp_path)
    assert len(processed) < 45  # frames the detector had no time for were skipped
    assert processed == sorted(set(processed)) and processed[-1] == 44  # in order, to the end
    skipped = 45 - len(processed)
    assert window.fps_label.text().endswith(f"· {skipped} skipped")


def test_playback_mode_in_the_settings_dialog_and_the_view_menu_agree(qtbot, window) -> None:
    window.show_settings()
    dialog = window.settings_dialog
    dialog.playback.setCurrentIndex(dialog.playback.findData("real-time"))
    assert window.settings.playback == "real-time" and window.real_time_action.isChecked()
    window.every_frame_action.trigger()
    assert dialog.playback.currentData() == "every-frame"
    assert window.playback_label.text() == "every frame"
    dialog.min_pose_score.setValue(0.25)
    assert window.settings.min_pose_score == 0.25
    assert window.settings.playback == "every-frame"  # an edit in the dialog keeps the mode


@pytest.mark.slow
def test_min_pose_score_from_the_settings_applies_to_the_playing_video(
    qtbot, window, data_dir
) -> None:
    """No pose of the keypoint model reaches a mean score of 1: at that setting nobody is shown."""
    window.open_source(str(data_dir / "videos" / CLIP))
    qtbot.waitUntil(lambda: window.people_label.text() != "0 people", timeout=RUN_TIMEOUT_MS)
    with qtbot.waitSignal(window.worker.finished, timeout=RUN_TIMEOUT_MS):
        window.apply_settings(window.settings.replace(min_pose_score=1.0))
        qtbot.waitUntil(lambda: window.people_label.text() == "0 people", timeout=RUN_TIMEOUT_MS)
    assert window.people_label.text() == "0 people"  # to the last frame
    assert window.store.load().min_pose_score == 1.0
