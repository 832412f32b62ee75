"""The desktop app on the real window: real clips, real ONNX sessions, real encoders.

Only the webcam is faked (the machine has none): those tests say so in their names. The keypoint
model is the shipped one, else an exported randomly initialised HF-HRNet-18 (tests/helpers.py),
so nothing here judges keypoint accuracy.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import threading
import time
from pathlib import Path

import av
import pytest
from PySide6.QtCore import QMimeData, QObject, QPoint, QPointF, QSettings, Qt, QUrl, Slot
from PySide6.QtGui import QDesktopServices, QDropEvent

pytest.importorskip("pytestqt")


from hfpose.app import worker as worker_module  # noqa: E402
from hfpose.app.main_window import MainWindow  # noqa: E402
from hfpose.app.settings import AppSettings, SettingsStore  # noqa: E402
from hfpose.engine.sources.video_file import VideoFileSource  # noqa: E402
from tests.helpers import FakeCamera

CLIP = "intel_asl_walk_1s5.mp4"  # 45 frames, 30 fps, 640x480 (CC BY 4.0, tests/data/README.md)
RUN_TIMEOUT_MS = 120_000  # a whole clip on 2 shared cores, models included


@pytest.fixture
def clip(data_dir: Path) -> Path:
    return data_dir / "videos" / CLIP


def frame_count_and_duration(path: Path) -> tuple[int, float, float]:
    """Decoded frames, the video stream's duration (s) and its average frame rate."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        duration = float(stream.duration * stream.time_base) if stream.duration else 0.0
        return frames, duration, float(stream.average_rate)


@pytest.fixture
def make_window(qtbot, tmp_path: Path, pose_model: str):
    """Windows backed by one INI file in tmp_path, like restarts of the app."""
    ini = tmp_path / "hfpose.ini"
    store = SettingsStore(QSettings(str(ini), QSettings.Format.IniFormat))
    store.save(
        AppSettings().replace(
            backend="cpu",
            model=str(pose_model),
            record_dir=str(tmp_path / "recordings"),
            max_persons=2,
        )
    )

    def make() -> MainWindow:
        window = MainWindow(SettingsStore(QSettings(str(ini), QSettings.Format.IniFormat)))
        qtbot.addWidget(window)
        window.show()
        qtbot.waitExposed(window)
        return window

    return make


@pytest.fixture
def window(make_window) -> MainWindow:
    return make_window()


def wait_frames(qtbot, window: MainWindow, count: int = 1) -> None:
    start = window.frames_shown
    qtbot.waitUntil(lambda: window.frames_shown >= start + count, timeout=RUN_TIMEOUT_MS)


def wait_until_still(qtbot, window: MainWindow, quiet_ms: int = 800) -> None:
    """Wait until no frame has arrived for ``quiet_ms`` (after a pause, in-flight frames land)."""
    deadline = time.monotonic() + RUN_TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        before = window.frames_shown
        qtbot.wait(quiet_ms)
        if window.frames_shown == before:
            return
    raise AssertionError("frames kept coming while paused")


@pytest.mark.slow
def test_plays_a_clip_to_the_end_then_records_it_whole(qtbot, window, clip, tmp_path) -> None:
    with qtbot.waitSignal(window.worker.finished, timeout=RUN_TIMEOUT_MS):
        window.open_source(str(clip))
    assert window.frames_shown > 0
    assert window.time_label.text() == "0:01.5 / 0:01.5"
    assert re.fullmatch(r"\d+ (person|people)", window.people_label.text())
    assert window.backend_label.text().startswith("cpu")
    assert window.banner.text() == ""

    # Record on an ended file replays it from the start, so the whole clip is recorded.
    with qtbot.waitSignal(window.worker.recording_stopped, timeout=RUN_TIMEOUT_MS) as stopped:
        qtbot.keyClick(window.view, Qt.Key.Key_R)
        qtbot.waitUntil(lambda: window.record_indicator.isVisible(), timeout=RUN_TIMEOUT_MS)
    recording = Path(stopped.args[0])
    assert recording.parent == tmp_path / "recordings" and recording.suffix == ".mp4"
    frames, duration, rate = frame_count_and_duration(recording)
    assert (frames, rate) == (45, 30.0)
    assert duration == pytest.approx(1.5, abs=1e-3)
    assert not window.record_indicator.isVisible()
    # the whole path, however long (the status bar's fields cut it), and a way to its folder
    assert window.banner.text() == f"Recording saved: {recording}"
    assert window.banner.action_button.text() == "Open folder"
    assert opened_by_the_desktop(window.banner.action_button.click) == [recording.parent]


