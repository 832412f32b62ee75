"""Render the README's screenshots of the app: the main window playing a clip, the settings,
and (``--angles``) the angle plot beside a clip with the angle values drawn on the video.

``python -m hfpose.app.screenshots [--clip VIDEO] [--model MODEL.onnx] [--out docs] [--angles]``

Runs offscreen (no display needed) on the real window and the real pipeline, with settings kept
in a temporary file so a user's own settings are never touched. The keypoint model defaults to
the shipped one; skeletons only look right with trained weights, so re-run this whenever the
shipped model changes.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from hfpose.app.platform_check import offscreen_unless_display
from hfpose.models.package_data import checkout_root

# A source checkout's clip and docs folder; from a wheel --clip and --out are needed.
REPO_ROOT = checkout_root()
DEFAULT_CLIP = (
    REPO_ROOT / "tests" / "data" / "videos" / "mmpose_demo_street.mp4" if REPO_ROOT else None
)
WINDOW_SIZE = (1180, 760)
# Written at this width: sharp enough for a README, small enough for git.
MAX_WIDTH = 1180
# Frames recorded before the main picture is taken: people are drawn from the third frame that
# shows them on (a new track needs three in a row).
SHOWN_FRAMES = 4


def _wait(app, condition: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        app.processEvents()
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def _save(image, path: Path, palette_colours: bool) -> None:
    """PNG at most MAX_WIDTH wide; ``palette_colours``: 256 dithered colours, half the bytes
    of a video frame's full colour at no visible cost at README size."""
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QImage

    if image.width() > MAX_WIDTH:
        image = image.scaledToWidth(MAX_WIDTH, Qt.TransformationMode.SmoothTransformation)
    if palette_colours:
        image = image.convertToFormat(
            QImage.Format.Format_Indexed8, Qt.ImageConversionFlag.DiffuseDither
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    if not image.save(str(path), "PNG", 9):
        raise OSError(f"cannot write {path}")
    print(f"wrote {path} ({image.width()}x{image.height()}, {path.stat().st_size // 1024} KiB)")


def render_angles(window, app, clip: Path, out_dir: Path, shown_frames: int) -> int:
    """The window with the angle plot open and the angle values on the video, after the
    plot has taken ``shown_frames`` frames of ``clip``."""
    from PySide6.QtCore import Qt

    window.apply_settings(window.settings.replace(show_angles=True))
    dock = window.angle_dock
    dock.show()
    window.resizeDocks([dock], [500], Qt.Orientation.Horizontal)
    window.open_source(str(clip))
    if not _wait(app, lambda: dock.frames_fed >= shown_frames, 600):
        print(f"screenshots: {dock.frames_fed} of {shown_frames} frames in 600 s", file=sys.stderr)
        window.close()
        return 1
    window.worker.pause()
    _wait(app, lambda: False, 0.5)
    _save(window.grab().toImage(), out_dir / "screenshot_angles.png", palette_colours=True)
    window.close()
    return 0


def render(
    clip: Path, model: str | None, out_dir: Path, shown_frames: int, angles: bool = False
) -> int:
    from PySide6.QtCore import QSettings

    from hfpose.app.app import create_application
    from hfpose.app.settings import AppSettings, SettingsStore

    app = create_application()
    from hfpose.app.main_window import MainWindow

    with tempfile.TemporaryDirectory(prefix="hfpose-shots-") as scratch:
        store = SettingsStore(
            QSettings(str(Path(scratch) / "hfpose.ini"), QSettings.Format.IniFormat)
        )
        store.save(
            AppSettings().replace(backend="cpu", model=model, record_dir=str(Path(scratch) / "rec"))
        )
        store.add_recent_file(str(clip))
        window = MainWindow(store)
        window.resize(*WINDOW_SIZE)
        window.show()
        if angles:
            return render_angles(window, app, clip, out_dir, shown_frames)
        errors: list[str] = []
        ended: list[bool] = []
        window.worker.failed.connect(errors.append)
        window.worker.finished.connect(lambda: ended.append(True))
        window.open_source(str(clip))
        if not _wait(app, lambda: ended or errors, 300):
            print("screenshots: the clip did not end within 300 s", file=sys.stderr)
            return 1
        if errors:
            print(f"screenshots: {errors[0]}", file=sys.stderr)
            return 1
        # Recording a clip that has ended plays it again from its start: the picture is taken
        # as the recording's frames come, whatever the machine's speed. (A pause holds only the
        # source: on a machine slower than the clip's frame rate, the frames already read kept
        # coming, and the short clip ended, its recording saved, before the picture.)
        window.toggle_record()
        _wait(app, lambda: window.record_indicator.isVisible(), 120)
        window.statusBar().clearMessage()  # "End of the video" was the first play's
        target = window.frames_shown + shown_frames
        _wait(app, lambda: window.frames_shown >= target, 120)
        _save(window.grab().toImage(), out_dir / "screenshot_main.png", palette_colours=True)

        window.show_settings()
        dialog = window.settings_dialog
        dialog.resize(dialog.sizeHint())
        _wait(app, lambda: False, 0.3)
        _save(dialog.grab().toImage(), out_dir / "screenshot_settings.png", palette_colours=False)
        dialog.accept()
        window.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hfpose.app.screenshots", description=__doc__)
    parser.add_argument("--clip", type=Path, default=DEFAULT_CLIP, help="video to play")
    parser.add_argument("--model", help="keypoint model (default: the shipped one)")
    default_out = REPO_ROOT / "docs" if REPO_ROOT else None
    parser.add_argument("--out", type=Path, default=default_out, help="output folder")
    parser.add_argument(
        "--frames",
        type=int,
        default=SHOWN_FRAMES,
        help="frames recorded before the picture is taken",
    )
    parser.add_argument(
        "--angles",
        action="store_true",
        help="the angle plot's screenshot instead (play 100+ frames)",
    )
    args = parser.parse_args(argv)
    if args.clip is None or args.out is None:
        parser.error("outside a source checkout, give --clip and --out")
    if not args.clip.is_file():
        parser.error(f"clip not found: {args.clip}")
    offscreen_unless_display()
    return render(args.clip, args.model, args.out, args.frames, args.angles)


if __name__ == "__main__":
    sys.exit(main())
