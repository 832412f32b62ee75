"""The GUI thread's cost per frame with the angle plot open, against the same clip without it.

    python benchmarks/bench_angle_plot.py [--clip VIDEO ...] [--repeats 2]

The real window plays each clip offscreen in "every-frame" playback (the file's own rate
where the machine keeps up), once with the angle dock hidden and once with it open,
interleaved ``--repeats`` times. For each run it reports the GUI thread's CPU time per shown
frame (``time.thread_time`` on the GUI thread: frame updates, the plot's data and every
paint, offscreen painting being Qt's software rasteriser, as on most desktops), the wall time
of the dock's own per-frame work (feed + curve update), how many frames the dock was fed
against how many the engine delivered (every frame, whatever the GUI skipped), and the frames
shown per second. The GUI keeps up with a video at R fps while its cost per frame stays
under 1000/R ms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VIDEOS = REPO.parent / "shared" / "datasets" / "videos"
DEFAULT_CLIPS = (VIDEOS / "intel_asl_book.mkv", VIDEOS / "mmaction2_demo_skeleton.mp4")


def play(app, window, clip: Path, dock_open: bool) -> dict:
    """Play ``clip`` to its end; the GUI thread's costs while it played."""
    dock = window.angle_dock
    dock.setVisible(dock_open)
    feed_ms: list[float] = []
    feed = type(dock).feed

    def timed_feed(frames) -> None:
        started = time.perf_counter()
        feed(dock, frames)
        feed_ms.append(1000.0 * (time.perf_counter() - started))

    dock.feed = timed_feed
    finished: list[bool] = []
    window.worker.finished.connect(lambda: finished.append(True))
    shown_before = window.frames_shown
    window.open_source(str(clip))
    deadline = time.monotonic() + 600
    while window.frames_shown == shown_before and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.002)
    fed_before = dock.frames_fed
    cpu0, wall0, shown0 = time.thread_time(), time.perf_counter(), window.frames_shown
    while not finished and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.002)
    cpu, wall = time.thread_time() - cpu0, time.perf_counter() - wall0
    shown = window.frames_shown - shown0
    window.worker.finished.disconnect()
    del dock.feed
    return {
        "gui_cpu_ms_per_frame": 1000.0 * cpu / max(shown, 1),
        "feed_ms_median": statistics.median(feed_ms) if feed_ms else 0.0,
        "feed_ms_p95": sorted(feed_ms)[int(0.95 * (len(feed_ms) - 1))] if feed_ms else 0.0,
        "frames_shown": shown,
        "frames_fed": dock.frames_fed - fed_before,
        "shown_fps": shown / wall if wall else 0.0,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clip", action="append", type=Path, help="video(s); default: see doc")
    parser.add_argument("--model", help="keypoint model (default: the shipped one)")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QSettings

    from hfpose.app.app import create_application
    from hfpose.app.main_window import MainWindow
    from hfpose.app.settings import AppSettings, SettingsStore

    app = create_application()
    clips = args.clip or [c for c in DEFAULT_CLIPS if c.exists()]
    with tempfile.TemporaryDirectory(prefix="hfpose-bench-plot-") as scratch:
        store = SettingsStore(QSettings(str(Path(scratch) / "s.ini"), QSettings.Format.IniFormat))
        store.save(AppSettings().replace(backend="cpu", model=args.model, show_hud=False))
        window = MainWindow(store)
        window.resize(1400, 800)
        window.show()
        for clip in clips:
            runs: dict[bool, list[dict]] = {False: [], True: []}
            for _ in range(args.repeats):
                for dock_open in (False, True):
                    runs[dock_open].append(play(app, window, clip, dock_open))
            info = window.source_info
            print(f"{clip.name}: {info.width}x{info.height} at {info.fps:g} fps "
                  f"(keeping up needs < {1000.0 / info.fps:.1f} ms per frame)")  # fmt: skip
            for dock_open, label in ((False, "plot closed"), (True, "plot open  ")):
                r = runs[dock_open]
                cpu = statistics.median(x["gui_cpu_ms_per_frame"] for x in r)
                print(
                    f"  {label}: GUI thread {cpu:.2f} ms CPU per shown frame (runs "
                    f"{[round(x['gui_cpu_ms_per_frame'], 2) for x in r]}); dock feed+draw "
                    f"median {statistics.median(x['feed_ms_median'] for x in r):.2f} ms, p95 "
                    f"{statistics.median(x['feed_ms_p95'] for x in r):.2f} ms; frames shown "
                    f"{[x['frames_shown'] for x in r]}, fed {[x['frames_fed'] for x in r]}, "
                    f"{statistics.median(x['shown_fps'] for x in r):.1f} shown/s"
                )
        window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
