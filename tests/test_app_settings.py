"""The app's settings: QSettings persistence, the dialog's live apply, Cancel and defaults."""

from __future__ import annotations

import os
from dataclasses import fields
from pathlib import Path
from typing import get_type_hints

import pytest
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QLabel

pytest.importorskip("pytestqt")

from hfpose.app.settings import AppSettings, SettingsStore  # noqa: E402
from hfpose.app.settings_dialog import SettingsDialog  # noqa: E402
from hfpose.engine.config import SETTINGS, declared_settings  # noqa: E402
from hfpose.engine.runtime.discovery import BackendStatus, available_backends  # noqa: E402


def store_at(path: Path) -> SettingsStore:
    return SettingsStore(QSettings(str(path), QSettings.Format.IniFormat))


def test_app_settings_hold_every_declared_setting_with_its_type_and_default() -> None:
    """AppSettings spells its fields out for type checkers; they must stay the declarations'."""
    types = get_type_hints(AppSettings)
    engine_fields = [f for f in fields(AppSettings) if f.name in SETTINGS]
    assert [f.name for f in engine_fields] == [s.name for s in declared_settings()]
    for spec in declared_settings():
        assert types[spec.name] == spec.type, spec.name
        assert getattr(AppSettings(), spec.name) == spec.default, spec.name


def test_settings_survive_a_restart(tmp_path: Path) -> None:
    ini = tmp_path / "hfpose.ini"
    changed = AppSettings().replace(
        backend="openvino",
        kpt_thr=0.45,
        smoothing="kalman",
        show_boxes=False,
        radius=7,
        record_dir=str(tmp_path / "rec"),
    )
    store_at(ini).save(changed)
    assert store_at(ini).load() == changed  # a fresh QSettings object reads the file back


def test_unreadable_values_fall_back_to_defaults(tmp_path: Path) -> None:
    ini = tmp_path / "hfpose.ini"
    ini.write_text(
        "[settings]\nbackend=quantum\nradius=seven\nshow_hud=maybe\nkpt_thr=0.5\n",
        encoding="utf-8",
    )
    loaded = store_at(ini).load()
    defaults = AppSettings()
    assert (loaded.backend, loaded.radius, loaded.show_hud) == (
        defaults.backend,
        defaults.radius,
        defaults.show_hud,
    )
    assert loaded.kpt_thr == 0.5


def test_recent_files_most_recent_first_without_duplicates(tmp_path: Path) -> None:
    store = store_at(tmp_path / "hfpose.ini")
    for name in ("a.mp4", "b.mp4", "a.mp4", "c.mp4"):
        store.add_recent_file(str(tmp_path / name))
    assert [Path(p).name for p in store_at(tmp_path / "hfpose.ini").recent_files()] == [
        "c.mp4",
        "a.mp4",
        "b.mp4",
    ]


def test_restore_defaults_forgets_saved_settings(tmp_path: Path) -> None:
    store = store_at(tmp_path / "hfpose.ini")
    store.save(AppSettings().replace(max_persons=3))
    assert store.restore_defaults() == AppSettings()
    assert store.load() == AppSettings()


def test_dialog_applies_each_change_live_and_cancel_takes_it_back(qtbot) -> None:
    initial = AppSettings().replace(backend="cpu")
    dialog = SettingsDialog(initial, available_backends())
    qtbot.addWidget(dialog)
    seen: list[AppSettings] = []
    dialog.settings_changed.connect(seen.append)

    dialog.kpt_thr.setValue(0.6)
    dialog.backend_buttons["openvino"].click()
    dialog.smoothing.setCurrentIndex(dialog.smoothing.findData("kalman"))
    assert [s.kpt_thr for s in seen] == [0.6, 0.6, 0.6]
    assert seen[-1].backend == "openvino" and seen[-1].smoothing == "kalman"

    dialog.reject()
    assert seen[-1] == initial


def test_dialog_disables_unavailable_backends_with_their_reason(qtbot) -> None:
    backends = [
        BackendStatus("cpu", True, "ONNX Runtime CPUExecutionProvider"),
        BackendStatus("gpu", False, "", "not available: onnxruntime-gpu is not installed"),
    ]
    dialog = SettingsDialog(AppSettings().replace(backend="gpu"), backends)
    qtbot.addWidget(dialog)
    assert not dialog.backend_buttons["gpu"].isEnabled()
    assert dialog.backend_buttons["cpu"].isChecked()  # the stored choice cannot run here
    texts = [label.text() for label in dialog.findChildren(QLabel)]
    assert "not available: onnxruntime-gpu is not installed" in texts


def test_dialog_lists_the_shipped_models_and_accepts_a_file(qtbot, tmp_path: Path) -> None:
    dialog = SettingsDialog(AppSettings().replace(model="movenet-lightning"), [])
    qtbot.addWidget(dialog)
    assert dialog.model_buttons["movenet-lightning"].isChecked()
    texts = [label.text() for label in dialog.findChildren(QLabel)]
    assert any("Apache-2.0" in t and "ms/person" in t for t in texts)  # one line per model
    seen: list[AppSettings] = []
    dialog.settings_changed.connect(seen.append)
    dialog.model_buttons["movenet-thunder"].click()
    dialog.model_buttons["hf-hrnet"].click()
    assert [s.model for s in seen] == ["movenet-thunder", None]  # None: the default
    dialog.model_custom.click()
    dialog.model_path.set_text(str(tmp_path / "rtmpose.onnx"))
    assert dialog.settings().model == str(tmp_path / "rtmpose.onnx")