class _UrlCatcher(QObject):
    """Takes the file URLs the app asks the desktop to open (no file manager here)."""

    def __init__(self) -> None:
        super().__init__()
        self.paths: list[Path] = []

    @Slot(QUrl)
    def open_url(self, url: QUrl) -> None:
        self.paths.append(Path(url.toLocalFile()))


def opened_by_the_desktop(action) -> list[Path]:
    """The local paths ``action`` asks the desktop to open, caught by Qt's own URL hook."""
    catcher = _UrlCatcher()
    QDesktopServices.setUrlHandler("file", catcher, "open_url")
    try:
        action()
    finally:
        QDesktopServices.unsetUrlHandler("file")
    return catcher.paths


@pytest.mark.slow
def test_exports_the_keypoints_of_the_run_as_json_and_csv(qtbot, window, clip, tmp_path) -> None:
    with qtbot.waitSignal(window.worker.finished, timeout=RUN_TIMEOUT_MS):
        window.open_source(str(clip))
    json_path, csv_path = tmp_path / "kp.json", tmp_path / "kp.csv"
    for path in (json_path, csv_path):
        with qtbot.waitSignal(window.worker.exported, timeout=10_000):
            window.export_keypoints(str(path))
    data = json.loads(json_path.read_text())
    assert [f["frame_id"] for f in data["instance_info"]] == list(range(45))
    people = sum(len(f["instances"]) for f in data["instance_info"])
    rows = csv_path.read_text().splitlines()
    assert rows[0] == "frame,time_s,track_id,keypoint,x,y,score"
    assert len(rows) - 1 == people * 17


@pytest.mark.slow
def test_switching_backend_cpu_to_openvino_while_playing_loses_no_frame(
    qtbot, window, clip, tmp_path
) -> None:
    pytest.importorskip("openvino")
    window.open_source(str(clip))
    wait_frames(qtbot, window, 1)
    window.show_settings()
    dialog = window.settings_dialog
    assert dialog.backend_buttons["cpu"].isChecked()
    dialog.backend_buttons["openvino"].click()  # applies live, no reopening
    qtbot.waitUntil(lambda: "OpenVINO" in window.backend_label.text(), timeout=RUN_TIMEOUT_MS)
    shown_at_switch = window.frames_shown
    # The dialog hears of the switch through the worker's runtime signal, which a frame already
    # painted on the new backend may precede on a busy machine: wait for it, do not race it.
    qtbot.waitUntil(lambda: "OpenVINO" in dialog.running_label.text(), timeout=RUN_TIMEOUT_MS)
    with qtbot.waitSignal(window.worker.finished, timeout=RUN_TIMEOUT_MS):
        pass
    assert window.frames_shown > shown_at_switch  # frames kept coming on the new backend
    assert window.backend_label.text().startswith("openvino · OpenVINO CPU")
    with qtbot.waitSignal(window.worker.exported, timeout=10_000):
        window.export_keypoints(str(tmp_path / "kp.json"))
    frames = json.loads((tmp_path / "kp.json").read_text())["instance_info"]
    assert [f["frame_id"] for f in frames] == list(range(45))  # none lost in the switch
    dialog.accept()
    assert window.store.load().backend == "openvino"


def test_settings_survive_a_restart_of_the_app(qtbot, make_window) -> None:
    window = make_window()
    window.show_settings()
    dialog = window.settings_dialog
    dialog.kpt_thr.setValue(0.55)
    dialog.draw_style.setCurrentIndex(dialog.draw_style.findData("openpose"))
    dialog.show_boxes.setChecked(False)
    dialog.accept()
    window.close()

    again = make_window()
    assert (again.settings.kpt_thr, again.settings.draw_style, again.settings.show_boxes) == (
        0.55,
        "openpose",
        False,
    )


