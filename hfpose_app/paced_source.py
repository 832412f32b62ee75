"""File playback at the file's own speed, as a player does (the engine alone would process
the frames as fast as it can: right for the CLI, a fast-forward in a viewer)."""

from __future__ import annotations

import threading
import time

from hfpose.engine.sources.frame_source import Frame, FrameSource, SourceInfo

# Behind schedule by more than this, a paced file restarts its clock instead of rushing.
PACING_SLACK_S = 0.25


class PacedSource(FrameSource):
    """A file source whose frames are released at their timestamps (real-time playback)."""

    def __init__(self, inner: FrameSource) -> None:
        self.inner = inner
        self._origin: tuple[float, float] | None = None  # (wall clock, media time)
        self._closed = threading.Event()

    @property
    def info(self) -> SourceInfo:  # type: ignore[override]
        return self.inner.info

    def read(self) -> Frame | None:
        frame = self.inner.read()
        if frame is None:
            return None
        now = time.perf_counter()
        if self._origin is None:
            self._origin = (now, frame.timestamp)
            return frame
        wall0, media0 = self._origin
        delay = wall0 + (frame.timestamp - media0) - now
        if delay < -PACING_SLACK_S or delay > 0.5:
            # Paused, stepped, slow backend or a gap in the timestamps: restart the clock here.
            self._origin = (now, frame.timestamp)
        elif delay > 0:
            self._closed.wait(delay)
        return frame

    def seek(self, seconds: float) -> None:
        self.inner.seek(seconds)
        self._origin = None

    def close(self) -> None:
        self._closed.set()
        self.inner.close()

    @property
    def dropped_frames(self) -> int:
        return self.inner.dropped_frames
