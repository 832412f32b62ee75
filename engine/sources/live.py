"""Live sources: webcams (OpenCV) and network streams (PyAV), newest frame only.

A grabber thread reads continuously and keeps only the newest frame, so a slow consumer sees
fresh frames and the latency stays flat however long the source runs; stale frames are
dropped and counted. A live stream that drops is reopened a few times before the input ends.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from fractions import Fraction

import cv2
import numpy as np

from hfpose.engine.sources.frame_source import EarlyEnd, Frame, FrameSource, SourceError, SourceInfo

log = logging.getLogger(__name__)


class LiveFrameSource(FrameSource):
    """A live source: a grabber thread reads continuously and keeps only the newest frame.

    Subclasses implement :meth:`_grab` (one blocking read of the device). ``read()`` waits for
    a frame newer than the last one returned, so the consumer never sees a frame twice and
    never sees a stale one; frames the consumer had no time for are counted in
    :attr:`dropped_frames`.
    """

    def __init__(self, info: SourceInfo, read_timeout: float = 5.0) -> None:
        self.info = info
        self._read_timeout = read_timeout
        self._lock = threading.Condition()
        self._latest: tuple[np.ndarray, float] | None = None
        self._grabbed = 0
        self._returned = 0
        self._dropped = 0
        self._unread = False
        self._error: BaseException | None = None
        self._ended = False
        self._stop = threading.Event()
        self._t0: float | None = None
        self._thread = threading.Thread(target=self._run, name="source-grabber", daemon=True)

    def start(self) -> None:
        """Start grabbing; subclasses call it once the device is open."""
        self._thread.start()

    def _grab(self) -> np.ndarray | None:
        """Read one frame from the device (blocking); ``None`` means the stream ended."""
        raise NotImplementedError

    def _release(self) -> None:
        """Close the device (called from :meth:`close`, after the grabber stopped)."""

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                image = self._grab()
                now = time.monotonic()
                with self._lock:
                    if image is None:
                        self._ended = True
                        self._lock.notify_all()
                        return
                    if self._t0 is None:
                        self._t0 = now
                    if self._unread:
                        self._dropped += 1
                    self._latest = (image, now - self._t0)
                    self._unread = True
                    self._grabbed += 1
                    self._lock.notify_all()
        except BaseException as exc:  # noqa: BLE001 - surfaced to the reader thread
            with self._lock:
                self._error = exc
                self._lock.notify_all()

    def read(self) -> Frame | None:
        with self._lock:
            deadline = time.monotonic() + self._read_timeout
            while not self._unread and self._error is None and not self._ended:
                if self._stop.is_set():
                    return None
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise SourceError(
                        f"no frame from {self.info.uri} for {self._read_timeout:.0f} s "
                        "(unplugged or stalled?)"
                    )
                self._lock.wait(min(remaining, 0.1))
            if self._unread:
                image, timestamp = self._latest
                self._unread = False
                index = self._returned
                self._returned += 1
                return Frame(image, index, timestamp)
            if self._error is not None:
                error = self._error
                if isinstance(error, SourceError):
                    raise error
                raise SourceError(f"live source {self.info.uri} failed: {error}") from error
            return None

    @property
    def dropped_frames(self) -> int:
        with self._lock:
            return self._dropped

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=1.0)
        self._release()


class CameraSource(LiveFrameSource):
    """A webcam by index through OpenCV's VideoCapture."""

    def __init__(
        self,
        index: int,
        width: int | None = None,
        height: int | None = None,
        fps: float | None = None,
    ) -> None:
        backend = cv2.CAP_DSHOW if sys.platform == "win32" else cv2.CAP_ANY
        self._capture = cv2.VideoCapture(index, backend)
        if not self._capture.isOpened():
            self._capture.release()
            raise SourceError(f"cannot open camera {index} (not connected, or in use?)")
        if width:
            self._capture.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        if height:
            self._capture.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        if fps:
            self._capture.set(cv2.CAP_PROP_FPS, fps)
        ok, first = self._capture.read()
        if not ok or first is None:
            self._capture.release()
            raise SourceError(f"camera {index} opened but delivers no frames")
        reported_fps = self._capture.get(cv2.CAP_PROP_FPS)
        plausible = 1.0 <= reported_fps <= 240.0
        rate = reported_fps if plausible else 30.0
        info = SourceInfo(
            kind="camera",
            uri=f"webcam:{index}",
            width=first.shape[1],
            height=first.shape[0],
            fps=rate,
            fps_reported=plausible,
            is_live=True,
            rate=Fraction(rate).limit_denominator(1001),
        )
        super().__init__(info)
        self.start()

    def _grab(self) -> np.ndarray | None:
        ok, image = self._capture.read()
        if not ok:
            raise SourceError(f"camera {self.info.uri} stopped delivering frames (unplugged?)")
        return image

    def _release(self) -> None:
        self._capture.release()