def test_corrupt_file_shows_its_message_and_the_app_stays_usable(
    qtbot, window, clip, tmp_path
) -> None:
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(clip.read_bytes()[:64] + os.urandom(4096))  # a header, then noise
    with qtbot.waitSignal(window.worker.failed, timeout=RUN_TIMEOUT_MS):
        window.open_source(str(broken))
    assert "broken.mp4" in window.banner.text()
    window.open_source(str(clip))
    wait_frames(qtbot, window, 1)
    assert window.banner.text() == ""  # a new source clears the old message


def test_missing_file_shows_its_message(qtbot, window, tmp_path) -> None:
    window.open_source(str(tmp_path / "nowhere.mp4"))
    assert "does not exist" in window.banner.text()


def test_model_failing_to_load_live_keeps_the_old_one_running(
    qtbot, window, clip, tmp_path
) -> None:
    not_a_model = tmp_path / "not_a_model.onnx"
    not_a_model.write_text("this is not an ONNX file")
    window.open_source(str(clip))
    wait_frames(qtbot, window, 1)
    with qtbot.waitSignal(window.worker.warning, timeout=RUN_TIMEOUT_MS) as warned:
        window.apply_settings(window.settings.replace(model=str(not_a_model)))
    assert "not_a_model.onnx" in warned.args[0]
    assert window.banner.isVisible() and window.banner.level == "warning"
    wait_frames(qtbot, window, 2)  # still playing on the previous model


def test_switching_to_a_shipped_model_live_names_it_and_keeps_playing(qtbot, window, clip) -> None:
    window.open_source(str(clip))
    wait_frames(qtbot, window, 1)
    window.apply_settings(window.settings.replace(model="movenet-lightning"))
    qtbot.waitUntil(
        lambda: window.backend_label.text().endswith("· movenet-lightning"),
        timeout=RUN_TIMEOUT_MS,
    )
    wait_frames(qtbot, window, 2)  # frames keep coming on the new model


def test_unavailable_backend_falls_back_and_says_so(qtbot, window, clip) -> None:
    from hfpose.engine.runtime.discovery import available_backends

    if next(b for b in available_backends() if b.name == "gpu").available:
        pytest.skip("this machine has a GPU backend: nothing to fall back from")
    window.settings = window.settings.replace(backend="gpu")
    with qtbot.waitSignal(window.worker.warning, timeout=RUN_TIMEOUT_MS) as warned:
        window.open_source(str(clip))
    assert "'gpu' is not available" in warned.args[0]
    assert "fallback from gpu" in window.backend_label.text()


def test_unplugged_camera_shows_its_message_and_keeps_the_recording_fake_camera(
    qtbot, window, clip, monkeypatch
) -> None:
    monkeypatch.setattr(
        worker_module,
        "open_source",
        lambda spec: FakeCamera(clip, unplug_after=90, spec="webcam:7"),
    )
    window.open_source("webcam:7")
    wait_frames(qtbot, window, 1)
    assert not window.seek_slider.isEnabled()  # live: nothing to seek
    with qtbot.waitSignal(window.worker.recording_started, timeout=RUN_TIMEOUT_MS):
        window.toggle_record()
    with qtbot.waitSignal(window.worker.recording_stopped, timeout=RUN_TIMEOUT_MS) as stopped:
        pass
    assert "unplugged" in window.banner.text()
    frames, _, _ = frame_count_and_duration(Path(stopped.args[0]))
    assert frames >= 1  # everything recorded before the unplug is in a playable file
    assert window.open_action.isEnabled() and window.record_action.isEnabled()


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE is POSIX")
def test_disk_full_while_recording_stops_the_recording_not_the_video(
    qtbot, window, data_dir
) -> None:
    import resource

    # A file-size limit makes the recording's writes fail as on a full disk (EFBIG, not
    # ENOSPC); everything else this test writes is far below the limit.
    clip = data_dir / "videos" / "intel_asl_walk_1s5.mp4"
    previous_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    try:
        window.open_source(str(clip))
        wait_frames(qtbot, window, 1)
        window.worker.pause()
        with qtbot.waitSignal(window.worker.recording_started, timeout=RUN_TIMEOUT_MS) as rec:
            window.toggle_record()
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, hard))
        with qtbot.waitSignal(window.worker.failed, timeout=RUN_TIMEOUT_MS) as failed:
            window.worker.play()
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        assert failed.args[0].startswith("Recording stopped:")
        assert "File too large" in failed.args[0] and rec.args[0] in failed.args[0]
        qtbot.waitUntil(lambda: not window.record_indicator.isVisible(), timeout=10_000)
        with qtbot.waitSignal(window.worker.finished, timeout=RUN_TIMEOUT_MS):
            pass  # the video itself plays on to its end
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous_handler)
    assert Path(rec.args[0]).stat().st_size > 0  # what was written stays on disk


