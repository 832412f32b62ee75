"""GUI soak: the real app window plays a clip over and over for half an hour, then quits.

    python benchmarks/app_soak.py                          # 30 minutes, offscreen
    python benchmarks/app_soak.py --minutes 2 --record     # shorter, recording all along
    python benchmarks/app_soak.py --clip ../shared/datasets/videos/opencv_vtest.avi --csv soak.csv
    xvfb-run -a python benchmarks/app_soak.py --clip ../shared/datasets/videos/opencv_vtest.avi

What killed the app after minutes of live view (PySide6/shiboken6 6.12.0 dropping a reference
to ``True`` or ``None`` on each Qt call, docs/app.md) shows here as counts of ``True`` and
``None`` falling block after block, then an abort (exit 134). Every ``--every-s`` seconds the
script prints (and with ``--csv`` writes) the frames shown and the rate since the last sample,
the times the clip was opened, both counts, the resident and unique memory (RSS, USS), what
glibc's malloc has in use and keeps free (a resident memory that grows while "used" stays level
is memory malloc keeps, not a leak; blank elsewhere), the threads and the finished runs still
alive. At the end it closes the window as Ctrl+Q does,
leaves as ``hfpose`` does (pending exports flushed, engine threads ended) and exits 0 only if
the counts held (lost fewer than one per four frames shown), frames kept coming, the resident
memory levelled off (the last sample within 10% of the one a quarter into the run: the first
minutes fill caches and pools) and the recording, if any, was finalised. A benchmark, not a
test: it takes as long as it is told to. ``tests/test_qt_references.py`` checks the counts over
300 frames, ``tests/test_app_memory.py`` that finished runs are freed at once.
"""

from __future__ import annotations

import argparse
import csv
import gc
import sys
import tempfile
import time
from pathlib import Path

import psutil

from hfpose.app.platform_check import offscreen_unless_display

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CLIP = REPO / "tests" / "data" / "videos" / "intel_asl_walk_1s5.mp4"
RSS_GROWTH_LIMIT = 0.10  # last sample against the one a quarter into the run
COLUMNS = ("elapsed_s", "frames_shown", "fps", "opened", "refs_true", "refs_none", "rss_mib",
           "uss_mib", "malloc_used_mib", "malloc_free_mib", "threads", "runs_alive")  # fmt: skip


