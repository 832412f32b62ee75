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
- 130: stopped with Ctrl+C, 143 with SIGTERM (``kill``, ``timeout``, a service manager):
  every output is finished first (the video written so far is complete and playable).

Every output (``--out`` and each ``--save-*`` option) is checked against the inputs and the
other outputs before anything is opened: one that would overwrite an input or another output
is a command-line mistake (exit 2).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import sys
import threading
from pathlib import Path
from urllib.parse import urlsplit

from hfpose.app.platform_check import has_display
from hfpose.app.setting_args import add_setting_arguments, cli_settings
from hfpose.engine.config import PipelineConfig, config_from_settings
from hfpose.engine.detection.factory import DETECTOR_NAMES
from hfpose.engine.keypoints.families import SHIPPED_MODELS
from hfpose.engine.output.angle_sinks import AngleCsvSink, RepetitionCsvSink
from hfpose.engine.output.output_files import OutputConflictError, check_outputs, writes_through
from hfpose.engine.output.sinks import (
    CocoResultsSink,
    CsvKeypointSink,
    JsonKeypointSink,
    SinkError,
    VideoSink,
    container_for,
)
from hfpose.engine.pipeline import Pipeline
from hfpose.engine.results import FrameResult, PipelineError, RunSummary
from hfpose.engine.sources.frame_source import SourceError
from hfpose.engine.sources.image_folder import list_images
from hfpose.engine.sources.opening import is_live_spec, parse_camera_index

PROG = "hfpose-video"
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
# Every option that writes a file is --out or --save-*: the output-path check covers each one
# by this rule, those added later included.
OUTPUT_OPTION = re.compile(r"^(out|save_\w+)$")


class UsageError(Exception):
    """The command line is wrong (exit 2)."""


class Terminated(KeyboardInterrupt):
    """SIGTERM: stopped as Ctrl+C stops (every output finished), exit 128 + the signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated(signum)


def _stop_on_signals() -> None:
    """Make SIGTERM stop the run the way Ctrl+C does, instead of killing it mid-write; and
    SIGINT stop it even where it came in ignored (a job a shell without job control started
    in the background, as hfpose-train does: ``kill -INT`` still means stop)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_terminated)
        if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
            signal.signal(signal.SIGINT, signal.default_int_handler)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Detect, track and draw human poses with HF-HRNet on a video file, webcam "
        "(webcam:0), RTSP/HTTP stream or image folder.",
        epilog="Exit status: 0 done, 1 failure while opening or processing or an input that "
        "was not read completely (see --allow-truncated), 2 bad command line (an output that "
        "would overwrite an input or another output included), 130 stopped with Ctrl+C, 143 "
        "with SIGTERM (the outputs so far are finished, the video playable).",
    )
    parser.add_argument("input", help="video file, image folder, webcam:N or rtsp:// / http:// URL")
    parser.add_argument(
        "--out",
        metavar="OUT.mp4",
        help="annotated video (H.264 in .mp4, or .mkv); default: INPUT_pose.mp4 in the "
        "current folder when no other output is asked for",
    )
    add_setting_arguments(parser)
    parser.add_argument("--save-json", metavar="F", help="per-frame keypoints, mmpose 1.x JSON")
    parser.add_argument("--save-csv", metavar="F", help="one row per keypoint")
    parser.add_argument("--save-coco", metavar="F", help="COCO keypoint results (image folders)")
    parser.add_argument(
        "--save-angles", metavar="F", help="joint and segment angles, one row per frame and person"
    )
    parser.add_argument(
        "--save-reps", metavar="F", help="repetitions of --reps-angle, one row per repetition"
    )
    parser.add_argument("--no-audio", action="store_true", help="do not copy the input's sound")
    parser.add_argument("--show", action="store_true", help="show the annotated frames (q quits)")
    parser.add_argument(
        "--allow-truncated",
        action="store_true",
        help="exit 0 when the input was not read completely (a cut-short file, a dropped "
        "stream, unreadable images skipped in a folder); without it that exits 1, after "
        "writing everything read",
    )
    return parser


def _has_display() -> bool:
    if sys.platform.startswith("linux"):
        return has_display()
    return True


