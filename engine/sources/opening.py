"""Opening what the user typed, and the cameras there are to choose from.

``open_source`` turns a path, ``webcam:N`` or an RTSP/HTTP URL into the right reader
(:mod:`~hfpose.engine.sources.video_file`, :mod:`~hfpose.engine.sources.image_folder`,
:mod:`~hfpose.engine.sources.live`); ``is_live_spec`` tells a caller, before opening, whether
the input is live (the CLI checks the path of anything else); ``list_cameras`` names the
cameras for the app's menu. The readers' shared types live in
:mod:`~hfpose.engine.sources.frame_source`. One place decides what a typed input means, so the app,
the CLI and the engine read it alike.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2

from hfpose.engine.sources.frame_source import FrameSource
from hfpose.engine.sources.image_folder import ImageFolderSource, is_image_file
from hfpose.engine.sources.live import CameraSource, StreamSource, open_stream_container
from hfpose.engine.sources.video_file import VideoFileSource

STREAM_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://")
# Schemes that serve files as well as live streams: a URL whose source announces a length is
# read as a file (every frame, in order); RTSP, RTMP, UDP and TCP are always live.
FILE_SCHEMES = ("http://", "https://")
_WEBCAM_SPEC = re.compile(r"^(?:webcam|camera|cam):(\d+)$", re.IGNORECASE)


@dataclass(frozen=True)
class CameraInfo:
    """A camera the OS reports; ``spec`` is what :func:`open_source` accepts."""

    index: int
    name: str
    device: str

    @property
    def spec(self) -> str:
        return f"webcam:{self.index}"


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


def open_url(url: str, timeout_s: float = 10.0) -> FrameSource:
    """A network source: a file when the server's data announces a length (a video served
    over HTTP: every frame, in order, a transfer cut short reported as for a local file),
    else a live stream (newest frame only; HLS live, MJPEG cameras, RTSP...)."""
    container = open_stream_container(url, timeout_s)
    video = container.streams.video[0]
    if url.lower().startswith(FILE_SCHEMES) and (container.duration or video.frames):
        return VideoFileSource(url, container=container, timeout_s=timeout_s)
    return StreamSource(url, container=container)


def open_source(spec: str | int | os.PathLike, folder_fps: float = 30.0) -> FrameSource:
    """Open whatever the user typed: a video, an image, a folder of images, ``webcam:N`` or an
    RTSP/HTTP URL."""
    camera = parse_camera_index(spec) if not isinstance(spec, os.PathLike) else None
    if camera is not None:
        return CameraSource(camera)
    text = os.fspath(spec)
    if text.lower().startswith(STREAM_SCHEMES):
        return open_url(text)
    if os.path.isdir(text) or is_image_file(text):
        return ImageFolderSource(text, fps=folder_fps)
    return VideoFileSource(text)
