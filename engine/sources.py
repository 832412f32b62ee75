"""Frame sources: video files, webcams, image folders and network streams.

Every source yields :class:`Frame` objects (BGR uint8 image, index, timestamp in seconds) and
describes itself with a :class:`SourceInfo` so sinks know the frame rate, duration and audio.

Files are decoded with PyAV rather than OpenCV because PyAV exposes the real presentation
timestamps (variable frame rate), the duration, the frame count and the audio stream, which the
video sink needs to copy the sound into the annotated file. Live sources (webcam, RTSP/HTTP) run
a grabber thread that keeps only the newest frame, so a slow consumer sees fresh frames and the
latency stays flat however long the stream runs; stale frames are dropped and counted.
"""

from __future__ import annotations

import glob
import heapq
import itertools
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
STREAM_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://")
log = logging.getLogger(__name__)
_WEBCAM_SPEC = re.compile(r"^(?:webcam|camera|cam):(\d+)$", re.IGNORECASE)


class SourceError(RuntimeError):
    """A source cannot be opened or read; the message is one line meant for the user."""


@dataclass
class Frame:
    """One decoded picture. ``timestamp`` is seconds from the start of the source."""

    image: np.ndarray
    index: int
    timestamp: float


@dataclass(frozen=True)
class EarlyEnd:
    """The input stopped before its announced end (a cut-short file, a stream that dropped)."""

    frames: int  # frames delivered
    announced: int | None  # frames the container announced (None: a live stream)
    reason: str

    @property
    def message(self) -> str:
        """One line for the user: where decoding stopped and why."""
        if self.announced:
            where = f"decoding stopped at frame {self.frames} of the {self.announced} announced"
        else:
            where = f"the input stopped after frame {self.frames}"
        return f"{where}: {self.reason}"

    def to_dict(self) -> dict:
        return {
            "frames_decoded": self.frames,
            "frames_announced": self.announced,
            "reason": self.reason,
            "message": self.message,
        }


@dataclass
class SourceInfo:
    """What sinks and the UI need to know about a source.

    ``ended_early`` is filled in by the source when the input stops before its announced end;
    sinks and the UI hold this same object, so they see it when the run ends.
    """

    kind: str  # "file", "camera", "folder" or "stream"
    uri: str
    width: int
    height: int
    fps: float
    frame_count: int | None = None  # exact when the container says so, else estimated or None
    duration: float | None = None  # seconds
    has_audio: bool = False
    is_live: bool = False
    seekable: bool = False
    # Exact frame rate as a fraction (e.g. 30000/1001) so an encoder can reproduce it.
    rate: Fraction | None = None
    ended_early: EarlyEnd | None = None
    # Unrelated pictures (an image folder, one image), not a video: the pipeline carries no
    # track, smoothing or box from one to the next.
    stills: bool = False
    # False when ``fps`` is a guess (the container, camera or stream gave no usable rate): the
    # detection cadence then assumes its own fallback (hfpose.engine.config.FALLBACK_FPS).
    fps_reported: bool = True


@dataclass(frozen=True)
class CameraInfo:
    """A camera the OS reports; ``spec`` is what :func:`open_source` accepts."""

    index: int
    name: str
    device: str

    @property
    def spec(self) -> str:
        return f"webcam:{self.index}"


class FrameSource:
    """Base class: ``read()`` returns the next frame or ``None`` at the end of the input."""

    info: SourceInfo

    def read(self) -> Frame | None:
        raise NotImplementedError

    def seek(self, seconds: float) -> None:
        """Jump to ``seconds``; only file sources can, live ones raise :class:`SourceError`."""
        raise SourceError(f"cannot seek in a live source ({self.info.uri})")

    def close(self) -> None:
        """Release the device or file; safe to call twice."""

    @property
    def dropped_frames(self) -> int:
        """Frames a live source discarded because the consumer was busy (0 for files)."""
        return 0

    def __iter__(self) -> Iterator[Frame]:
        while (frame := self.read()) is not None:
            yield frame

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------- video files

# Display rotation (degrees counter-clockwise, as FFmpeg's display matrix gives it) -> the
# OpenCV rotation that shows the picture upright.
_ROTATE_CODES = {
    90: cv2.ROTATE_90_COUNTERCLOCKWISE,
    180: cv2.ROTATE_180,
    270: cv2.ROTATE_90_CLOCKWISE,
}


