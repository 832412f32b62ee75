"""Video files, decoded by PyAV frame by frame, none dropped.

PyAV rather than OpenCV because it exposes the real presentation timestamps (variable frame
rate), the duration, the frame count and the audio stream, which the video sink needs to copy
the sound into the annotated file. A file that ends before its announced end says so in
``info.ended_early`` instead of failing the frames already delivered.
"""

from __future__ import annotations

import heapq
import itertools
import os
from collections.abc import Iterator
from fractions import Fraction

import cv2

from hfpose.engine.sources.frame_source import EarlyEnd, Frame, FrameSource, SourceError, SourceInfo

# FFmpeg's decoders that draw a text file as pictures (its tty demuxer takes any text): a
# README is not a video.
TEXT_RENDERERS = ("ansi", "bintext", "xbin", "idf")

# Display rotation (degrees counter-clockwise, as FFmpeg's display matrix gives it) -> the
# OpenCV rotation that shows the picture upright.
_ROTATE_CODES = {
    90: cv2.ROTATE_90_COUNTERCLOCKWISE,
    180: cv2.ROTATE_180,
    270: cv2.ROTATE_90_CLOCKWISE,
}


class VideoFileSource(FrameSource):
    """A video file decoded by PyAV (anything FFmpeg reads), frame by frame, none dropped.

    ``container``: a file served over the network, already opened
    (:func:`hfpose.engine.sources.live.open_stream_container`) with each wait limited to
    ``timeout_s``; ``path`` is then its URL.
    """

    def __init__(
        self, path: str | os.PathLike, container=None, timeout_s: float | None = None
    ) -> None:
        import av

        self._path = str(path)
        self._remote = container is not None
        self._timeout_s = timeout_s
        if container is not None:
            self._container = container
        elif not os.path.exists(self._path):
            raise SourceError(f"input file not found: {self._path}")
        elif os.path.isdir(self._path):
            raise SourceError(f"input is a folder, not a video file: {self._path}")
        else:
            try:
                self._container = av.open(self._path, mode="r")
            except av.error.InvalidDataError as exc:
                raise SourceError(
                    f"not a video file (FFmpeg cannot read it): {self._path}"
                ) from exc
            except av.error.FFmpegError as exc:
                raise SourceError(f"cannot open video {self._path}: {exc.strerror or exc}") from exc
        if not self._container.streams.video:
            self._container.close()
            raise SourceError(f"not a video file (no video stream): {self._path}")
        if self._container.streams.video[0].codec_context.name in TEXT_RENDERERS:
            self._container.close()
            raise SourceError(f"not a video file (FFmpeg would draw it as text): {self._path}")
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
            seekable=not self._remote,  # a server need not take range requests
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
        except SourceError as error:
            self._container.close()
            if self._remote and "mp4" in self._container.format.name:
                raise SourceError(
                    f"cannot read {self._path} over the network ({error.__cause__}): an MP4 "
                    "with its index at the end needs a server that takes range requests; "
                    "download it first"
                ) from error
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
                self._ended(
                    self._transfer_cut(error.__cause__)
                    if self._remote
                    else f"corrupt data (FFmpeg: {detail})"
                )
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
        if self._remote:
            self._ended(self._transfer_cut())
            return
        size = os.path.getsize(self._path)
        if self._read_up_to >= size:
            self._ended(f"missing data (the file ends at byte {size:,}: cut short?)")
        else:
            self._ended(f"corrupt data (nothing decodes after byte {self._read_up_to:,})")

    def _transfer_cut(self, cause: BaseException | None = None) -> str:
        """Why a file read over the network stopped short: its transfer ended early, or the
        server stopped sending (``cause``: PyAV's timeout fired)."""
        import av

        size = self._container.size
        of = f" of the {size:,} announced" if size and size > 0 else ""
        if isinstance(cause, av.error.ExitError) and self._timeout_s:
            return (
                f"no data for {self._timeout_s:g} s (timed out) after byte {self._read_up_to:,}{of}"
            )
        return (
            f"missing data (the transfer stopped after byte {self._read_up_to:,}{of}: cut short?)"
        )

    def _ended(self, reason: str) -> None:
        if self.info.ended_early is None:
            self.info.ended_early = EarlyEnd(self._next_index, self.info.frame_count, reason)

    def seek(self, seconds: float) -> None:
        if self._remote:
            raise SourceError(f"cannot seek in a file read over the network ({self._path})")
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
