"""``hfpose``: the desktop app's entry point (application object, look, command line).

Qt's GUI modules are imported inside the functions, after :mod:`hfpose.app.platform_check` has
made sure they can load: a missing system library then gets a message with the command that
installs it instead of a traceback or Qt's abort.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from hfpose.app.binding_check import binding_problem
from hfpose.app.malloc_arenas import cap_malloc_arenas
from hfpose.app.platform_check import display_problem
from hfpose.app.setting_args import add_deprecated_device_alias
from hfpose.engine.config import SETTINGS

if TYPE_CHECKING:
    from PySide6.QtGui import QPalette
    from PySide6.QtWidgets import QApplication


def dark_palette() -> QPalette:
    """A dark theme: video tools are dark so the picture, not the chrome, stands out."""
    from PySide6.QtGui import QColor, QPalette

    palette = QPalette()
    role, group = QPalette.ColorRole, QPalette.ColorGroup
    colours = {
        role.Window: QColor(37, 38, 42),
        role.WindowText: QColor(225, 226, 230),
        role.Base: QColor(26, 27, 30),
        role.AlternateBase: QColor(42, 43, 48),
        role.ToolTipBase: QColor(50, 52, 58),
        role.ToolTipText: QColor(230, 230, 235),
        role.Text: QColor(225, 226, 230),
        role.Button: QColor(48, 50, 56),
        role.ButtonText: QColor(225, 226, 230),
        role.BrightText: QColor(255, 90, 90),
        role.Highlight: QColor(58, 120, 200),
        role.HighlightedText: QColor(255, 255, 255),
        role.Link: QColor(100, 160, 240),
        role.PlaceholderText: QColor(130, 132, 140),
    }
    for r, colour in colours.items():
        palette.setColor(r, colour)
    for r in (role.WindowText, role.Text, role.ButtonText, role.Light):
        palette.setColor(group.Disabled, r, QColor(110, 112, 118))
    return palette


def create_application(argv: Sequence[str] | None = None) -> QApplication:
    """The QApplication with the names QSettings uses and the app's look (idempotent).

    Before any of the app's threads, glibc's malloc gets its arena cap: the app runs source
    after source, each in threads of its own (:mod:`hfpose.app.malloc_arenas`).
    """
    cap_malloc_arenas()
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication
    from PySide6.QtWidgets import QApplication

    from hfpose.app.settings import APPLICATION, ORGANISATION

    existing = QApplication.instance()
    if isinstance(existing, QApplication):
        app = existing
    else:
        # Pass fractional scale factors (e.g. 150 %) through untouched so frames stay sharp.
        QGuiApplication.setHighDpiScaleFactorRoundingPolicy(
            Qt.HighDpiScaleFactorRoundingPolicy.PassThrough
        )
        app = QApplication(list(argv) if argv is not None else sys.argv[:1])
    app.setOrganizationName(ORGANISATION)
    app.setApplicationName(APPLICATION)
    app.setApplicationDisplayName("hfpose")
    app.setStyle("Fusion")
    app.setPalette(dark_palette())
    from hfpose.app.widgets import app_icon  # QPixmap needs the application first

    app.setWindowIcon(app_icon())
    return app


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="hfpose", description="Real-time human pose estimation with HF-HRNet (desktop app)."
    )
    parser.add_argument(
        "source",
        nargs="?",
        help="a video file, webcam:N or an rtsp:// / http:// stream to open at start",
    )
    parser.add_argument(
        "--backend",
        choices=SETTINGS["backend"].choices,
        help="backend to run on (remembered, as if chosen in the settings dialog)",
    )
    add_deprecated_device_alias(parser)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    problem = display_problem() or binding_problem()
    if problem:
        print(problem, file=sys.stderr)
        return 1
    from PySide6.QtCore import QTimer

    app = create_application()
    from hfpose.app.main_window import MainWindow  # after QApplication: widgets need it

    window = MainWindow()
    if args.backend:
        window.apply_settings(window.settings.replace(backend=args.backend))
    window.show()
    if args.source:
        window.open_source(args.source)

    # Ctrl+C in the terminal closes the window properly (recording finalised) instead of
    # killing the process; the timer lets the interpreter run its signal handlers.
    previous_handler = signal.signal(signal.SIGINT, lambda *_: window.close())
    heartbeat = QTimer()
    heartbeat.start(200)
    heartbeat.timeout.connect(lambda: None)
    try:
        code = app.exec()
    finally:
        heartbeat.stop()
        signal.signal(signal.SIGINT, previous_handler)
    window.worker.finish_pending_io()
    # The window has stopped the engine and finalised the recording. A stage still inside a
    # long inference call cannot be interrupted; leaving through the interpreter's shutdown
    # while it runs aborts the process, so leave directly once the output is flushed.
    if not engine_threads_ended(grace_s=2.0):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def engine_threads_ended(grace_s: float) -> bool:
    """Give the engine's threads ``grace_s`` to end; True when none is left."""
    deadline = time.monotonic() + grace_s
    for thread in threading.enumerate():
        if thread.name.startswith("hfpose-"):
            thread.join(max(0.0, deadline - time.monotonic()))
    return not any(t.name.startswith("hfpose-") and t.is_alive() for t in threading.enumerate())


if __name__ == "__main__":
    sys.exit(main())
