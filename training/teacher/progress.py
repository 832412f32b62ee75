"""Resumable labelling: ``hfpose-teacher-label`` works for up to an hour per file, and a stop
(Ctrl+C, SIGTERM, a killed session) must not throw that work away.

The finished items (one per image, as json records) go to a sidecar beside the output,
``OUT.progress.json``, every ``SAVE_INTERVAL_S`` seconds and when the run is stopped, always
written atomically (``write_json``: a temporary file renamed into place), so a kill at any
moment leaves the previous complete save. The same command then skips what is done and builds
the final output from the records, exactly as an uninterrupted run builds it. The sidecar
holds a fingerprint of everything the labels depend on (input file or rows, image folder,
model, rule, ``--limit``): one from another run is refused with what differs, never mixed in.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from hfpose.training.dataset.coco_files import read_json, write_json

PROGRESS_SUFFIX = ".progress.json"
# At most this much labelling is lost to a kill that leaves no time to save (SIGKILL, power).
# A save of all of LSPET's 10,000 people (8.7 MB) took 0.8-1.3 s on a shared 2-core EPYC: at
# most 2% of the time between saves, less earlier in a run.
SAVE_INTERVAL_S = 60.0


def progress_path(output: Path) -> Path:
    """The sidecar of ``output``: beside it, so that it moves and is found with it."""
    return output.with_name(output.name + PROGRESS_SUFFIX)


class LabelProgress:
    """The finished records of one labelling run, loaded from and saved to its sidecar.

    ``path=None`` keeps them in memory only (a caller that cannot be resumed, e.g. a check)."""

    def __init__(
        self, path: Path | None = None, fingerprint: dict | None = None, command: str = ""
    ) -> None:
        self.path = path
        self.fingerprint = fingerprint or {}
        self.command = command
        self.records: list = []
        self.total = 0
        earlier_seconds = 0.0
        if path is not None and path.is_file():
            saved = self._read(path)
            self._refuse_other_run(saved)
            self.records = saved["records"]
            earlier_seconds = saved["seconds"]
        self._saved = len(self.records)
        self._saved_at = time.perf_counter()
        # Labelling time across every session of the run, for the output's ``seconds``.
        self.started = time.perf_counter() - earlier_seconds

    @staticmethod
    def _read(path: Path) -> dict:
        try:
            saved = read_json(path)
            keys = {"fingerprint", "command", "total", "seconds", "records"}
            if isinstance(saved, dict) and keys <= saved.keys():
                return saved
            problem = "not a progress file"
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            problem = str(error)
        raise SystemExit(f"cannot resume from {path} ({problem}): delete it to start over")

    def _refuse_other_run(self, saved: dict) -> None:
        stored = saved["fingerprint"]
        differ = sorted(k for k in stored.keys() | self.fingerprint.keys()
                        if stored.get(k) != self.fingerprint.get(k))  # fmt: skip
        if differ:
            raise SystemExit(
                f"{self.path} holds {len(saved['records']):,} of {saved['total']:,} images labelled "
                f"with a different {', '.join(differ)}: continue that run with\n  {saved['command']}\n"
                "or delete the file to start this one over"
            )

    @property
    def done(self) -> int:
        return len(self.records)

    def begin(self, total: int) -> int:
        """The index of the first item still to label out of ``total``, said when resuming."""
        self.total = total
        if self.records:
            print(f"resuming: {self.done:,} of {total:,} images already labelled", file=sys.stderr)
        return self.done

    def add(self, record: object) -> None:
        """One finished item (json-able), saved with the others when the last save is old."""
        self.records.append(record)
        if time.perf_counter() - self._saved_at >= SAVE_INTERVAL_S:
            self.save()

    def save(self) -> None:
        """Write the records to the sidecar, unless it already holds them all."""
        if self.path is None or self._saved == self.done:
            return
        progress = {
            "fingerprint": self.fingerprint,
            "command": self.command,
            "total": self.total,
            "seconds": round(time.perf_counter() - self.started, 1),
            "records": self.records,
        }
        write_json(progress, self.path)
        self._saved, self._saved_at = self.done, time.perf_counter()

    def finish(self) -> None:
        """The output is written: the sidecar has served."""
        if self.path is not None:
            self.path.unlink(missing_ok=True)