def _default_out(input_spec: str) -> Path:
    if parse_camera_index(input_spec) is not None:
        return Path("webcam_pose.mp4")
    path = urlsplit(input_spec).path if is_live_spec(input_spec) else input_spec
    return Path(f"{Path(path.rstrip('/')).stem or 'stream'}_pose.mp4")


def _output_paths(args: argparse.Namespace) -> dict[str, str]:
    """Every file the command line asks to write, by option (``OUTPUT_OPTION``)."""
    return {
        "--" + name.replace("_", "-"): value
        for name, value in vars(args).items()
        if OUTPUT_OPTION.match(name) and isinstance(value, str) and value
    }


def _input_paths(args: argparse.Namespace) -> dict[str, str]:
    """Every file the command reads: the input (a folder's images), the models."""
    inputs: dict[str, str] = {}
    if not is_live_spec(args.input):
        inputs["the input"] = args.input
        if os.path.isdir(args.input):
            inputs.update({f"the input image {p}": p for p in list_images(args.input)})
    for option, value in (
        ("--model", args.model),
        ("--model-config", args.model_config),
        ("--detector", args.detector),
    ):
        if value and os.path.exists(value):
            inputs[option] = value
    return inputs


def _check_outputs(args: argparse.Namespace) -> None:
    """Outputs that would overwrite an input or one another, or a recording of an unknown
    kind, are refused before anything is opened."""
    try:
        check_outputs(_output_paths(args), _input_paths(args))
    except OutputConflictError as error:
        raise UsageError(str(error)) from None
    if args.out and not writes_through(args.out) and container_for(args.out) is None:
        raise UsageError(
            f"--out {args.out}: unknown video file kind {Path(args.out).suffix or '(none)'!r}; "
            "name it .mp4 or .mkv"
        )


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
    if not args.joint_angles and (args.save_angles or args.save_reps):
        raise UsageError("--save-angles and --save-reps need the angles: leave out --no-angles")
    if args.reps_low >= args.reps_high:
        raise UsageError(f"--reps-low ({args.reps_low:g}) must be under --reps-high")
    if args.show and not _has_display():
        raise UsageError("--show needs a display (none found: DISPLAY/WAYLAND_DISPLAY unset)")


def _make_sinks(args: argparse.Namespace, config: PipelineConfig) -> list:
    sinks: list = []
    if args.out:
        container = container_for(args.out) or "mp4"  # a device or FIFO: MP4
        sinks.append(VideoSink(args.out, audio=not args.no_audio, container=container))
    if args.save_json:
        sinks.append(JsonKeypointSink(args.save_json))
    if args.save_csv:
        sinks.append(CsvKeypointSink(args.save_csv))
    if args.save_coco:
        sinks.append(CocoResultsSink(args.save_coco))
    if args.save_angles:
        sinks.append(AngleCsvSink(args.save_angles))
    if args.save_reps:
        sinks.append(RepetitionCsvSink(args.save_reps, config.repetitions))
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
    if summary.skipped:
        text += f"; {_skipped_words(summary)}: " + ", ".join(
            f"{Path(s.name).name} ({s.reason})" for s in summary.skipped
        )
    written = [str(s.path) for s in sinks if os.path.exists(s.path)]
    if written:
        text += "; wrote " + ", ".join(written)
    missing = [str(s.path) for s in sinks if not os.path.exists(s.path)]
    if missing:
        text += "; not written: " + ", ".join(missing)
    return text


def _skipped_words(summary: RunSummary) -> str:
    count = len(summary.skipped)
    return f"{count} unreadable {'entry' if count == 1 else 'entries'} skipped"


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


