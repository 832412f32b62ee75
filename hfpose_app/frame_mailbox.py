"""The one-frame mailbox between the engine's sink thread and the GUI thread.

The sink thread overwrites the slot and asks for a notice only when the GUI has taken the
previous frame, so a GUI that falls behind skips to the newest frame instead of queueing (live
sources never freeze the window).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from PySide6.QtGui import QImage


@dataclass
class FrameUpdate:
    """What the GUI shows for one frame (built in the engine's sink thread)."""

    image: QImage
    frame_index: int
    time_s: float
    fps: float
    latency_ms: float  # frame released by the source -> pipeline output; the GUI adds the paint
    people: int
    runtime_label: str
    dropped_frames: int
    arrived: float  # time.perf_counter() when the engine delivered it


class FrameMailbox:
    """One slot holding the newest :class:`FrameUpdate` (thread-safe)."""

    def __init__(self) -> None:
        self._update: FrameUpdate | None = None
        self._pending = False  # a notice was sent and the GUI has not taken the frame yet
        self._lock = threading.Lock()

    def post(self, update: FrameUpdate) -> bool:
        """Put ``update`` in the slot (replacing one not taken); True: notify the GUI."""
        with self._lock:
            self._update = update
            notify = not self._pending
            self._pending = True
        return notify

    def take(self) -> FrameUpdate | None:
        """The newest frame (None if already taken); the next post notifies again."""
        with self._lock:
            update, self._update = self._update, None
            self._pending = False
        return update

    def clear(self) -> None:
        """Drop a frame not taken yet (a new source opens)."""
        with self._lock:
            self._update = None
