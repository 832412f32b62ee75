"""The keypoints of the current run, kept for "Export keypoints", and the writer of the file.

The engine's sink thread adds each frame's people as it is shown; the export, asked for later
from the GUI, writes them all at once through the engine's keypoint sinks. The frames the
GUI has not drawn yet wait in a :class:`PeopleFeed`, so the angle plot gets every frame even
when the video view skips to the newest.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

from hfpose.engine.output.angle_sinks import AngleCsvSink
from hfpose.engine.output.sinks import CsvKeypointSink, JsonKeypointSink
from hfpose.engine.results import FrameResult, Person
from hfpose.engine.sources.frame_source import SourceInfo
from hfpose.models.metainfo import DatasetInfo

# Keypoints kept for "Export keypoints": one hour at 30 fps, so a webcam left running for a
# day does not grow without bound (older frames are dropped first).
MAX_KEPT_FRAMES = 30 * 3600


@dataclass
class KeptFrame:
    index: int
    timestamp: float
    people: list[Person]


class KeptKeypoints:
    """Each frame's people of the current run by frame index, the oldest dropped past
    ``MAX_KEPT_FRAMES`` (thread-safe: the sink thread adds, the GUI thread reads)."""

    def __init__(self) -> None:
        self._frames: dict[int, KeptFrame] = {}
        self._lock = threading.Lock()

    def __bool__(self) -> bool:
        with self._lock:
            return bool(self._frames)

    def add(self, index: int, timestamp: float, people: list[Person]) -> None:
        with self._lock:
            self._frames[index] = KeptFrame(index, timestamp, people)
            if len(self._frames) > MAX_KEPT_FRAMES:
                del self._frames[next(iter(self._frames))]

    def clear(self) -> None:
        with self._lock:
            self._frames.clear()

    def in_order(self) -> list[KeptFrame]:
        """A copy, by frame index (a seek may have shown frames out of order)."""
        with self._lock:
            return sorted(self._frames.values(), key=lambda f: f.index)


# Frames waiting for the GUI: ten seconds at 60 fps; a GUI stalled longer loses the oldest.
MAX_FED_FRAMES = 600


class PeopleFeed:
    """The frames' people since the GUI last took them (thread-safe: the sink thread adds,
    the GUI thread takes them all when it shows a frame)."""

    def __init__(self) -> None:
        self._frames: deque[KeptFrame] = deque(maxlen=MAX_FED_FRAMES)
        self._lock = threading.Lock()

    def add(self, index: int, timestamp: float, people: list[Person]) -> None:
        with self._lock:
            self._frames.append(KeptFrame(index, timestamp, people))

    def take(self) -> list[KeptFrame]:
        with self._lock:
            frames = list(self._frames)
            self._frames.clear()
        return frames

    def clear(self) -> None:
        with self._lock:
            self._frames.clear()


ANGLES_SUFFIX = "_angles.csv"  # "Export keypoints" writes the angles to a name ending so


def write_keypoints(
    path: str, frames: list[KeptFrame], info: SourceInfo, dataset_info: DatasetInfo
) -> None:
    """Write ``frames`` to ``path``: JSON (keypoints and angles) if the name ends in .json,
    the angles as ``--save-angles`` writes them if it ends in ``_angles.csv``, else the
    keypoints as CSV.

    Raises :class:`hfpose.engine.output.sinks.SinkError` or OSError when the file cannot be written.
    """
    name = path.lower()
    sink_type = JsonKeypointSink if name.endswith(".json") else CsvKeypointSink
    if name.endswith(ANGLES_SUFFIX):
        sink_type = AngleCsvSink
    sink = sink_type(path, dataset_info)
    sink.open(info)
    for kept in frames:
        sink.write(
            FrameResult(kept.index, kept.timestamp, None, None, kept.people)  # type: ignore[arg-type]
        )
    sink.close()
