"""The app's recording: a video sink whose failure ends the recording, not the run."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from hfpose.app.settings import AppSettings
from hfpose.engine.output.sinks import VIDEO_CODECS, VIDEO_CONTAINERS, Sink, SinkError, VideoSink
from hfpose.engine.pipeline import Pipeline
from hfpose.engine.results import FrameResult
from hfpose.engine.sources.frame_source import SourceInfo


class RecordingSink(Sink):
    """A :class:`VideoSink` whose write failure (disk full, drive removed) ends the recording,
    not the run: the file keeps everything written so far and the view keeps playing."""

    def __init__(self, video: VideoSink, on_failure: Callable[[str], None]) -> None:
        self.video = video
        self.path = video.path
        self._on_failure = on_failure
        self.failed = False
        self.owner: Pipeline | None = None  # the run writing it, set by the control thread

    def open(self, info: SourceInfo) -> None:
        """Runs off the GUI thread (control or pipeline thread), folder creation included."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise SinkError(f"cannot create {self.path.parent}: {error.strerror}") from error
        self.video.open(info)

    def write(self, result: FrameResult) -> None:
        if self.failed:
            return
        try:
            self.video.write(result)
        except Exception as error:  # noqa: BLE001 - SinkError, OSError: any stops recording
            self.failed = True
            try:
                self.video.close()
            except Exception:  # noqa: BLE001 - the disk that failed may fail again; keep going
                pass
            self._on_failure(
                f"Recording stopped: {error}. What was recorded until then is in {self.path}."
            )

    def close(self) -> None:
        if not self.failed:
            self.video.close()

    @property
    def frames_written(self) -> int:
        return self.video.frames_written


def video_sink(path: str, s: AppSettings) -> VideoSink:
    """The recording sink: the file name's extension picks the container when it names one."""
    codecs = VIDEO_CODECS if s.codec == "h264" else ("mpeg4",)
    suffix = Path(path).suffix.lower().lstrip(".")
    container = suffix if suffix in VIDEO_CONTAINERS else s.container
    return VideoSink(path, audio=s.keep_audio, codecs=codecs, container=container)
