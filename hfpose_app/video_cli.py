"""``hfpose-video``: pose-track a video, camera, stream or image folder from the command line.

A thin shell over :class:`hfpose.engine.pipeline.Pipeline`: it turns flags into a ``PipelineConfig``
and sinks, shows a progress bar with ETA for files, prints a summary, and maps failures to exit
codes with a one-line reason:

- 0: done;
- 1: something failed while opening or processing (not a video, corrupt stream, camera that
  cannot be opened, unwritable output, a file that is not a model, an error mid-run), or the
  input ended before its announced end (cut-short file, dropped stream) and
  ``--allow-truncated`` was not given: everything decoded is written first;
- 2: the command line itself is wrong (unknown option or device, bad value, an input or model
  path that does not exist);
- 130: stopped with Ctrl+C (the video written so far is complete and playable).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from hfpose.app.setting_args import add_setting_arguments, cli_settings
from hfpose.engine.config import config_from_settings
from hfpose.engine.detectors import DETECTOR_NAMES
from hfpose.engine.frame_source import SourceError
from hfpose.engine.keypoint_models import SHIPPED_MODELS
from hfpose.engine.pipeline import Pipeline
from hfpose.engine.results import FrameResult, PipelineError, RunSummary
from hfpose.engine.sinks import (
    CocoResultsSink,
    CsvKeypointSink,
    JsonKeypointSink,
    SinkError,
    VideoSink,
)
from hfpose.engine.sources import is_live_spec

PROG = "hfpose-video"
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(Exception):
    """The command line is wrong (exit 2)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Detect, track and draw human poses with HF-HRNet on a video file, webcam "
        "(webcam:0), RTSP/HTTP stream or image folder.",
        epilog="Exit status: 0 done, 1 failure while opening or processing or an input that "
        "ended early (see --allow-truncated), 2 bad command line, 130 stopped with Ctrl+C (the "
        "video so far stays playable).",
    )
    parser.add_argument("input", help="video file, image folder, webcam:N or rtsp:// / http:// URL")
    parser.add_argument(
        "--out",
        metavar="OUT.mp4",
        help="annotated video (H.264 MP4); default: INPUT_pose.mp4 in the current folder "
        "when no other output is asked for",
    )
    add_setting_arguments(parser)
    parser.add_argument("--save-json", metavar="F", help="per-frame keypoints, mmpose 1.x JSON")
    parser.add_argument("--save-csv", metavar="F", help="one row per keypoint")
    parser.add_argument("--save-coco", metavar="F", help="COCO keypoint results (image folders)")
    parser.add_argument("--no-audio", action="store_true", help="do not copy the input's sound")
    parser.add_argument("--show", action="store_true", help="show the annotated frames (q quits)")
    parser.add_argument(
        "--allow-truncated",
        action="store_true",
        help="exit 0 when the input ends before its announced end (cut-short file, dropped "
        "stream); without it that exits 1, after writing everything decoded",
    )
    return parser


def _has_display() -> bool:
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def _default_out(input_spec: str) -> Path:
    if is_live_spec(input_spec):
        return Path("webcam_pose.mp4")
    return Path(f"{Path(input_spec.rstrip('/')).stem}_pose.mp4")


def _check_paths(args: argparse.Namespace) -> None:
    if not is_live_spec(args.input) and not Path(args.input).exists():
        raise UsageError(f"input not found: {args.input}")
    if args.model and args.model not in SHIPPED_MODELS and not Path(args.model).exists():
        raise UsageError(f"model not found: {args.model}")
    if args.model_config and not Path(args.model_config).exists():
        raise UsageError(f"model config not found: {args.model_config}")
    detector = args.detector
    if detector.lower() not in DETECTOR_NAMES and not Path(detector).exists():
        names = ", ".join(DETECTOR_NAMES)
        raise UsageError(f"detector not found: {detector} (use {names} or a file)")
    if args.show and not _has_display():
        raise UsageError("--show needs a display (none found: DISPLAY/WAYLAND_DISPLAY unset)")


def _make_sinks(args: argparse.Namespace) -> list:
    sinks: list = []
    if args.out:
        sinks.append(VideoSink(args.out, audio=not args.no_audio))
    if args.save_json:
        sinks.append(JsonKeypointSink(args.save_json))
    if args.save_csv:
        sinks.append(CsvKeypointSink(args.save_csv))
    if args.save_coco:
        sinks.append(CocoResultsSink(args.save_coco))
    return sinks