class VideoFileSource(FrameSource):
    """A video file decoded by PyAV (anything FFmpeg reads), frame by frame, none dropped."""

    def __init__(self, path: str | os.PathLike) -> None:
        import av

        self._path = str(path)
        if not os.path.exists(self._path):
            raise SourceError(f"input file not found: {self._path}")
        if os.path.isdir(self._path):
            raise SourceError(f"input is a folder, not a video file: {self._path}")
        try:
            self._container = av.open(self._path, mode="r")
        except av.error.InvalidDataError as exc:
            raise SourceError(f"not a video file (FFmpeg cannot read it): {self._path}") from exc
        except av.error.FFmpegError as exc:
            raise SourceError(f"cannot open video {self._path}: {exc.strerror or exc}") from exc
        if not self._container.streams.video:
            self._container.close()
            raise SourceError(f"not a video file (no video stream): {self._path}")
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"  # frame + slice threads: decode keeps up on 2 cores
        stream = self._stream
        reported = stream.average_rate or stream.guessed_rate
        rate = reported or Fraction(30)
        self._time_base = stream.time_base or Fraction(1, 1_000_000)
        self._start_pts = stream.start_time if stream.start_time is not None else 0
        duration = None
        if stream.duration is not None:
            duration = float(stream.duration * self._time_base)
        elif self._container.duration is not None:
            duration = self._container.duration / 1_000_000  # av.time_base is microseconds
        frame_count = stream.frames or (round(duration * float(rate)) if duration else None)
        self.info = SourceInfo(
            kind="file",
            uri=self._path,
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            fps=float(rate),
            fps_reported=bool(reported),
            frame_count=frame_count,
            duration=duration,
            has_audio=bool(self._container.streams.audio),
            is_live=False,
            seekable=True,
            rate=Fraction(rate),
        )
        self._frames = self._decode()
        self._next_index = 0
        self._read_up_to = 0  # file offset the demuxer has read to
        self._last_time: float | None = None
        self._skip_before: float | None = None
        # Decode the first picture now: a file whose header lies (corrupt, truncated) fails
        # here, before any output is opened, and the size is the real decoded one.
        try:
            first = next(self._frames, None)
        except SourceError:
            self._container.close()
            raise
        if first is None:
            self._container.close()
            raise SourceError(f"corrupt video stream (no frame decodes): {self._path}")
        # Phones store portrait video as landscape pictures plus a display rotation; people
        # lying on their side would defeat the detector, so frames are turned upright here.
        first_frame = first[0]
        rotation = round(getattr(first_frame, "rotation", 0) or 0) % 360
        self._rotate_code = _ROTATE_CODES.get(rotation)
        upright = self._rotate_code in (cv2.ROTATE_90_CLOCKWISE, cv2.ROTATE_90_COUNTERCLOCKWISE)
        size = (
            (first_frame.height, first_frame.width)
            if upright
            else (first_frame.width, first_frame.height)
        )
        self.info.width, self.info.height = size
        self._frames = itertools.chain([first], self._frames)

    def _decode(self) -> Iterator[tuple]:
        """The decoder's frames (display order), each with its presentation time in ticks.

        AVI has no presentation times: every packet carries a decode-order stamp, so with
        B-frames the frames leave the decoder stamped 1, 2, 4, 3, 6, 5 ... The frames come out
        in display order, so the earliest stamp among the packets sent and not yet matched to a
        frame is the time of the frame that comes out: that puts decode-order stamps back in
        display order. Containers with real presentation times show them out of order in
        decode order (B-frames are sent after the frame they precede); from then on each frame
        keeps its own time (both give the same while no frame is lost).
        """
        import av

        pending: list[int] = []  # heap of the stamps of packets sent, not yet given to a frame
        presentation_stamps = False
        last_stamp: int | None = None
        try:
            for packet in self._container.demux(self._stream):
                if packet.pos is not None and packet.pos >= 0:
                    self._read_up_to = max(self._read_up_to, packet.pos + packet.size)
                stamp = packet.pts if packet.pts is not None else packet.dts
                if packet.size and stamp is not None and not presentation_stamps:
                    if last_stamp is not None and stamp < last_stamp:
                        presentation_stamps = True
                        pending.clear()
                    else:
                        heapq.heappush(pending, stamp)
                        last_stamp = stamp
                for av_frame in packet.decode():
                    if presentation_stamps or not pending:
                        yield av_frame, av_frame.pts
                    else:
                        yield av_frame, heapq.heappop(pending)
        except av.error.FFmpegError as exc:
            raise SourceError(
                f"corrupt video stream after frame {self._next_index} of {self._path}: "
                f"{exc.strerror or exc}"
            ) from exc

    def _timestamp(self, pts: int | None, index: int) -> float:
        """Seconds from the start; strictly increasing, whatever the file's stamps say."""
        if pts is None:
            seconds = index / self.info.fps
        else:
            seconds = float((pts - self._start_pts) * self._time_base)
        if self._last_time is not None and seconds <= self._last_time:
            seconds = self._last_time + 1.0 / self.info.fps  # a repeated or backward stamp
        self._last_time = seconds
        return seconds

    def read(self) -> Frame | None:
        while True:
            try:
                decoded = next(self._frames, None)
            except SourceError as error:  # frames were delivered: keep them, say why it stopped
                detail = getattr(error.__cause__, "strerror", None) or str(error)
                self._ended(f"corrupt data (FFmpeg: {detail})")
                return None
            if decoded is None:
                self._check_complete()
                return None
            av_frame, pts = decoded
            timestamp = self._timestamp(pts, self._next_index)
            if self._skip_before is not None:
                # After a seek the decoder restarts at the keyframe before the target.
                if timestamp < self._skip_before - 0.5 / self.info.fps:
                    continue
                self._next_index = max(0, round(timestamp * self.info.fps))
                self._skip_before = None
            image = av_frame.to_ndarray(format="bgr24")
            if self._rotate_code is not None:
                image = cv2.rotate(image, self._rotate_code)
            frame = Frame(image=image, index=self._next_index, timestamp=timestamp)
            self._next_index += 1
            return frame

    def _check_complete(self) -> None:
        """At the end of the file: did it deliver what the container announced?

        Two frames of slack in count and time: a frame count estimated from the duration, or
        a last frame that does not decode, is not a truncated file.
        """
        announced, fps = self.info.frame_count, self.info.fps
        if not announced or self._next_index >= announced - 2:
            return
        if self.info.duration and (self._last_time or 0.0) >= self.info.duration - 3 / fps:
            return
        size = os.path.getsize(self._path)
        if self._read_up_to >= size:
            self._ended(f"missing data (the file ends at byte {size:,}: cut short?)")
        else:
            self._ended(f"corrupt data (nothing decodes after byte {self._read_up_to:,})")

    def _ended(self, reason: str) -> None:
        if self.info.ended_early is None:
            self.info.ended_early = EarlyEnd(self._next_index, self.info.frame_count, reason)

    def seek(self, seconds: float) -> None:
        seconds = max(0.0, float(seconds))
        if self.info.duration is not None:
            seconds = min(seconds, self.info.duration)
        target = self._start_pts + int(seconds / self._time_base)
        self._container.seek(target, stream=self._stream, backward=True, any_frame=False)
        self._frames = self._decode()
        self._last_time = None
        self._skip_before = seconds

    def close(self) -> None:
        self._container.close()


