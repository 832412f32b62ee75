"""The widget that shows the annotated video: letter-boxed, smoothly scaled, crisp on HiDPI."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRect, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QImage, QMouseEvent, QPainter, QPaintEvent
from PySide6.QtWidgets import QSizePolicy, QWidget

PLACEHOLDER = "Open a video, a camera or a stream\n(or drop a video file here)"


def bgr_to_qimage(frame: np.ndarray) -> QImage:
    """OpenCV BGR uint8 (H, W, 3) -> a QImage that owns its pixels.

    Runs in the worker thread (QImage, unlike QPixmap, may be built off the GUI thread), so the
    GUI only paints. The copy detaches the image from the numpy buffer the engine may reuse.
    """
    frame = np.ascontiguousarray(frame)
    height, width = frame.shape[:2]
    image = QImage(frame.data, width, height, frame.strides[0], QImage.Format.Format_BGR888)
    return image.copy()


def fit_rect(image_size: QSize, area: QRect) -> QRect:
    """The largest rectangle of the image's aspect ratio centred in ``area``."""
    if image_size.isEmpty() or area.isEmpty():
        return QRect()
    scaled = image_size.scaled(area.size(), Qt.AspectRatioMode.KeepAspectRatio)
    x = area.x() + (area.width() - scaled.width()) // 2
    y = area.y() + (area.height() - scaled.height()) // 2
    return QRect(x, y, scaled.width(), scaled.height())


class VideoView(QWidget):
    """Paints the newest frame only; the GUI never queues frames, so it cannot fall behind."""

    double_clicked = Signal()  # players toggle full screen on a double click
    clicked = Signal(float, float)  # a left click on the frame, in the frame's pixels

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._image: QImage | None = None
        self._placeholder = PLACEHOLDER
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(320, 180)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt override)
        return QSize(960, 540)

    def set_image(self, image: QImage) -> None:
        self._image = image
        self.update()

    def image(self) -> QImage | None:
        return self._image

    def clear(self, placeholder: str | None = None) -> None:
        self._image = None
        if placeholder is not None:
            self._placeholder = placeholder
        self.update()

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt override)
        if event.button() == Qt.MouseButton.LeftButton:
            self.double_clicked.emit()

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt override)
        target = self.image_rect()
        if event.button() != Qt.MouseButton.LeftButton or target.isEmpty():
            return
        point = event.position()
        scale = self._image.width() / target.width()
        x, y = (point.x() - target.x()) * scale, (point.y() - target.y()) * scale
        if 0 <= x < self._image.width() and 0 <= y < self._image.height():
            self.clicked.emit(x, y)

    def image_rect(self) -> QRect:
        """Where the frame is drawn in widget (logical) pixels."""
        if self._image is None:
            return QRect()
        return fit_rect(self._image.size(), self.rect())

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 (Qt override)
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(16, 16, 18))
        if self._image is None or self._image.isNull():
            painter.setPen(QColor(150, 150, 155))
            font = QFont(self.font())
            font.setPointSizeF(font.pointSizeF() * 1.2)
            painter.setFont(font)
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, self._placeholder)
            return
        target = self.image_rect()
        # Scale to device pixels with Qt's area-averaging filter, then tell Qt the image's
        # pixel ratio: one image pixel per screen pixel, so HiDPI screens get full sharpness.
        ratio = self.devicePixelRatioF()
        device_size = QSize(round(target.width() * ratio), round(target.height() * ratio))
        if device_size == self._image.size():
            scaled = QImage(self._image)
        else:
            scaled = self._image.scaled(
                device_size,
                Qt.AspectRatioMode.IgnoreAspectRatio,
                Qt.TransformationMode.SmoothTransformation,
            )
        scaled.setDevicePixelRatio(ratio)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        painter.drawImage(target.topLeft(), scaled)