def open_stream_container(url: str, timeout_s: float = 10.0):
    """``url`` opened by PyAV, each network wait at most ``timeout_s``; :class:`SourceError`
    with the reason (a server that never answers: after how long) when it cannot be."""
    import av

    options = {"timeout": str(int(timeout_s * 1_000_000))}
    if url.lower().startswith(("rtsp://", "rtsps://")):
        options["rtsp_transport"] = "tcp"  # UDP loses packets on busy networks
    try:
        container = av.open(url, options=options, timeout=timeout_s)
    except (av.error.ExitError, TimeoutError) as exc:  # ExitError: PyAV's timeout fired
        raise SourceError(
            f"cannot open stream {url}: no answer in {timeout_s:g} s (timed out)"
        ) from exc
    except av.error.FFmpegError as exc:
        raise SourceError(f"cannot open stream {url}: {exc.strerror or exc}") from exc
    if not container.streams.video:
        container.close()
        raise SourceError(f"stream has no video: {url}")
    return container


class StreamSource(LiveFrameSource):
    """An RTSP/RTMP/HTTP stream decoded by PyAV, newest frame only.

    A live stream (no announced duration) that breaks or ends is reopened up to
    ``reconnect_tries`` times, ``reconnect_delay_s`` apart; when that fails, or a stream of
    known length (a file served over HTTP) stops short, the input ends and
    ``info.ended_early`` says after which frame and why, as for a cut-short file.
    """

    def __init__(
        self,
        url: str,
        open_timeout_s: float = 10.0,
        reconnect_tries: int = 3,
        reconnect_delay_s: float = 1.0,
        container=None,
    ) -> None:
        """``container``: ``url`` already opened by :func:`open_stream_container`."""
        self._url = url
        self._open_timeout_s = open_timeout_s
        self._reconnect_tries = reconnect_tries
        self._reconnect_delay_s = reconnect_delay_s
        self._open(container)
        stream = self._container.streams.video[0]
        reported = stream.average_rate or stream.guessed_rate
        rate = reported or Fraction(25)
        duration = self._container.duration / 1_000_000 if self._container.duration else None
        info = SourceInfo(
            kind="stream",
            uri=url,
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            fps=float(rate),
            fps_reported=bool(reported),
            frame_count=round(duration * float(rate)) if duration else None,
            duration=duration,
            has_audio=False,  # audio of a live stream is not recorded
            is_live=True,
            rate=Fraction(rate),
        )
        # A reader waits out the reconnection attempts before calling the stream stalled.
        patience = (reconnect_tries + 1) * (open_timeout_s + reconnect_delay_s)
        super().__init__(info, read_timeout=patience)
        self.start()

    def _open(self, container=None) -> None:
        self._container = container or open_stream_container(self._url, self._open_timeout_s)
        stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"
        self._frames = self._container.decode(stream)

    def _grab(self) -> np.ndarray | None:
        import av

        while True:
            try:
                av_frame = next(self._frames, None)
                problem = "the stream ended" if av_frame is None else None
            except av.error.FFmpegError as exc:
                problem = f"the stream broke ({exc.strerror or exc})"
            if problem is None:
                return av_frame.to_ndarray(format="bgr24")
            if self.info.frame_count is not None:  # a file over the network: no live edge
                if self._grabbed < self.info.frame_count - 2:
                    self._end_early(f"{problem} before its announced end")
                return None
            if not self._reconnect(problem):
                return None

    def _reconnect(self, problem: str) -> bool:
        """Reopen a live stream that dropped; False (and ``ended_early`` said) when it fails."""
        last = ""
        for attempt in range(1, self._reconnect_tries + 1):
            if self._stop.wait(self._reconnect_delay_s):
                return False
            log.warning("%s: %s; reconnecting (%d of %d)", self._url, problem, attempt,
                        self._reconnect_tries)  # fmt: skip
            self._container.close()
            try:
                self._open()
                return True
            except SourceError as error:
                last = str(error)
        self._end_early(f"{problem}; {self._reconnect_tries} reconnection attempts failed ({last})")
        return False

    def _end_early(self, reason: str) -> None:
        self.info.ended_early = EarlyEnd(self._grabbed, self.info.frame_count, reason)

    def _release(self) -> None:
        self._container.close()