def soak(
    clip: Path, minutes: float, every_s: float, record: bool, backend: str, csv_path: Path | None
) -> int:
    from PySide6.QtCore import QSettings, QTimer

    from hfpose.app.app import create_application, engine_threads_ended
    from hfpose.app.malloc_arenas import malloc_heap
    from hfpose.app.settings import AppSettings, SettingsStore
    from hfpose.engine.pipeline import Pipeline

    app = create_application()
    from hfpose.app.main_window import MainWindow

    scratch = Path(tempfile.mkdtemp(prefix="hfpose-app-soak-"))
    store = SettingsStore(QSettings(str(scratch / "hfpose.ini"), QSettings.Format.IniFormat))
    # real time: frames arrive at the clip's rate and the slow ones are skipped, as a camera's
    store.save(
        AppSettings().replace(backend=backend, playback="real-time", record_dir=str(scratch))
    )
    window = MainWindow(store)
    window.resize(1100, 740)
    window.show()
    process = psutil.Process()
    started = time.monotonic()
    samples: list[dict[str, float]] = []
    errors: list[str] = []
    recordings: list[str] = []
    opened = [0]
    table = csv_path.open("w", newline="") if csv_path else None  # flushed per row: an abort
    writer = csv.writer(table) if table else None  # keeps what was measured until then
    if writer:
        writer.writerow(COLUMNS)

    def play() -> None:
        opened[0] += 1
        window.open_source(str(clip))

    window.worker.failed.connect(errors.append)
    window.worker.recording_stopped.connect(recordings.append)
    window.worker.finished.connect(play)

    def sample() -> None:
        elapsed = time.monotonic() - started
        memory = process.memory_full_info()
        previous = samples[-1] if samples else {"elapsed_s": 0.0, "frames_shown": 0}
        shown = window.frames_shown - previous["frames_shown"]
        heap = malloc_heap()  # glibc only: blank elsewhere
        used = round((heap.in_use + heap.mapped) / 2**20, 1) if heap else ""
        free = round((heap.held - heap.in_use) / 2**20, 1) if heap else ""
        row = dict(zip(COLUMNS, (
            round(elapsed, 1), window.frames_shown,
            round(shown / max(elapsed - previous["elapsed_s"], 1e-9), 2), opened[0],
            sys.getrefcount(True), sys.getrefcount(None), round(memory.rss / 2**20, 1),
            round(memory.uss / 2**20, 1), used, free, process.num_threads(),
            sum(isinstance(o, Pipeline) for o in gc.get_objects()),
        )))  # fmt: skip
        samples.append(row)
        if writer:
            writer.writerow(row.values())
            table.flush()
        print(f"{elapsed / 60:6.1f} min  {row['frames_shown']:7d} frames shown "
              f"({row['fps']:5.1f} fps)  opened {row['opened']:4d}  refcount True "
              f"{row['refs_true']:6d}  None {row['refs_none']:7d}  RSS {row['rss_mib']:6.0f} MiB  "
              f"USS {row['uss_mib']:6.0f} MiB  malloc used {row['malloc_used_mib']!s:>6} free "
              f"{row['malloc_free_mib']!s:>6} MiB  threads {row['threads']:3d}  runs alive "
              f"{row['runs_alive']}", flush=True)  # fmt: skip
        if elapsed >= minutes * 60:
            window.worker.finished.disconnect(play)  # a clip ending now is not played again
            window.close()  # as Ctrl+Q: stops the engine, finalises the recording

    def start_recording() -> None:
        if window.frames_shown and not window.worker.recording_path:
            window.toggle_record()
        elif not window.frames_shown:
            QTimer.singleShot(500, start_recording)

    timer = QTimer()
    timer.timeout.connect(sample)
    timer.start(round(every_s * 1000))
    play()
    if record:
        QTimer.singleShot(500, start_recording)
    code = app.exec()
    timer.stop()
    if table:
        table.close()
    window.worker.finish_pending_io()
    threads_ended = engine_threads_ended(grace_s=5.0)

    first = next((s for s in samples if s["frames_shown"] > 0), samples[0])
    last = samples[-1]
    settled = next(s for s in samples if s["elapsed_s"] >= last["elapsed_s"] / 4)
    frames = last["frames_shown"] - first["frames_shown"]
    lost_true = first["refs_true"] - last["refs_true"]
    lost_none = first["refs_none"] - last["refs_none"]
    growth = last["rss_mib"] / settled["rss_mib"] - 1
    print(f"{frames} frames shown in {(last['elapsed_s'] - first['elapsed_s']) / 60:.1f} min "
          f"after the first ({opened[0]} plays of the clip); lost references: True {lost_true}, "
          f"None {lost_none}; RSS {first['rss_mib']:.0f} -> {settled['rss_mib']:.0f} (at "
          f"{settled['elapsed_s'] / 60:.1f} min) -> {last['rss_mib']:.0f} MiB "
          f"({100 * growth:+.1f}%); engine threads ended: {threads_ended}; "
          f"errors: {errors or 'none'}")  # fmt: skip
    problems = []
    if frames <= 0:
        problems.append("no frame shown")
    if max(lost_true, lost_none) >= max(frames // 4, 1):
        problems.append("references to True/None lost: the interpreter will abort")
    if growth > RSS_GROWTH_LIMIT:
        problems.append(f"resident memory still growing: {100 * growth:+.1f}% in the last 3/4")
    if record and not (recordings and Path(recordings[-1]).is_file()):
        problems.append("the recording was not finalised")
    if errors or not threads_ended or code != 0:
        problems.append("the window did not close cleanly")
    for problem in problems:
        print(f"app_soak: {problem}", file=sys.stderr)
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clip", type=Path, default=DEFAULT_CLIP, help="video played in a loop")
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--every-s", type=float, default=60.0, help="seconds between samples")
    parser.add_argument("--record", action="store_true", help="record the whole soak")
    parser.add_argument("--backend", default="cpu")
    parser.add_argument("--csv", type=Path, help="write every sample to this CSV file")
    args = parser.parse_args(argv)
    if not args.clip.is_file():
        parser.error(f"clip not found: {args.clip}")
    offscreen_unless_display()
    return soak(args.clip, args.minutes, args.every_s, args.record, args.backend, args.csv)


if __name__ == "__main__":
    sys.exit(main())