def _summary_line(summary: RunSummary, sinks: list) -> str:
    per_frame = summary.people / summary.frames if summary.frames else 0.0
    runtime = summary.runtime.label if summary.runtime is not None else "?"
    text = (
        f"{summary.frames} frames, {per_frame:.1f} people per frame (max {summary.max_people}), "
        f"{summary.fps:.1f} FPS, keypoints on {runtime}, people detected {summary.detection}: "
        f"on {summary.detected_frames} of {summary.frames} frames"
    )
    if summary.dropped_frames:
        text += f", {summary.dropped_frames} live frames skipped"
    if summary.ended_early is not None:
        text += f"; input incomplete, {summary.ended_early.message}"
    written = [str(s.path) for s in sinks]
    if written:
        text += "; wrote " + ", ".join(written)
    return text


class _Display:
    """Hands the newest annotated frame from the engine's thread to the main thread's window."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._image = None
        self._opened = False

    def offer(self, result: FrameResult) -> None:
        with self._lock:
            self._image = result.image

    def show(self) -> bool:
        """Show the newest frame; False when the user pressed q or Esc or closed the window."""
        import cv2

        with self._lock:
            image, self._image = self._image, None
        if image is not None:
            cv2.imshow(PROG, image)
            self._opened = True
        key = cv2.waitKey(1) & 0xFF
        closed = self._opened and cv2.getWindowProperty(PROG, cv2.WND_PROP_VISIBLE) < 1
        return key not in (ord("q"), 27) and not closed


def _finish_despite_more_ctrl_c() -> None:
    """A second Ctrl+C while the files are being closed would kill the engine's threads
    half-way (keypoint files never moved into place): say we are on it instead. The handler
    stays until the command exits, which it is about to do."""
    if threading.current_thread() is not threading.main_thread():
        return

    def patience(signum: int, frame: object) -> None:
        print(f"{PROG}: finishing the files, one moment", file=sys.stderr)

    signal.signal(signal.SIGINT, patience)


def run(args: argparse.Namespace) -> int:
    """Process one input as the arguments say; returns the exit status."""
    from tqdm import tqdm

    _check_paths(args)
    if not (args.out or args.save_json or args.save_csv or args.save_coco or args.show):
        args.out = str(_default_out(args.input))
    config = config_from_settings(cli_settings(args), source=args.input)
    sinks = _make_sinks(args)
    display = _Display() if args.show else None
    progress: tqdm | None = None

    def on_result(result: FrameResult) -> None:
        if progress is not None:
            progress.update(1)
        if display is not None:
            display.offer(result)

    pipeline = Pipeline(config, sinks=sinks, on_result=on_result)
    pipeline.start()  # raises SourceError / SinkError / ModelError before any work
    info = pipeline.source_info
    progress = tqdm(
        total=None if info.is_live else info.frame_count,
        unit="frame",
        desc=Path(info.uri).name or info.uri,
        file=sys.stderr,
        dynamic_ncols=True,
    )
    interrupted = False
    try:
        while not pipeline.wait(0.03 if display else 0.2):
            if display is not None and not display.show():
                break
    except KeyboardInterrupt:
        interrupted = True
        _finish_despite_more_ctrl_c()
    finally:
        pipeline.stop()
        pipeline.wait(10.0)
        progress.close()
    summary = pipeline.summary()
    if summary.error is not None:
        print(f"{PROG}: error: {summary.error}", file=sys.stderr)
        return EXIT_FAILED
    print(f"{PROG}: {_summary_line(summary, sinks)}", file=sys.stderr)
    if interrupted:
        print(f"{PROG}: interrupted; the files written so far are complete", file=sys.stderr)
        # Python puts SIGINT back to its default action while it shuts down: one more Ctrl+C
        # then would end the process by the signal instead of with status 130.
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        return EXIT_INTERRUPTED
    if summary.ended_early is not None and not args.allow_truncated:
        print(
            f"{PROG}: error: the input ended early ({summary.ended_early.message}); the "
            f"{summary.frames} frames decoded were written (--allow-truncated accepts this)",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format=f"{PROG}: warning: %(message)s")
    parser = build_parser()
    args = parser.parse_args(argv)  # exits 2 with a one-line reason on a bad command line
    try:
        return run(args)
    except UsageError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except (SourceError, SinkError, PipelineError) as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as error:  # noqa: BLE001 - ModelError, DetectorError, ValueError ...
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        print(f"{PROG}: error: {message}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
