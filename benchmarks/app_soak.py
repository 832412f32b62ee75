"""GUI soak: the real app window plays a clip over and over for half an hour, then quits.

    python benchmarks/app_soak.py                          # 30 minutes, offscreen
    python benchmarks/app_soak.py --minutes 2 --record     # shorter, recording all along
    xvfb-run -a python benchmarks/app_soak.py --clip ../shared/datasets/videos/opencv_vtest.avi

What killed the app after minutes of live view (PySide6/shiboken6 6.12.0 dropping a reference
to ``True`` or ``None`` on each Qt call, docs/app.md) shows here as counts of ``True`` and
``None`` falling block after block, then an abort (exit 134). Every ``--every-s`` seconds the
script prints the frames shown, both counts and the resident memory; at the end it closes the
window as Ctrl+Q does, leaves as ``hfpose`` does (pending exports flushed, engine threads
ended) and exits 0 only if the counts held (lost fewer than one per four frames shown), frames
kept coming and the recording, if any, was finalised. A benchmark, not a test: it takes as long
as it is told to. ``tests/test_qt_references.py`` checks the counts over 300 frames.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import psutil

from hfpose.app.platform_check import offscreen_unless_display

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CLIP = REPO / "tests" / "data" / "videos" / "intel_asl_walk_1s5.mp4"


def soak(clip: Path, minutes: float, every_s: float, record: bool, backend: str) -> int:
    from PySide6.QtCore import QSettings, QTimer

    from hfpose.app.app import create_application, engine_threads_ended
    from hfpose.app.settings import AppSettings, SettingsStore

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
    samples: list[tuple[float, int, int, int, float]] = []
    errors: list[str] = []
    recordings: list[str] = []
    window.worker.failed.connect(errors.append)
    window.worker.recording_stopped.connect(recordings.append)
    window.worker.finished.connect(lambda: window.open_source(str(clip)))

    def sample() -> None:
        elapsed = time.monotonic() - started
        row = (
            elapsed,
            window.frames_shown,
            sys.getrefcount(True),
            sys.getrefcount(None),
            process.memory_info().rss / 2**20,
        )
        samples.append(row)
        print(f"{elapsed / 60:6.1f} min  {row[1]:7d} frames shown  refcount True {row[2]:6d}  "
              f"None {row[3]:7d}  RSS {row[4]:6.0f} MiB", flush=True)  # fmt: skip
        if elapsed >= minutes * 60:
            window.close()  # as Ctrl+Q: stops the engine, finalises the recording

    def start_recording() -> None:
        if window.frames_shown and not window.worker.recording_path:
            window.toggle_record()
        elif not window.frames_shown:
            QTimer.singleShot(500, start_recording)

    timer = QTimer()
    timer.timeout.connect(sample)
    timer.start(round(every_s * 1000))
    window.open_source(str(clip))
    if record:
        QTimer.singleShot(500, start_recording)
    code = app.exec()
    timer.stop()
    window.worker.finish_pending_io()
    threads_ended = engine_threads_ended(grace_s=5.0)

    first = next((s for s in samples if s[1] > 0), samples[0])
    last = samples[-1]
    frames = last[1] - first[1]
    lost_true, lost_none = first[2] - last[2], first[3] - last[3]
    print(f"{frames} frames shown in {(last[0] - first[0]) / 60:.1f} min after the first; "
          f"lost references: True {lost_true}, None {lost_none}; RSS {first[4]:.0f} -> "
          f"{last[4]:.0f} MiB; engine threads ended: {threads_ended}; errors: {errors or 'none'}")  # fmt: skip
    problems = []
    if frames <= 0:
        problems.append("no frame shown")
    if max(lost_true, lost_none) >= max(frames // 4, 1):
        problems.append("references to True/None lost: the interpreter will abort")
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
    args = parser.parse_args(argv)
    if not args.clip.is_file():
        parser.error(f"clip not found: {args.clip}")
    offscreen_unless_display()
    return soak(args.clip, args.minutes, args.every_s, args.record, args.backend)


if __name__ == "__main__":
    sys.exit(main())
