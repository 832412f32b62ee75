"""Image folders and single images: stills played in name order, not a video.

The sinks list a folder's images the same way (:func:`list_images`) to name their results.
"""

from __future__ import annotations

import glob
import os
from fractions import Fraction

import cv2
import numpy as np

from hfpose.engine.frame_source import Frame, FrameSource, SourceError, SourceInfo

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
