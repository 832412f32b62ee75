"""Capture-to-display latency of a file played as the app plays it: every frame, or real time.

    python benchmarks/playback_latency.py                      # opencv_vtest.avi, CPU, 30 s runs
    python benchmarks/playback_latency.py --clip other.mp4 --seconds 60 --rounds 3

The clip is released at its own frame rate (the app's ``PacedSource``) into the pipeline with
the app's settings (``hfpose.app.worker.pipeline_config``), once per playback mode, the modes
interleaved ``--rounds`` times so that other load on the machine falls on both alike. For each
run: frames shown, how far the media clock got, frames skipped, and the latency of the frames
shown (source hand-over to the pipeline's output, the app's "latency" figure) after the first
``--warmup`` frames, median and maximum.

On a clip slower to process than real time, "every frame" plays slower than the clip and its
latency is the frames waiting between the stages; "real time" keeps only the newest frame at
each hand-over, so its latency should stay near one frame's processing time. Frames shown do
not compare across modes: "every frame" stays near the clip's start, "real time" crosses it, and
the number of people (the keypoint stage's work) differs along the way.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

from hfpose.app.paced_source import PacedSource
from hfpose.app.settings import PLAYBACK_MODES, AppSettings
from hfpose.app.worker import pipeline_config
from hfpose.engine.config import available_cores
from hfpose.engine.pipeline import Pipeline
from hfpose.engine.results import FrameResult
from hfpose.engine.sources.opening import open_source

REPO_ROOT = Path(__file__).resolve().parents[1]

DEFAULT_CLIP = REPO_ROOT.parent / "shared" / "datasets" / "videos" / "opencv_vtest.avi"


def measure(
    clip: Path,
    playback: str,
    seconds: float,
    warmup: int,
    backend: str = "cpu",
    pipeline_class: type = Pipeline,
) -> dict[str, float]:
    """Play ``clip`` for ``seconds`` in ``playback`` mode; the figures of one run."""
    settings = AppSettings().replace(backend=backend, playback=playback)
    results: list[FrameResult] = []
    source = PacedSource(open_source(str(clip)))
    pipeline = pipeline_class(pipeline_config(source, settings), on_result=results.append)
    pipeline.start()
    time.sleep(seconds)
    pipeline.stop()
    pipeline.wait(30)
    if len(results) <= warmup:
        raise SystemExit(f"only {len(results)} frames shown in {seconds} s: run longer")
    latencies = [r.latency_ms / 1000.0 for r in results[warmup:]]
    return {
        "shown": len(results),
        "media_s": results[-1].timestamp,
        "skipped": results[-1].dropped_frames,
        "median_s": statistics.median(latencies),
        "max_s": max(latencies),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clip", type=Path, default=DEFAULT_CLIP)
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each run")
    parser.add_argument("--rounds", type=int, default=2, help="runs per mode, interleaved")
    parser.add_argument("--warmup", type=int, default=3, help="first frames left out")
    parser.add_argument("--backend", default="cpu")
    args = parser.parse_args(argv)
    if not args.clip.is_file():
        parser.error(f"{args.clip} not found")
    cpu = platform.processor() or platform.machine()
    print(f"{args.clip.name}, {args.seconds:.0f} s runs, backend {args.backend}, {cpu}, ", end="")
    print(f"{available_cores()} cores")
    print("| mode | frames shown | media time reached | skipped | latency median | max |")
    print("|---|---|---|---|---|---|")
    for _ in range(args.rounds):
        for mode in PLAYBACK_MODES:
            r = measure(args.clip, mode, args.seconds, args.warmup, args.backend)
            print(
                f"| {mode} | {r['shown']} | {r['media_s']:.1f} s | {r['skipped']} "
                f"| {r['median_s']:.2f} s | {r['max_s']:.2f} s |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