def _restore_signals(sigterm: object, sigint: object) -> None:
    """Give SIGTERM and SIGINT back to whoever called :func:`main` (a script, the tests),
    unless the run is finishing its files and still needs them held."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is _raise_terminated:
        signal.signal(signal.SIGTERM, sigterm)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, sigint)


def _finish_despite_more_ctrl_c() -> None:
    """A second Ctrl+C or SIGTERM while the files are being closed would kill the engine's
    threads half-way (keypoint files never moved into place): say we are on it instead. The
    handler stays until the command exits, which it is about to do."""
    if threading.current_thread() is not threading.main_thread():
        return

    def patience(signum: int, frame: object) -> None:
        print(f"{PROG}: finishing the files, one moment", file=sys.stderr)

    signal.signal(signal.SIGINT, patience)
    signal.signal(signal.SIGTERM, patience)


def _stopped_status(stop: KeyboardInterrupt) -> tuple[int, str]:
    """Exit status and the words for a stop by Ctrl+C or a signal."""
    if isinstance(stop, Terminated):
        return 128 + stop.signum, f"stopped by {signal.Signals(stop.signum).name}"
    return EXIT_INTERRUPTED, "interrupted"


def run(args: argparse.Namespace) -> int:
    """Process one input as the arguments say; returns the exit status."""
    from tqdm import tqdm

    _check_paths(args)
    if not (_output_paths(args) or args.show):
        args.out = str(_default_out(args.input))
    _check_outputs(args)
    config = config_from_settings(cli_settings(args), source=args.input)
    sinks = _make_sinks(args, config)
    display = _Display() if args.show else None
    progress: tqdm | None = None

    def on_result(result: FrameResult) -> None:
        if progress is not None:
            progress.update(1)
        if display is not None:
            display.offer(result)

    pipeline = Pipeline(config, sinks=sinks, on_result=on_result)
    stopped: KeyboardInterrupt | None = None
    try:
        pipeline.start()  # raises SourceError / SinkError / ModelError before any work
        info = pipeline.source_info
        progress = tqdm(
            total=None if info.is_live else info.frame_count,
            unit="frame",
            desc=Path(info.uri).name or info.uri,
            file=sys.stderr,
            dynamic_ncols=True,
        )
        while not pipeline.wait(0.03 if display else 0.2):
            if display is not None and not display.show():
                break
    except KeyboardInterrupt as stop:
        if pipeline.processor is None:
            raise  # stopped while opening the input or loading the models: nothing written
        stopped = stop
        _finish_despite_more_ctrl_c()
    finally:
        pipeline.stop()
        pipeline.wait(10.0)
        if progress is not None:
            progress.close()
    summary = pipeline.summary()
    if summary.error is not None:
        print(f"{PROG}: error: {summary.error}", file=sys.stderr)
        return EXIT_FAILED
    print(f"{PROG}: {_summary_line(summary, sinks)}", file=sys.stderr)
    if stopped is not None:
        status, words = _stopped_status(stopped)
        print(f"{PROG}: {words}; the files written so far are complete", file=sys.stderr)
        # Python puts SIGINT back to its default action while it shuts down: one more Ctrl+C
        # then would end the process by the signal instead of with status 130.
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        return status
    if summary.ended_early is not None and not args.allow_truncated:
        print(
            f"{PROG}: error: the input ended early ({summary.ended_early.message}); the "
            f"{summary.frames} frames decoded were written (--allow-truncated accepts this)",
            file=sys.stderr,
        )
        return EXIT_FAILED
    if summary.skipped and not args.allow_truncated:
        print(
            f"{PROG}: error: {_skipped_words(summary)} (listed above); the {summary.frames} "
            "others were written (--allow-truncated accepts this)",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return EXIT_OK


def _not_the_run_error(record: logging.LogRecord) -> bool:
    """The engine logs the error that ended a run; the command says it as its last line
    (``error: ...``), so its log record would repeat it, labelled a warning."""
    return not (record.name == Pipeline.__module__ and record.levelno >= logging.ERROR)


def main(argv: list[str] | None = None) -> int:
    to_stderr = logging.StreamHandler()
    to_stderr.setFormatter(logging.Formatter(f"{PROG}: warning: %(message)s"))
    to_stderr.addFilter(_not_the_run_error)
    logging.basicConfig(level=logging.WARNING, handlers=[to_stderr])
    parser = build_parser()
    args = parser.parse_args(argv)  # exits 2 with a one-line reason on a bad command line
    previous = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    _stop_on_signals()
    try:
        return run(args)
    except UsageError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except (SourceError, SinkError, PipelineError) as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt as stop:  # before the run started: nothing was written
        status, words = _stopped_status(stop)
        print(f"{PROG}: {words}", file=sys.stderr)
        return status
    except Exception as error:  # noqa: BLE001 - ModelError, DetectorError, ValueError ...
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        print(f"{PROG}: error: {message}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        _restore_signals(*previous)


if __name__ == "__main__":
    sys.exit(main())
