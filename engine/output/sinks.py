"""Where results go: annotated video files and keypoint files (JSON, CSV, COCO results).

Every sink has the same three calls: ``open(source_info)`` once before the first frame (it
raises :class:`SinkError` with a one-line reason when the output cannot be written, so a run
fails before any work), ``write(result)`` per frame, and ``close()``, which is safe to call more
than once and is always called by the pipeline, also after Ctrl+C or an error.

The annotated video is H.264 in a *fragmented* MP4 written by PyAV: each fragment is
self-contained, so even a killed process leaves a playable file with everything up to the last
keyframe, and a normal stop finalises it completely. The source's audio is copied packet by
packet (no re-encoding) in step with the video. Keypoint files are written to a temporary file
beside the target and moved into place with ``os.replace`` when complete, so a reader never
sees half a file.
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import os
import re
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from hfpose.engine.output.output_files import (
    OutputBusyError,
    OutputLock,
    create_temp_beside,
    writes_through,
)
from hfpose.engine.results import FrameResult
from hfpose.engine.sources.frame_source import SourceInfo
from hfpose.engine.sources.image_folder import list_images
from hfpose.models.metainfo import COCO, DatasetInfo

log = logging.getLogger(__name__)

# Tried in order: x264 first (PyAV wheels ship it), any other H.264 encoder, then MPEG-4 Part 2.
VIDEO_CODECS = ("libx264", "h264", "mpeg4")
# File kinds a recording can be (name -> FFmpeg muxer); Matroska, like fragmented MP4, stays
# playable up to the last written cluster when the writer is killed.
VIDEO_CONTAINERS = {"mp4": "mp4", "mkv": "matroska"}
_FRAGMENTED_MP4 = "frag_keyframe+empty_moov+default_base_moof"
_FINE_TIME_BASE = Fraction(1, 90000)


class SinkError(RuntimeError):
    """An output cannot be written; the message is one line meant for the user."""


class Sink:
    """Base class of everything that consumes :class:`FrameResult` objects."""

    path: Path

    def open(self, info: SourceInfo) -> None:
        raise NotImplementedError

    def write(self, result: FrameResult) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


def _claim_output(path: Path) -> OutputLock | None:
    """Check that ``path`` can be written and lock it for this run (``None``: a device or
    FIFO, written through, needs no lock); raises :class:`SinkError` with the reason."""
    if writes_through(path):
        return None
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise SinkError(f"cannot write {path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise SinkError(f"cannot write {path}: folder {folder} is not writable")
    if path.is_dir():
        raise SinkError(f"cannot write {path}: it is a folder")
    lock = OutputLock(path)
    try:
        lock.acquire()
    except OutputBusyError as exc:
        raise SinkError(str(exc)) from None
    except OSError as exc:  # the lock beside it cannot be made (/proc for root: "not found")
        raise SinkError(
            f"cannot write {path}: folder {folder} takes no new files ({exc.strerror})"
        ) from exc
    return lock


def container_for(path: str | os.PathLike) -> str | None:
    """The recording kind (a key of :data:`VIDEO_CONTAINERS`) a file name asks for by its
    extension, ``None`` for one no recording can be."""
    suffix = Path(path).suffix.lower().lstrip(".")
    return suffix if suffix in VIDEO_CONTAINERS else None


class VideoSink(Sink):
    """Annotated frames -> H.264 MP4 at the source's frame rate, with the source's audio.

    ``codecs`` is the order of encoders to try; the one opened is in :attr:`codec`.
    Frames are timed by their source timestamps, so variable-frame-rate input keeps its timing
    and a recording started mid-stream starts at zero.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        audio: bool = True,
        codecs: tuple[str, ...] = VIDEO_CODECS,
        crf: int = 23,
        preset: str = "veryfast",
        keyframe_interval_s: float = 1.0,
        container: str = "mp4",
    ) -> None:
        if container not in VIDEO_CONTAINERS:
            raise SinkError(
                f"unknown container {container!r}: choose {', '.join(VIDEO_CONTAINERS)}"
            )
        self.path = Path(path)
        self.container = container
        self.audio = audio
        self.codecs = codecs
        self.crf = crf
        self.preset = preset
        self.keyframe_interval_s = keyframe_interval_s
        self.codec: str | None = None
        self.frames_written = 0
        self._container = None
        self._video = None
        self._audio_in = None
        self._audio_packets = None
        self._audio_out = None
        self._pending_audio = None
        self._size: tuple[int, int] = (0, 0)
        self._rate = Fraction(30)
        self._first_time: float | None = None
        self._last_pts = -1
        self._last_time = 0.0
        self._time_base = Fraction(1, 30)
        self._audio_offset = 0.0
        self._closed = False
        self._failed = False  # a write failed: the muxer must not be called again
        self._lock: OutputLock | None = None

    def open(self, info: SourceInfo) -> None:
        import av

        # 4:2:0 chroma needs even sizes; drop the odd last row/column rather than stretch.
        self._size = (info.width - info.width % 2, info.height - info.height % 2)
        if min(self._size) < 2:
            raise SinkError(
                f"cannot write {self.path}: the frames ({info.width}x{info.height}) are too "
                "small to encode (2x2 pixels at least)"
            )
        self._lock = _claim_output(self.path)
        self._rate = info.rate or Fraction(info.fps).limit_denominator(1001)
        try:  # whatever stops the opening (a SinkError, Ctrl+C) leaves no lock behind
            options = {"flush_packets": "1"}
            if self.container == "mp4":
                options["movflags"] = _FRAGMENTED_MP4
            try:
                self._container = av.open(
                    str(self.path),
                    mode="w",
                    format=VIDEO_CONTAINERS[self.container],
                    options=options,
                )
            except av.error.FFmpegError as exc:
                raise SinkError(f"cannot write {self.path}: {exc.strerror or exc}") from exc
            self._video = self._open_encoder()
            if self.audio and info.has_audio and info.kind == "file":
                self._open_audio(info.uri)
        except BaseException:
            self._close_audio()
            if self._container is not None:
                self._container.close()
                self._container = None
            self._release_lock()
            raise

    def _open_encoder(self):
        import av

        errors = []
        for name in self.codecs:
            try:
                stream = self._container.add_stream(name, rate=self._rate)
                # H.264 gets a 1/90000 s clock so variable-rate sources keep their exact frame
                # times; MPEG-4 Part 2 cannot count above 65535 ticks a second and keeps the
                # frame-rate grid.
                self._time_base = _FINE_TIME_BASE if name != "mpeg4" else 1 / self._rate
                stream.codec_context.time_base = self._time_base
                stream.time_base = self._time_base
                stream.width, stream.height = self._size
                stream.pix_fmt = "yuv420p"
                stream.codec_context.gop_size = max(
                    1, round(float(self._rate) * self.keyframe_interval_s)
                )
                if name == "libx264":
                    # No B-frames: with them the fragmented MP4 starts the pictures two frames
                    # late (no edit list), out of step with the source times and the sound.
                    stream.options = {"crf": str(self.crf), "preset": self.preset, "bf": "0"}
                elif name == "mpeg4":
                    stream.codec_context.bit_rate = int(self._size[0] * self._size[1] * 4)
                stream.codec_context.open()
            except (av.error.FFmpegError, ValueError) as exc:
                errors.append(f"{name}: {exc}")
                continue
            self.codec = name
            if name != self.codecs[0]:
                log.warning("encoder %s unavailable, writing %s instead", self.codecs[0], name)
            return stream
        raise SinkError(f"no video encoder available for {self.path} ({'; '.join(errors)})")

    def _open_audio(self, source_path: str) -> None:
        import av

        try:
            self._audio_in = av.open(source_path)
            in_stream = self._audio_in.streams.audio[0]
            self._audio_out = self._container.add_stream_from_template(in_stream)
            self._audio_packets = self._audio_in.demux(in_stream)
        except (av.error.FFmpegError, ValueError) as exc:
            # Sound is a bonus: a video without it beats no video.
            log.warning("audio of %s not copied: %s", source_path, exc)
            self._close_audio()

    def _close_audio(self) -> None:
        if self._audio_in is not None:
            self._audio_in.close()
        self._audio_in = self._audio_packets = self._audio_out = self._pending_audio = None

    def _copy_audio_until(self, seconds: float) -> None:
        """Mux source audio packets whose time is before ``seconds`` of source time."""
        if self._audio_packets is None:
            return
        while True:
            packet = self._pending_audio or next(self._audio_packets, None)
            self._pending_audio = None
            if packet is None:
                self._close_audio()
                return
            if packet.pts is None or packet.size == 0:
                continue
            packet_time = float(packet.pts * packet.time_base)
            if packet_time >= seconds:
                self._pending_audio = packet
                return
            if packet_time < self._audio_offset:
                continue  # recording started after this sound
            shift = round(self._audio_offset / packet.time_base)
            packet.pts -= shift
            if packet.dts is not None:
                packet.dts -= shift
            packet.stream = self._audio_out
            self._container.mux(packet)

    def write(self, result: FrameResult) -> None:
        import av

        if self._container is None:
            raise SinkError(f"video sink {self.path} written before open()")
        image = result.image
        if (image.shape[1], image.shape[0]) != self._size:
            image = cv2.resize(image, self._size, interpolation=cv2.INTER_AREA)
        if self._first_time is None:
            self._first_time = result.timestamp
            self._audio_offset = result.timestamp
        pts = round((result.timestamp - self._first_time) / self._time_base)
        if pts <= self._last_pts:
            # A seek backwards or a duplicate time: keep the file monotonic, drop the sound
            # (it no longer matches the pictures).
            pts = self._last_pts + 1
            self._close_audio()
        self._last_pts = pts
        # The encoder's YUV 4:2:0 made by OpenCV (BT.601, limited range, as FFmpeg makes it from
        # bgr24, within one level on average): 0.7 ms instead of FFmpeg's 2.2 at 640x480.
        yuv = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_BGR2YUV_I420)
        frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
        frame.pts = pts
        frame.time_base = self._time_base
        self._last_time = result.timestamp
        try:
            self._mux_video(self._video.encode(frame))
            self._copy_audio_until(result.timestamp + 1.0 / float(self._rate))
        except av.error.FFmpegError as exc:
            self._failed = True
            raise SinkError(f"writing {self.path} failed: {exc.strerror or exc}") from exc
        self.frames_written += 1

    def _mux_video(self, packets) -> None:
        """Each picture lasts one nominal frame period, so the file's duration is right."""
        frame_ticks = max(1, round(1 / (self._rate * self._time_base)))
        for packet in packets:
            if not packet.duration:
                packet.duration = frame_ticks
            self._container.mux(packet)

    def close(self) -> None:
        """Flush the encoder and finish the file. After a failed write (a full disk) nothing
        more is muxed: FFmpeg's muxer crashes the process when written to after an error, so
        the file is closed as it is and the first reason stands."""
        import av

        if self._closed or self._container is None:
            return
        self._closed = True
        try:
            if not self._failed:
                self._mux_video(self._video.encode(None))
                if self._first_time is not None and self._audio_packets is not None:
                    self._copy_audio_until(self._last_time + 1.0 / float(self._rate))
        except av.error.FFmpegError as exc:
            self._failed = True
            raise SinkError(f"writing {self.path} failed: {exc.strerror or exc}") from exc
        finally:
            self._close_audio()
            try:
                self._container.close()
            except av.error.FFmpegError as exc:
                if not self._failed:
                    raise SinkError(f"writing {self.path} failed: {exc.strerror or exc}") from exc
            finally:
                self._release_lock()

    def _release_lock(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None


class _NamedWrites:
    """A text file whose failed writes name their output: a full disk under one of several
    keypoint files said only "[Errno 28] No space left on device"."""

    def __init__(self, file, path: Path) -> None:
        self._file = file
        self._path = path

    def write(self, text: str) -> int:
        try:
            return self._file.write(text)
        except OSError as exc:
            raise SinkError(f"writing {self._path} failed: {exc.strerror or exc}") from exc

    def close(self) -> None:
        self._file.close()


class _AtomicTextSink(Sink):
    """Writes to a temporary file beside the target; ``close()`` moves it into place."""

    suffix = ".tmp"

    def __init__(self, path: str | os.PathLike, dataset_info: DatasetInfo = COCO) -> None:
        self.path = Path(path)
        self.dataset_info = dataset_info
        self._file = None
        self._temp_path: str | None = None
        self._lock: OutputLock | None = None

    def open(self, info: SourceInfo) -> None:
        self._lock = _claim_output(self.path)
        try:  # whatever stops the opening (a full disk, Ctrl+C) leaves no file or lock behind
            if self._lock is None:  # a device or FIFO: written as it is
                file = open(self.path, "w", encoding="utf-8", newline="")  # noqa: SIM115
            else:
                handle, self._temp_path = create_temp_beside(self.path, self.suffix)
                file = os.fdopen(handle, "w", encoding="utf-8", newline="")
            self._file = _NamedWrites(file, self.path)
            self._begin(info)
        except BaseException as exc:
            if self._file is not None:
                with contextlib.suppress(OSError):
                    self._file.close()
                self._file = None
            self._release()
            if isinstance(exc, OSError):
                raise SinkError(f"cannot write {self.path}: {exc.strerror}") from exc
            raise

    def _begin(self, info: SourceInfo) -> None:
        """Write the header."""

    def _end(self) -> None:
        """Write the trailer."""

    def close(self) -> None:
        if self._file is None:
            return
        try:
            try:
                self._end()
            finally:
                self._file.close()  # also after a failed write: no descriptor left open
            if self._temp_path is not None:
                os.replace(self._temp_path, self.path)
        except OSError as exc:
            raise SinkError(f"cannot write {self.path}: {exc.strerror}") from exc
        finally:
            self._file = None
            self._release()

    def _release(self) -> None:
        if self._temp_path and os.path.exists(self._temp_path):
            os.unlink(self._temp_path)
        self._temp_path = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None


class JsonKeypointSink(_AtomicTextSink):
    """Per-frame keypoints as mmpose 1.x writes them: ``instance_info`` + ``meta_info``.

    Each frame is ``{"frame_id", "time", "instances": [{track_id, keypoints, keypoint_scores,
    bbox, bbox_score}]}``, plus ``"file_name"`` for images; frames are streamed to
    disk as they come, not kept in memory. ``meta_info`` comes last because it says how the
    input ended (``"input_complete"``, and ``"ended_early"`` with where and why when it
    stopped short), which is known only then.
    """

    def _begin(self, info: SourceInfo) -> None:
        self._info = info
        self._image_names = [Path(p).name for p in list_images(info.uri)] if info.stills else []
        self._file.write('{"instance_info": [\n')
        self._first = True

    def write(self, result: FrameResult) -> None:
        entry = {
            "frame_id": result.index,
            "time": round(result.timestamp, 6),
            "instances": [p.to_dict() for p in result.people],
        }
        if result.index < len(self._image_names):
            entry["file_name"] = self._image_names[result.index]
        self._file.write(("" if self._first else ",\n") + json.dumps(entry))
        self._first = False

    def _end(self) -> None:
        info = self._info
        meta = self.dataset_info.to_dict()
        meta["source"] = info.uri
        meta["fps"] = info.fps
        meta["width"], meta["height"] = info.width, info.height
        meta["input_complete"] = info.complete
        if info.ended_early is not None:
            meta["ended_early"] = info.ended_early.to_dict()
        if info.skipped:
            meta["skipped"] = [entry.to_dict() for entry in info.skipped]
        self._file.write('\n], "meta_info": ' + json.dumps(meta) + "}\n")


class CsvKeypointSink(_AtomicTextSink):
    """One row per keypoint: ``frame, time_s, track_id, keypoint, x, y, score``."""

    def _begin(self, info: SourceInfo) -> None:
        self._writer = csv.writer(self._file)
        self._writer.writerow(["frame", "time_s", "track_id", "keypoint", "x", "y", "score"])

    def write(self, result: FrameResult) -> None:
        names = self.dataset_info.keypoint_names
        time_s = f"{result.timestamp:.6f}"
        for person in result.people:
            for name, (x, y), score in zip(names, person.keypoints, person.keypoint_scores):
                self._writer.writerow(
                    [result.index, time_s, person.track_id, name, f"{x:.2f}", f"{y:.2f}",
                     f"{score:.4f}"]
                )  # fmt: skip


def coco_image_id(path: str, index: int) -> int:
    """COCO ids are the numbers in the file names (000000000139.jpg -> 139); else index + 1."""
    digits = re.findall(r"\d+", Path(path).stem)
    return int(digits[-1]) if digits else index + 1


class CocoResultsSink(_AtomicTextSink):
    """COCO keypoint results (``[{image_id, category_id, keypoints, score}]``) for images.

    The instance score is the box score times the mean score of the confident keypoints, the
    rescoring mmpose applies before COCO evaluation.
    """

    def __init__(
        self, path: str | os.PathLike, dataset_info: DatasetInfo = COCO, kpt_thr: float = 0.2
    ) -> None:
        super().__init__(path, dataset_info)
        self.kpt_thr = kpt_thr
        self._image_paths: list[str] = []

    def _begin(self, info: SourceInfo) -> None:
        self._image_paths = list_images(info.uri) if info.stills else []
        self._file.write("[\n")
        self._first = True

    def write(self, result: FrameResult) -> None:
        if self._image_paths and result.index < len(self._image_paths):
            image_id = coco_image_id(self._image_paths[result.index], result.index)
        else:
            image_id = result.index + 1
        for person in result.people:
            scores = person.keypoint_scores.astype(float)
            confident = scores[scores > self.kpt_thr]
            quality = float(confident.mean()) if confident.size else 0.0
            triplets = np.concatenate([person.keypoints.astype(float), scores[:, None]], axis=1)
            entry = {
                "image_id": image_id,
                "category_id": 1,
                "keypoints": np.round(triplets, 3).reshape(-1).tolist(),
                "score": round(float(person.bbox_score) * quality, 5),
                "track_id": int(person.track_id),
            }
            self._file.write(("" if self._first else ",\n") + json.dumps(entry))
            self._first = False

    def _end(self) -> None:
        self._file.write("\n]\n")