@pytest.mark.slow
def test_keyboard_space_right_s_f_esc(qtbot, window, clip) -> None:
    window.open_source(str(clip))
    wait_frames(qtbot, window, 1)
    qtbot.keyClick(window.view, Qt.Key.Key_Space)
    assert not window.worker.playing
    wait_until_still(qtbot, window)  # frames already inside the pipeline drain
    shown = window.frames_shown
    qtbot.keyClick(window.view, Qt.Key.Key_Right)
    qtbot.waitUntil(lambda: window.frames_shown == shown + 1, timeout=RUN_TIMEOUT_MS)

    with qtbot.waitSignal(window.worker.snapshot_saved, timeout=10_000) as saved:
        qtbot.keyClick(window.view, Qt.Key.Key_S)
    assert Path(saved.args[0]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    qtbot.keyClick(window.view, Qt.Key.Key_F)
    assert window.full_screen_action.isChecked() and not window.toolbar.isVisible()
    qtbot.keyClick(window.view, Qt.Key.Key_Escape)
    assert not window.full_screen_action.isChecked() and window.toolbar.isVisible()

    qtbot.keyClick(window.view, Qt.Key.Key_Space)
    assert window.worker.playing


def test_dropping_a_file_opens_it_and_adds_it_to_recent_files(qtbot, window, clip) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(clip))])
    drop = QDropEvent(
        QPointF(10, 10),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    window.dropEvent(drop)
    wait_frames(qtbot, window, 1)
    assert window.store.recent_files()[0] == str(clip.resolve())
    window._fill_recent_menu()
    assert clip.name in [a.text() for a in window.recent_menu.actions()]


def test_closing_the_window_finalises_the_recording_and_stops_every_thread(
    qtbot, window, clip
) -> None:
    window.open_source(str(clip))
    wait_frames(qtbot, window, 1)
    with qtbot.waitSignal(window.worker.recording_started, timeout=RUN_TIMEOUT_MS) as rec:
        window.toggle_record()
    wait_frames(qtbot, window, 2)
    window.close()  # waits at most a second for the engine

    def no_thread_left() -> bool:
        return not [t for t in threading.enumerate() if t.name.startswith("hfpose-")]

    qtbot.waitUntil(no_thread_left, timeout=1000)
    frames, _, _ = frame_count_and_duration(Path(rec.args[0]))
    assert frames >= 2


@pytest.mark.slow
def test_project_checkpoint_with_its_config_runs_in_torch(qtbot, window, clip, tmp_path) -> None:
    torch = pytest.importorskip("torch")
    from hfpose.models.config import load_config
    from hfpose.models.hf_hrnet import build_model

    config = Path(__file__).resolve().parents[1] / "models/configs/hf_hrnet_18_coco_256x192.yaml"
    checkpoint = tmp_path / "hf_hrnet_18.pth"
    torch.save(build_model(load_config(str(config))).state_dict(), checkpoint)
    window.open_source(str(clip))
    wait_frames(qtbot, window, 1)
    window.apply_settings(
        window.settings.replace(backend="torch", model=str(checkpoint), model_config=str(config))
    )
    qtbot.waitUntil(lambda: window.backend_label.text().startswith("torch"), timeout=60_000)
    wait_frames(qtbot, window, 1)
    assert window.backend_label.text() == "torch · PyTorch cpu · hf_hrnet_18"  # names the model
    window.close()
    # A torch forward pass cannot be interrupted: let it end before the interpreter does.
    qtbot.waitUntil(
        lambda: not [t for t in threading.enumerate() if t.name.startswith("hfpose-")],
        timeout=RUN_TIMEOUT_MS,
    )


def test_clicking_the_seek_bar_jumps_there(qtbot, window, clip) -> None:
    window.open_source(str(clip))
    wait_frames(qtbot, window, 1)
    window.worker.pause()
    slider = window.seek_slider
    point = QPoint(round(slider.width() * 0.8), slider.height() // 2)
    qtbot.mouseClick(slider, Qt.MouseButton.LeftButton, pos=point)
    # Paused: the frame at the new position is decoded, processed and shown.
    qtbot.waitUntil(lambda: window.last_update.time_s > 1.0, timeout=RUN_TIMEOUT_MS)
    assert not window.worker.playing


def test_a_busy_gui_skips_to_the_newest_frame_fake_camera(qtbot, window, clip, monkeypatch) -> None:
    monkeypatch.setattr(worker_module, "open_source", lambda spec: FakeCamera(clip))
    window.open_source("webcam:7")
    wait_frames(qtbot, window, 1)
    shown_index = window.last_update.frame_index
    shown = window.frames_shown
    # The GUI thread is busy (no event processing) while the engine delivers 3 more frames.
    deadline = time.monotonic() + RUN_TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        time.sleep(0.05)
        newest = window.worker._mailbox._update  # peeked from this test only
        if newest is not None and newest.frame_index >= shown_index + 3:
            break
    qtbot.wait(20)
    # One paint for the whole busy spell, and it is the newest frame, not the oldest waiting.
    assert window.frames_shown <= shown + 2
    assert window.last_update.frame_index >= shown_index + 3


def test_camera_menu_lists_cameras_by_name_and_opens_one_fake_camera(
    qtbot, window, clip, monkeypatch
) -> None:
    from hfpose.engine.sources.opening import CameraInfo

    cameras = [CameraInfo(3, "Integrated Webcam", "/dev/video3")]
    monkeypatch.setattr(worker_module, "list_cameras", lambda: cameras)
    opened: list[str] = []

    def fake_open_source(spec: str) -> FakeCamera:
        opened.append(spec)
        return FakeCamera(clip, spec=spec)

    monkeypatch.setattr(worker_module, "open_source", fake_open_source)
    with qtbot.waitSignal(window.worker.cameras_found, timeout=10_000):
        window.camera_menu.aboutToShow.emit()
    action = next(a for a in window.camera_menu.actions() if "Integrated Webcam" in a.text())
    action.trigger()
    wait_frames(qtbot, window, 1)
    assert opened == ["webcam:3"]
    assert window.windowTitle() == "Integrated Webcam — hfpose"
    assert window.source_label.text().endswith("live")


def test_opens_a_video_file_over_http_as_a_file(qtbot, window, data_dir) -> None:
    """http.server announces the clip's length: a file (not live), but without range requests
    it cannot jump, so the seek slider stays off."""
    import functools
    import http.server

    class QuietHandler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    handler = functools.partial(QuietHandler, directory=str(data_dir / "videos"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/{CLIP}"
        with qtbot.waitSignal(window.worker.finished, timeout=RUN_TIMEOUT_MS):
            window.open_source(url)
        assert window.frames_shown >= 1
        assert "live" not in window.source_label.text()
        assert window.source_info.kind == "file" and not window.source_info.is_live
        assert not window.seek_slider.isEnabled()
    finally:
        server.shutdown()


def test_recording_to_an_unusable_folder_says_why_and_keeps_playing(
    qtbot, window, clip, tmp_path
) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("a file where the recordings folder should be")
    window.open_source(str(clip))
    wait_frames(qtbot, window, 1)
    window.apply_settings(window.settings.replace(record_dir=str(blocker / "recordings")))
    with qtbot.waitSignal(window.worker.failed, timeout=RUN_TIMEOUT_MS) as failed:
        qtbot.keyClick(window.view, Qt.Key.Key_R)
    assert failed.args[0].startswith("Cannot record:") and "a_file" in failed.args[0]
    assert not window.record_indicator.isVisible() and not window.record_action.isChecked()
    wait_frames(qtbot, window, 1)


@pytest.mark.slow
def test_hfpose_command_opens_the_clip_given_and_exits_cleanly(
    qtbot, tmp_path, pose_model, clip
) -> None:
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from hfpose.app import app as app_module

    # The command reads the user's settings: point QSettings at a temporary home for them.
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path))
    SettingsStore().save(
        AppSettings().replace(model=str(pose_model), record_dir=str(tmp_path / "rec"))
    )
    seen: dict[str, str] = {}
    deadline = time.monotonic() + RUN_TIMEOUT_MS / 1000

    def look_then_close() -> None:
        window = next(w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow))
        if window.frames_shown == 0 and time.monotonic() < deadline:
            QTimer.singleShot(100, look_then_close)
            return
        seen.update(title=window.windowTitle(), backend=window.backend_label.text())
        window.close()

    QTimer.singleShot(100, look_then_close)
    assert app_module.main([str(clip), "--backend", "openvino"]) == 0
    assert seen["title"] == f"{CLIP} — hfpose"
    assert seen["backend"].startswith("openvino")
    assert SettingsStore().load().backend == "openvino"  # remembered


def test_a_one_image_folder_plays_and_ends(qtbot, window, clip, tmp_path) -> None:
    import cv2

    folder = tmp_path / "one_image"
    folder.mkdir()
    with VideoFileSource(clip) as video:
        cv2.imwrite(str(folder / "frame.png"), video.read().image)
    with qtbot.waitSignal(window.worker.finished, timeout=RUN_TIMEOUT_MS):
        window.open_source(str(folder))
    qtbot.waitUntil(lambda: window.frames_shown == 1, timeout=10_000)
    assert not window.worker.playing and window.play_action.text() == "&Play"


@pytest.mark.slow
def test_the_screenshots_script_renders_the_window_and_the_dialog_of_today(
    qtbot, tmp_path, pose_model, data_dir, monkeypatch
) -> None:
    from PySide6.QtGui import QImage
    from PySide6.QtWidgets import QApplication

    from hfpose.app import screenshots
    from hfpose.app.settings_dialog import SettingsDialog
    from hfpose.engine.runtime.discovery import available_backends

    recording_when_taken: list[bool] = []
    save = screenshots._save

    def save_noting_the_recording(image, path: Path, palette_colours: bool) -> None:
        if path.name == "screenshot_main.png":
            shown = QApplication.topLevelWidgets()
            window = next(w for w in shown if isinstance(w, MainWindow) and w.isVisible())
            recording_when_taken.append(window.record_indicator.isVisible())
        save(image, path, palette_colours)

    monkeypatch.setattr(screenshots, "_save", save_noting_the_recording)
    clip = data_dir / "videos" / "mmpose_demo_street.mp4"
    assert screenshots.render(clip, pose_model, tmp_path, screenshots.SHOWN_FRAMES) == 0
    # the README's picture is of the app recording (was: on a machine slower than the clip's
    # frame rate, taken after the five-frame clip had ended and its recording was saved)
    assert recording_when_taken == [True]
    main = QImage(str(tmp_path / "screenshot_main.png"))
    assert (main.width(), main.height()) == screenshots.WINDOW_SIZE
    dialog = SettingsDialog(AppSettings(), available_backends())
    qtbot.addWidget(dialog)
    settings = QImage(str(tmp_path / "screenshot_settings.png"))
    assert (settings.width(), settings.height()) == (
        dialog.sizeHint().width(),
        dialog.sizeHint().height(),
    )
