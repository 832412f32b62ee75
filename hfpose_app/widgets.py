"""Small widgets of the main window: the message banner, the recording indicator, icons."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QElapsedTimer, QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QIcon, QMouseEvent, QPainter, QPainterPath, QPen, QPixmap
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QStyle,
    QStyleOptionSlider,
    QToolButton,
    QWidget,
)


def format_time(seconds: float) -> str:
    """0:07.2 under an hour, 1:02:03 above: a video player's clock."""
    seconds = max(0.0, seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours >= 1:
        return f"{int(hours)}:{int(minutes):02d}:{int(secs):02d}"
    return f"{int(minutes)}:{secs:04.1f}"


def _icon(draw, size: int = 64) -> QIcon:
    """An icon painted at 64 px so it stays sharp when Qt scales it down on any screen."""
    pixmap = QPixmap(size, size)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    draw(painter, size)
    painter.end()
    return QIcon(pixmap)


def record_icon() -> QIcon:
    def draw(p: QPainter, s: int) -> None:
        p.setPen(QPen(QColor(90, 20, 20), s * 0.04))
        p.setBrush(QColor(220, 40, 40))
        p.drawEllipse(QRectF(s * 0.18, s * 0.18, s * 0.64, s * 0.64))

    return _icon(draw)


def snapshot_icon() -> QIcon:
    def draw(p: QPainter, s: int) -> None:
        p.setPen(QPen(QColor(70, 70, 80), s * 0.06))
        p.setBrush(QColor(200, 200, 210))
        p.drawRoundedRect(QRectF(s * 0.1, s * 0.28, s * 0.8, s * 0.54), s * 0.08, s * 0.08)
        p.drawRect(QRectF(s * 0.36, s * 0.18, s * 0.28, s * 0.12))
        p.setBrush(QColor(60, 120, 200))
        p.drawEllipse(QPointF(s * 0.5, s * 0.55), s * 0.16, s * 0.16)

    return _icon(draw)


def camera_icon() -> QIcon:
    def draw(p: QPainter, s: int) -> None:
        p.setPen(QPen(QColor(70, 70, 80), s * 0.06))
        p.setBrush(QColor(200, 200, 210))
        p.drawRoundedRect(QRectF(s * 0.08, s * 0.3, s * 0.56, s * 0.42), s * 0.08, s * 0.08)
        path = QPainterPath(QPointF(s * 0.66, s * 0.46))
        path.lineTo(s * 0.92, s * 0.32)
        path.lineTo(s * 0.92, s * 0.70)
        path.lineTo(s * 0.66, s * 0.56)
        path.closeSubpath()
        p.drawPath(path)

    return _icon(draw)


def stream_icon() -> QIcon:
    def draw(p: QPainter, s: int) -> None:
        p.setPen(QPen(QColor(60, 120, 200), s * 0.07))
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.drawEllipse(QPointF(s * 0.5, s * 0.5), s * 0.38, s * 0.38)
        p.drawEllipse(QPointF(s * 0.5, s * 0.5), s * 0.16, s * 0.38)
        p.drawLine(QPointF(s * 0.12, s * 0.5), QPointF(s * 0.88, s * 0.5))

    return _icon(draw)


def app_icon() -> QIcon:
    """A skeleton in the mmpose colours (left green, right orange, centre blue) on dark."""

    def draw(p: QPainter, s: int) -> None:
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(QColor(30, 32, 38))
        p.drawRoundedRect(QRectF(0, 0, s, s), s * 0.18, s * 0.18)
        u = s / 64
        joints = {
            "head": (32, 13), "neck": (32, 22), "hip": (32, 38),
            "l_hand": (47, 32), "r_hand": (17, 32), "l_elbow": (42, 25), "r_elbow": (22, 25),
            "l_knee": (39, 48), "r_knee": (25, 48), "l_foot": (42, 58), "r_foot": (22, 58),
        }  # fmt: skip
        limbs = [
            ("neck", "hip", QColor(51, 153, 255)),
            ("neck", "l_elbow", QColor(0, 255, 0)), ("l_elbow", "l_hand", QColor(0, 255, 0)),
            ("hip", "l_knee", QColor(0, 255, 0)), ("l_knee", "l_foot", QColor(0, 255, 0)),
            ("neck", "r_elbow", QColor(255, 128, 0)), ("r_elbow", "r_hand", QColor(255, 128, 0)),
            ("hip", "r_knee", QColor(255, 128, 0)), ("r_knee", "r_foot", QColor(255, 128, 0)),
        ]  # fmt: skip
        for a, b, colour in limbs:
            p.setPen(QPen(colour, 4 * u, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap))
            p.drawLine(QPointF(*joints[a]) * u, QPointF(*joints[b]) * u)
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(QColor(51, 153, 255))
        p.drawEllipse(QPointF(*joints["head"]) * u, 6 * u, 6 * u)

    return _icon(draw, 128)


_TRANSPORT_COLOUR = QColor(225, 226, 232)


def play_icon() -> QIcon:
    def draw(p: QPainter, s: int) -> None:
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(_TRANSPORT_COLOUR)
        p.drawPolygon([QPointF(s * 0.28, s * 0.18), QPointF(s * 0.82, s * 0.5),
                       QPointF(s * 0.28, s * 0.82)])  # fmt: skip

    return _icon(draw)


def pause_icon() -> QIcon:
    def draw(p: QPainter, s: int) -> None:
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(_TRANSPORT_COLOUR)
        p.drawRoundedRect(QRectF(s * 0.24, s * 0.2, s * 0.17, s * 0.6), s * 0.03, s * 0.03)
        p.drawRoundedRect(QRectF(s * 0.59, s * 0.2, s * 0.17, s * 0.6), s * 0.03, s * 0.03)

    return _icon(draw)


def stop_icon() -> QIcon:
    def draw(p: QPainter, s: int) -> None:
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(_TRANSPORT_COLOUR)
        p.drawRoundedRect(QRectF(s * 0.24, s * 0.24, s * 0.52, s * 0.52), s * 0.05, s * 0.05)

    return _icon(draw)


def step_icon() -> QIcon:
    def draw(p: QPainter, s: int) -> None:
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(_TRANSPORT_COLOUR)
        p.drawPolygon([QPointF(s * 0.2, s * 0.2), QPointF(s * 0.64, s * 0.5),
                       QPointF(s * 0.2, s * 0.8)])  # fmt: skip
        p.drawRect(QRectF(s * 0.66, s * 0.2, s * 0.14, s * 0.6))

    return _icon(draw)


class MessageBanner(QFrame):
    """A dismissable strip above the video: errors in red, notices in amber.

    Errors go here instead of modal boxes, so a camera unplugged mid-recording never blocks the
    window and the user still sees the last frame and every control. Saved files are said here
    too, with their whole path (it wraps; the status bar's fields cut it) and a button to open
    their folder.
    """

    STYLES = {
        "error": "background:#5c1a1a; color:#ffe5e5; border:1px solid #a33;",
        "warning": "background:#5a4712; color:#fff4d6; border:1px solid #b8922a;",
        "info": "background:#1d3b5c; color:#e3f0ff; border:1px solid #3a6ea5;",
    }

    dismissed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.level = ""
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.action_button = QPushButton()
        self.action_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.action_button.clicked.connect(self._run_action)
        self.action_button.hide()
        self._action: Callable[[], None] | None = None
        close = QToolButton()
        close.setText("✕")
        close.setAutoRaise(True)
        close.setToolTip("Dismiss")
        close.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        close.clicked.connect(self.dismiss)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 6, 6, 6)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.action_button, 0, Qt.AlignmentFlag.AlignTop)
        layout.addWidget(close, 0, Qt.AlignmentFlag.AlignTop)
        self.hide()

    def show_message(
        self,
        text: str,
        level: str = "error",
        action: tuple[str, Callable[[], None]] | None = None,
    ) -> None:
        """Show ``text``; ``action``: a button's title and what it does."""
        self.level = level
        self._action = action[1] if action else None
        self.action_button.setText(action[0] if action else "")
        self.action_button.setVisible(action is not None)
        self.setStyleSheet(f"MessageBanner {{{self.STYLES[level]} border-radius:4px;}}")
        self.label.setStyleSheet(f"color:{self.STYLES[level].split('color:')[1].split(';')[0]};")
        self.label.setText(text)
        self.show()

    def _run_action(self) -> None:
        if self._action is not None:
            self._action()

    def text(self) -> str:
        return self.label.text() if self.isVisible() else ""

    def dismiss(self) -> None:
        self.hide()
        self.dismissed.emit()