# --------------------------------------------------------------------------- image folders


def is_image_file(path: str | os.PathLike) -> bool:
    """An existing file with an image extension (opened as a still, not as a video)."""
    return os.path.isfile(path) and os.fspath(path).lower().endswith(IMAGE_EXTENSIONS)


def list_images(folder: str | os.PathLike) -> list[str]:
    """Image files of ``folder`` in name order (the order an image-folder source plays);
    an image file gives itself."""
    if is_image_file(folder):
        return [os.fspath(folder)]
    return sorted(
        p
        for p in glob.glob(os.path.join(glob.escape(os.fspath(folder)), "*"))
        if p.lower().endswith(IMAGE_EXTENSIONS)
    )


class ImageFolderSource(FrameSource):
    """The images of a folder in name order, or a single image: stills, not a video.

    ``fps`` is nominal, for timestamps and an annotated video of the pictures.
    """

    def __init__(self, folder: str | os.PathLike, fps: float = 30.0) -> None:
        self._folder = str(folder)
        single = is_image_file(self._folder)
        if not single and not os.path.isdir(self._folder):
            raise SourceError(f"image folder not found: {self._folder}")
        self.paths = list_images(self._folder)
        if not self.paths:
            raise SourceError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {self._folder}")
        first = self._load(0)
        self._next = 0
        self.info = SourceInfo(
            kind="image" if single else "folder",
            uri=self._folder,
            width=first.shape[1],
            height=first.shape[0],
            fps=float(fps),
            frame_count=len(self.paths),
            duration=len(self.paths) / fps,
            seekable=True,
            rate=Fraction(fps).limit_denominator(1001),
            stills=True,
        )

    def _load(self, index: int) -> np.ndarray:
        image = cv2.imread(self.paths[index], cv2.IMREAD_COLOR)
        if image is None:
            raise SourceError(f"not a readable image: {self.paths[index]}")
        return image

    def read(self) -> Frame | None:
        if self._next >= len(self.paths):
            return None
        index = self._next
        self._next += 1
        return Frame(self._load(index), index, index / self.info.fps)

    def seek(self, seconds: float) -> None:
        self._next = min(len(self.paths), max(0, round(seconds * self.info.fps)))


