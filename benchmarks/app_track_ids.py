"""Track IDs created per minute as a user gets them: in the app and from ``hfpose-video``.

    QT_QPA_PLATFORM=offscreen python benchmarks/app_track_ids.py            # opencv_vtest.avi
    python benchmarks/app_track_ids.py --clips opencv_vtest.avi intel_asl_please.mkv --no-app

Unlike ``benchmarks/phantom_people.py``, which replays the detector's boxes on every frame through
the tracker alone, this runs the whole pipeline with its default settings (people followed by
their keypoints between detections, ``det_interval_s``): the app's worker
(:class:`hfpose.app.worker.PipelineWorker`) plays the clip offscreen, every frame, and its
"Export keypoints" file is counted; ``hfpose-video CLIP --save-json`` is counted the same way.
Both build their ``Pipeline`` from the same declared settings
(:func:`hfpose.engine.config.config_from_settings`), so the figures should agree; a difference
would mean the app's tracker is not the CLI's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VIDEOS = REPO.parent / "shared" / "datasets" / "videos"


def ids_in_json(path: Path) -> tuple[int, float, int]:
    """Track IDs, seconds from the first frame to the last, and frames of a keypoint JSON."""
    frames = json.loads(path.read_text())["instance_info"]
    ids = {instance["track_id"] for frame in frames for instance in frame["instances"]}
    seconds = frames[-1]["time"] - frames[0]["time"] if frames else 0.0
    return len(ids), seconds, len(frames)


def run_cli(clip: Path, out: Path) -> float:
    """``hfpose-video`` with its defaults; returns the wall time."""
    started = time.perf_counter()
    command = [sys.executable, "-m", "hfpose.app.video_cli", str(clip), "--save-json", str(out)]
    done = subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    print(done.stderr.decode(errors="replace").strip().splitlines()[-1])  # the run's summary
    return time.perf_counter() - started


def run_app(clip: Path, out: Path, timeout_s: float) -> float:
    """The app's worker plays ``clip`` to its end with the default settings, then exports."""
    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    from hfpose.app.settings import AppSettings
    from hfpose.app.worker import PipelineWorker

    app = QApplication.instance() or QApplication([])
    worker = PipelineWorker()
    loop = QEventLoop()
    errors: list[str] = []
    worker.failed.connect(lambda message: (errors.append(message), loop.quit()))
    worker.finished.connect(loop.quit)
    worker.frame_ready.connect(worker.take_frame)  # what the view does: take the newest
    QTimer.singleShot(int(timeout_s * 1000), loop.quit)
    started = time.perf_counter()
    worker.open(str(clip), AppSettings())
    loop.exec()
    elapsed = time.perf_counter() - started
    if not errors:
        worker.exported.connect(loop.quit)
        worker.export_keypoints(str(out))
        loop.exec()
    worker.shutdown(5.0)
    app.processEvents()
    if errors:
        raise RuntimeError(f"the app failed on {clip.name}: {errors[0]}")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=Path, default=VIDEOS)
    parser.add_argument("--clips", nargs="*", default=["opencv_vtest.avi"])
    parser.add_argument("--no-app", action="store_true", help="the CLI only")
    parser.add_argument("--timeout", type=float, default=1200.0, help="per app run, seconds")
    args = parser.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    print(f"load average {os.getloadavg()[0]:.1f} at the start")
    print("clip | run | IDs | seconds of video | frames | IDs per minute | wall s")
    with tempfile.TemporaryDirectory() as folder:
        for name in args.clips:
            clip = args.videos / name
            runs = {"cli": run_cli}
            if not args.no_app:
                runs["app"] = lambda c, o: run_app(c, o, args.timeout)
            for run_name, run in runs.items():
                out = Path(folder) / f"{clip.stem}.{run_name}.json"
                wall = run(clip, out)
                ids, seconds, frames = ids_in_json(out)
                per_minute = ids * 60 / seconds if seconds else float("nan")
                print(
                    f"{name} | {run_name} | {ids} | {seconds:.1f} | {frames} | {per_minute:.0f} | {wall:.0f}"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
