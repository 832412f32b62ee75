"""What every input is: the :class:`FrameSource` interface and what it hands out.

Every source yields :class:`Frame` objects (BGR uint8 image, index, timestamp in seconds) and
describes itself with a :class:`SourceInfo` so sinks know the frame rate, duration and audio;
an input that stops short says where and why in an :class:`EarlyEnd`. Kept apart from the
readers so the pipeline, the sinks and the app can name these types without importing a
decoder.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np


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


@dataclass(frozen=True)
class SkippedEntry:
    """An entry of the input that could not be read and was passed over (a bad photo in a
    folder): the run goes on with the rest."""

    name: str
    reason: str

    def to_dict(self) -> dict:
        return {"name": self.name, "reason": self.reason}


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
    # Entries passed over because they could not be read (an image folder's bad photos).
    skipped: list[SkippedEntry] = field(default_factory=list)
    # Set when the source delivered its last frame: the input was read to its end (not
    # stopped by the user, not ended by an error).
    read_to_end: bool = False

    @property
    def complete(self) -> bool:
        """Every frame of the input was read: to its end, none skipped, nothing missing."""
        return self.read_to_end and self.ended_early is None and not self.skipped


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