# --------------------------------------------------------------------------- live sources


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
    ) -> None:
        self._url = url
        self._open_timeout_s = open_timeout_s
        self._reconnect_tries = reconnect_tries
        self._reconnect_delay_s = reconnect_delay_s
        self._open()
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

    def _open(self) -> None:
        import av

        options = {"timeout": str(int(self._open_timeout_s * 1_000_000))}
        if self._url.lower().startswith(("rtsp://", "rtsps://")):
            options["rtsp_transport"] = "tcp"  # UDP loses packets on busy networks
        try:
            self._container = av.open(self._url, options=options, timeout=self._open_timeout_s)
        except av.error.FFmpegError as exc:
            raise SourceError(f"cannot open stream {self._url}: {exc.strerror or exc}") from exc
        if not self._container.streams.video:
            self._container.close()
            raise SourceError(f"stream has no video: {self._url}")
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


# --------------------------------------------------------------------------- discovery


def list_cameras(
    max_probe: int = 4, sysfs: str | os.PathLike = "/sys/class/video4linux"
) -> list[CameraInfo]:
    """Cameras present, with the name the OS gives them where it gives one.

    On Linux the names come from ``sysfs`` without opening the devices; a device node that
    only exposes metadata (every UVC camera has one) is skipped. Elsewhere the first
    ``max_probe`` indices are opened briefly.
    """
    if sys.platform.startswith("linux"):
        cameras = []
        nodes = Path(sysfs).glob("video*")
        for node in sorted(nodes, key=lambda n: int(re.sub(r"\D", "", n.name) or 0)):
            match = re.fullmatch(r"video(\d+)", node.name)
            if not match:
                continue
            index_file = node / "index"
            if index_file.exists() and index_file.read_text().strip() not in ("", "0"):
                continue  # second node of the same camera (metadata), not a picture source
            name_file = node / "name"
            name = name_file.read_text().strip() if name_file.exists() else node.name
            cameras.append(CameraInfo(int(match.group(1)), name, f"/dev/{node.name}"))
        return cameras
    cameras = []
    for index in range(max_probe):
        capture = cv2.VideoCapture(index)
        if capture.isOpened():
            cameras.append(CameraInfo(index, f"Camera {index}", str(index)))
        capture.release()
    return cameras


def parse_camera_index(spec: str | int) -> int | None:
    """``webcam:0`` / ``camera:1`` / ``0`` / ``0`` as int -> camera index, else ``None``."""
    if isinstance(spec, int):
        return spec
    match = _WEBCAM_SPEC.match(spec.strip())
    if match:
        return int(match.group(1))
    if spec.strip().isdigit() and not os.path.exists(spec):
        return int(spec)
    return None


def is_live_spec(spec: str | int) -> bool:
    """True for webcams and network streams (newest-frame processing)."""
    if parse_camera_index(spec) is not None:
        return True
    return str(spec).lower().startswith(STREAM_SCHEMES)


def open_source(spec: str | int | os.PathLike, folder_fps: float = 30.0) -> FrameSource:
    """Open whatever the user typed: a video, an image, a folder of images, ``webcam:N`` or an
    RTSP/HTTP URL."""
    camera = parse_camera_index(spec) if not isinstance(spec, os.PathLike) else None
    if camera is not None:
        return CameraSource(camera)
    text = os.fspath(spec)
    if text.lower().startswith(STREAM_SCHEMES):
        return StreamSource(text)
    if os.path.isdir(text) or is_image_file(text):
        return ImageFolderSource(text, fps=folder_fps)
    return VideoFileSource(text)