class RecordIndicator(QWidget):
    """A red dot and the elapsed time while recording; hidden otherwise."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.dot = QLabel("●")
        self.dot.setStyleSheet("color:#e02828; font-weight:bold;")
        self.time = QLabel("REC 0:00")
        self.time.setStyleSheet("color:#e02828; font-weight:bold;")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 0, 4, 0)
        layout.addWidget(self.dot)
        layout.addWidget(self.time)
        self._clock = QElapsedTimer()
        self._timer = QTimer(self)
        self._timer.setInterval(250)
        self._timer.timeout.connect(self._tick)
        self.hide()

    def start(self) -> None:
        self._clock.start()
        self._tick()
        self._timer.start()
        self.show()

    def stop(self) -> None:
        self._timer.stop()
        self.hide()

    def elapsed_s(self) -> float:
        return self._clock.elapsed() / 1000.0 if self._clock.isValid() else 0.0

    def _tick(self) -> None:
        seconds = int(self.elapsed_s())
        minutes, secs = divmod(seconds, 60)
        hours, minutes = divmod(minutes, 60)
        text = f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
        self.time.setText(f"REC {text}")
        # Blink the dot once a second, as recorders do.
        self.dot.setVisible((self._clock.elapsed() // 500) % 2 == 0)


class SeekSlider(QSlider):
    """A time slider that seeks while dragged (throttled) and jumps to where it is clicked.

    ``seek_requested(value)`` fires on a click, on release, and every ``SCRUB_INTERVAL_MS``
    while dragging, so the picture follows the handle without flooding the decoder.
    """

    SCRUB_INTERVAL_MS = 150
    seek_requested = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(Qt.Orientation.Horizontal, parent)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self._scrub = QTimer(self)
        self._scrub.setSingleShot(True)
        self._scrub.setInterval(self.SCRUB_INTERVAL_MS)
        self._scrub.timeout.connect(lambda: self.seek_requested.emit(self.value()))
        self.sliderMoved.connect(lambda _value: self._scrub.isActive() or self._scrub.start())
        self.sliderReleased.connect(self._released)

    def _released(self) -> None:
        self._scrub.stop()
        self.seek_requested.emit(self.value())

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt override)
        if event.button() == Qt.MouseButton.LeftButton and self.maximum() > self.minimum():
            option = QStyleOptionSlider()
            self.initStyleOption(option)
            handle = self.style().subControlRect(
                QStyle.ComplexControl.CC_Slider, option, QStyle.SubControl.SC_SliderHandle, self
            )
            if not handle.contains(event.position().toPoint()):
                value = QStyle.sliderValueFromPosition(
                    self.minimum(),
                    self.maximum(),
                    round(event.position().x()) - handle.width() // 2,
                    self.width() - handle.width(),
                )
                self.setValue(value)
                self.seek_requested.emit(value)
        super().mousePressEvent(event)  # the handle is under the pointer now: drag on
