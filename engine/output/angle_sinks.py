"""Angle and repetition files: ``--save-angles`` (one row per frame and person) and
``--save-reps`` (one row per repetition), written atomically as the keypoint files are."""

from __future__ import annotations

import csv
import math
import os

from hfpose.engine.angles import angle_table
from hfpose.engine.output.sinks import _AtomicTextSink
from hfpose.engine.repetitions import RepetitionConfig, RepetitionCounter
from hfpose.engine.results import FrameResult
from hfpose.engine.sources.frame_source import SourceInfo
from hfpose.models.metainfo import COCO, DatasetInfo


def degrees_cell(value: float) -> str:
    """An angle as a CSV cell: two decimals, empty where it is missing (NaN)."""
    return "" if math.isnan(value) else f"{value:.2f}"


class AngleCsvSink(_AtomicTextSink):
    """``frame, time_s, track_id`` and one column per angle the skeleton allows, in degrees;
    times are the source's timestamps."""

    def _begin(self, info: SourceInfo) -> None:
        self._names = angle_table(self.dataset_info.keypoint_names).names
        self._writer = csv.writer(self._file)
        self._writer.writerow(["frame", "time_s", "track_id", *self._names])

    def write(self, result: FrameResult) -> None:
        time_s = f"{result.timestamp:.6f}"
        for person in result.people:
            angles = person.angles
            cells = [degrees_cell(angles.get(name, math.nan)) for name in self._names]
            self._writer.writerow([result.index, time_s, person.track_id, *cells])


REPETITION_COLUMNS = (
    "track_id", "angle", "rep", "start_s", "end_s", "duration_s", "min_deg", "max_deg",
    "range_deg",
)  # fmt: skip


class RepetitionCsvSink(_AtomicTextSink):
    """One row per repetition of ``config.angle``, per track, as each one completes."""

    def __init__(
        self,
        path: str | os.PathLike,
        config: RepetitionConfig,
        dataset_info: DatasetInfo = COCO,
    ) -> None:
        super().__init__(path, dataset_info)
        self.config = config
        self._counters: dict[int, RepetitionCounter] = {}

    def _begin(self, info: SourceInfo) -> None:
        self._writer = csv.writer(self._file)
        self._writer.writerow(REPETITION_COLUMNS)

    def write(self, result: FrameResult) -> None:
        c = self.config
        for person in result.people:
            counter = self._counters.get(person.track_id)
            if counter is None:
                counter = RepetitionCounter(c.low, c.high, c.max_gap_s)
                self._counters[person.track_id] = counter
            rep = counter.update(result.timestamp, person.angles.get(c.angle, math.nan))
            if rep is not None:
                self._writer.writerow(
                    [person.track_id, c.angle, rep.number, f"{rep.start_s:.6f}",
                     f"{rep.end_s:.6f}", f"{rep.duration_s:.3f}", f"{rep.min_deg:.2f}",
                     f"{rep.max_deg:.2f}", f"{rep.range_deg:.2f}"]
                )  # fmt: skip