def test_dialog_restore_defaults_button(qtbot) -> None:
    dialog = SettingsDialog(AppSettings().replace(radius=9, show_ids=False), available_backends())
    qtbot.addWidget(dialog)
    seen: list[AppSettings] = []
    dialog.settings_changed.connect(seen.append)
    dialog.restore_button.click()
    assert seen[-1] == AppSettings()
    assert dialog.radius.value() == AppSettings().radius and dialog.show_ids.isChecked()


def test_drawing_settings_reach_the_renderer() -> None:
    import numpy as np

    from hfpose.app.worker import pipeline_config
    from hfpose.engine.output.rendering import Renderer
    from hfpose.engine.results import Person

    person = Person(
        keypoints=np.tile(np.float32([[100.0, 100.0]]), (17, 1)),
        keypoint_scores=np.ones(17, np.float32),
        bbox=np.float32([50, 50, 150, 150]),
    )
    frame = np.zeros((480, 640, 3), np.uint8)

    def painted_width(settings: AppSettings) -> int:
        config = pipeline_config("", settings)
        image = Renderer(config.render, kpt_thr=config.kpt_thr).render(frame, [person])
        return int(np.count_nonzero(image[100, :, :].any(axis=1)))

    plain = AppSettings().replace(show_boxes=False, show_ids=False, show_hud=False)
    assert painted_width(plain.replace(radius=12)) > painted_width(plain) + 10
    assert painted_width(plain.replace(show_boxes=True, radius=12)) > painted_width(
        plain.replace(radius=12)
    )  # the box's sides cross row 100 too


@pytest.mark.parametrize(("name", "muxer"), [("a.mkv", "matroska"), ("a.mp4", "mp4")])
def test_recordings_use_the_container_their_name_says(tmp_path: Path, data_dir, name, muxer):
    import av

    from hfpose.app.recording import video_sink
    from hfpose.engine.results import FrameResult
    from hfpose.engine.sources.video_file import VideoFileSource

    # The settings say the other container: the chosen file name wins.
    other = "mp4" if muxer == "matroska" else "mkv"
    sink = video_sink(str(tmp_path / name), AppSettings().replace(container=other))
    with VideoFileSource(data_dir / "videos" / "intel_asl_please_1s5_tone.mp4") as source:
        sink.open(source.info)
        for frame in source:
            sink.write(FrameResult(frame.index, frame.timestamp, frame.image, frame.image, []))
    sink.close()
    with av.open(str(tmp_path / name)) as written:
        assert muxer in written.format.name
        assert sum(1 for _ in written.decode(video=0)) == 45
        assert len(written.streams.audio) == 1  # the source's sound came along


def test_video_view_keeps_the_aspect_ratio(qtbot) -> None:
    from PySide6.QtGui import QImage

    from hfpose.app.video_view import VideoView

    view = VideoView()
    qtbot.addWidget(view)
    view.resize(1000, 500)
    image = QImage(640, 480, QImage.Format.Format_RGB888)
    view.set_image(image)
    rect = view.image_rect()
    assert rect.height() == 500 and abs(rect.width() - 500 * 4 / 3) <= 1
    assert abs(rect.center().x() - 500) <= 1  # centred, bars left and right


HIDPI_PROBE = """
import numpy as np
from PySide6.QtWidgets import QApplication
app = QApplication([])
from hfpose.app.video_view import VideoView, bgr_to_qimage
view = VideoView()
view.resize(400, 300)
view.show()
frame = np.zeros((600, 800, 3), np.uint8)
frame[::2] = 255  # one-pixel stripes: any resampling would blur them to grey
view.set_image(bgr_to_qimage(frame))
app.processEvents()
shot = view.grab().toImage()
print(view.devicePixelRatioF(), [shot.pixelColor(400, y).red() for y in range(100, 106)])
"""


def test_video_view_is_pixel_exact_on_a_hidpi_screen() -> None:
    import subprocess
    import sys

    # A 2x screen: the 400x300 view has 800x600 device pixels, one per pixel of the frame.
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "QT_SCALE_FACTOR": "2"}
    out = subprocess.run(
        [sys.executable, "-c", HIDPI_PROBE], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.stdout.split("\n")[0] == "2.0 [255, 0, 255, 0, 255, 0]", out.stderr


def test_dialog_shows_every_line_of_the_backends_descriptions_at_its_smallest(qtbot) -> None:
    """The machine's real backends (their reasons run to two or three lines), the dialog made
    as small as it lets itself be."""
    from hfpose.app.setting_fields import WrappedLabel

    dialog = SettingsDialog(AppSettings(), available_backends())
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    dialog.resize(1, 1)
    qtbot.wait(50)
    labels = dialog.findChildren(WrappedLabel)
    assert len(labels) >= 7 and any(
        label.heightForWidth(label.width()) > 2 * label.fontMetrics().height() for label in labels
    ), "no description wraps: the dialog is not at its smallest"
    for label in labels:
        assert label.height() >= label.heightForWidth(label.width()), label.text()
