"""Image folders and single images: stills played in name order, not a video.

The sinks list a folder's images the same way (:func:`list_images`) to name their results.
"""

from __future__ import annotations

import glob
import logging
import os
import stat
from fractions import Fraction

import cv2
import numpy as np

from hfpose.engine.sources.frame_source import (
    Frame,
    FrameSource,
    SkippedEntry,
    SourceError,
    SourceInfo,
)

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


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

    ``fps`` is nominal, for timestamps and an annotated video of the pictures. An entry that
    cannot be read (a truncated JPEG, a text file named ``.jpg``, a subfolder named like an
    image) is passed over with one warning and listed in ``info.skipped``; the frames keep
    their place in the listing as their index, so results name the right file.
    """

    def __init__(self, folder: str | os.PathLike, fps: float = 30.0) -> None:
        self._folder = str(folder)
        single = is_image_file(self._folder)
        if not single and not os.path.isdir(self._folder):
            raise SourceError(f"image folder not found: {self._folder}")
        self.paths = list_images(self._folder)
        if not self.paths:
            raise SourceError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {self._folder}")
        self._fps = float(fps)
        self._next = 0
        self._skipped: list[SkippedEntry] = []
        first = self._read_next()
        if first is None:
            reasons = "; ".join(f"{s.name}: {s.reason}" for s in self._skipped[:3])
            raise SourceError(f"no readable image in {self._folder} ({reasons})")
        self._first: Frame | None = first
        self.info = SourceInfo(
            kind="image" if single else "folder",
            uri=self._folder,
            width=first.image.shape[1],
            height=first.image.shape[0],
            fps=float(fps),
            frame_count=len(self.paths),
            duration=len(self.paths) / fps,
            seekable=True,
            rate=Fraction(fps).limit_denominator(1001),
            stills=True,
            skipped=self._skipped,
        )

    def _read_next(self) -> Frame | None:
        """The next readable image from ``_next`` on; unreadable ones are skipped and noted."""
        while self._next < len(self.paths):
            index = self._next
            self._next += 1
            path = self.paths[index]
            image, reason = _load(path)
            if image is not None:
                return Frame(image, index, index / self._fps)
            if all(s.name != path for s in self._skipped):  # a seek back meets it again
                log.warning("skipped %s: %s", path, reason)
                self._skipped.append(SkippedEntry(path, reason))
        return None

    def read(self) -> Frame | None:
        if self._first is not None:
            first, self._first = self._first, None
            return first
        return self._read_next()

    def seek(self, seconds: float) -> None:
        self._first = None
        self._next = min(len(self.paths), max(0, round(seconds * self.info.fps)))


def _load(path: str) -> tuple[np.ndarray | None, str]:
    """The image at ``path``, or ``None`` and why it cannot be read."""
    try:
        mode = os.stat(path).st_mode  # follows links: a link to a gone photo fails here
        if stat.S_ISDIR(mode):
            return None, "a folder, not an image"
        if not stat.S_ISREG(mode):  # opening a pipe would wait for a writer forever
            return None, "not a regular file (a pipe or a device)"
        with open(path, "rb") as file:
            data = file.read()
    except OSError as exc:  # gone, no read permission, a disk error
        return None, f"cannot be read ({exc.strerror or exc})"
    # checked first: the decoders fill the missing part (JPEG, with only a warning) or print
    # a line of their own (libpng)
    cut_short = _cut_short_kind(data)
    if cut_short:
        return None, f"a {cut_short} cut short (its end is missing)"
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        return None, "not a readable image (damaged, or not an image file)"
    return image, ""


def _cut_short_kind(data: bytes) -> str | None:
    """The kind of image ("JPEG", "PNG") ``data`` is when its end is missing, else None: a
    JPEG whose last scan has no end marker after it (scan data cannot contain the marker, and
    makers' trailers come after it), a PNG without its closing IEND chunk."""
    if data.startswith(b"\xff\xd8"):
        last_scan = data.rfind(b"\xff\xda")
        return "JPEG" if last_scan < 0 or data.find(b"\xff\xd9", last_scan) < 0 else None
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return None if b"IEND" in data[-64:] else "PNG"
    return None
