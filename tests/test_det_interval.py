"""Detection at most every ``det_interval_s`` seconds (the default), in frames at the source's
rate: who is detected when, who is found, and whether the skeletons stay those of detection on
every frame. Real clips, the shipped model and NanoDet."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from hfpose.engine import PoseTracker
from hfpose.engine.config import FALLBACK_FPS, SETTINGS, PipelineConfig, detection_frames
from hfpose.engine.people.plausibility import TRACK_CONFIRM_FRAMES
from hfpose.engine.pipeline import Pipeline
from hfpose.engine.results import FrameResult
from hfpose.engine.sources.frame_source import Frame, FrameSource
from hfpose.engine.sources.opening import open_source

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_det_interval  # noqa: E402

VIDEOS = Path(__file__).resolve().parent / "data" / "videos"
WALK = VIDEOS / "intel_asl_walk_1s5.mp4"  # one person, 640x480, 30 fps
PLEASE = VIDEOS / "intel_asl_please_1s5_tone.mp4"  # another person, 640x480, 30 fps
STREET = VIDEOS / "mmpose_demo_street.mp4"  # 12 pedestrians, 960x540, 5 fps
DEFAULT_SECONDS = SETTINGS["det_interval_s"].default
N_AT_30 = detection_frames(DEFAULT_SECONDS, 30.0)  # frames between detections at 30 fps


def _frames(path: Path, count: int) -> list[np.ndarray]:
    with open_source(path) as source:
        return [source.read().image for _ in range(count)]


class _ClipFrames(FrameSource):
    """The first ``count`` frames of a real clip, with its own source info, or, given
    ``guessed_fps``, as a stream that reports no frame rate (the source's guess marked as one:
    the test machines have no such stream)."""

    def __init__(self, path: Path, count: int, guessed_fps: float | None = None) -> None:
        with open_source(path) as source:
            self._frames = [source.read() for _ in range(count)]
            self.info = replace(source.info, frame_count=count)
        if guessed_fps is not None:
            self.info = replace(self.info, fps=guessed_fps, fps_reported=False)

    def read(self) -> Frame | None:
        return self._frames.pop(0) if self._frames else None

    def close(self) -> None:
        pass


def _detected(source: FrameSource, pose_model: str, **settings) -> tuple[list[bool], str]:
    """Which frames the pipeline detected on, and its summary's cadence in words."""
    results: list[FrameResult] = []
    config = PipelineConfig(source=source, model=pose_model, backend="cpu", **settings)
    summary = Pipeline(config, on_result=results.append).run()
    assert summary.error is None and summary.detected_frames == sum(r.detected for r in results)
    return [r.detected for r in results], summary.detection


def test_the_default_is_declared_once_and_keeps_every_5th_frame_at_30_fps():
    assert PipelineConfig(source="").det_interval_s == DEFAULT_SECONDS
    assert N_AT_30 == 5  # a 30 fps webcam or file keeps the saving it had in frames
    assert detection_frames(DEFAULT_SECONDS, None) == detection_frames(
        DEFAULT_SECONDS, FALLBACK_FPS
    )
    assert detection_frames(0.0, 30.0) == 1  # 0: every frame


@pytest.mark.parametrize(("clip", "frames"), [(WALK, N_AT_30), (STREET, 1)])
def test_the_frames_between_detections_come_from_the_clips_frame_rate(clip, frames):
    """The 30 fps clip keeps 5 frames; the 5 fps one, where 5 frames are a whole second,
    detects on every frame."""
    with open_source(clip) as source:
        assert source.info.fps_reported
        assert detection_frames(DEFAULT_SECONDS, source.info.fps) == frames


def test_a_30_fps_clip_is_detected_on_every_5th_frame_while_someone_is_followed(pose_model):
    detected, cadence = _detected(_ClipFrames(WALK, 16), pose_model)
    assert detected == [i % N_AT_30 == 0 for i in range(16)]
    assert cadence == f"every {N_AT_30} frames (det_interval_s {DEFAULT_SECONDS:g} at 30 fps)"


def test_a_5_fps_clip_is_detected_on_every_frame(pose_model):
    detected, cadence = _detected(_ClipFrames(STREET, 5), pose_model, max_persons=3)
    assert detected == [True] * 5
    assert cadence == f"every frame (det_interval_s {DEFAULT_SECONDS:g} at 5 fps)"


def test_a_stream_reporting_no_frame_rate_gets_the_fallback_not_its_guess(pose_model):
    """A stream source guesses 25 fps when the stream says nothing (StreamSource): the
    cadence assumes FALLBACK_FPS instead, and says it assumed it."""
    detected, cadence = _detected(_ClipFrames(WALK, 11, guessed_fps=25.0), pose_model)
    fallback = detection_frames(DEFAULT_SECONDS, FALLBACK_FPS)
    assert fallback != detection_frames(DEFAULT_SECONDS, 25.0)
    assert detected == [i % fallback == 0 for i in range(11)]
    assert f"an assumed {FALLBACK_FPS:g} fps" in cadence


def test_pose_tracker_counts_frames_at_the_rate_it_is_given(pose_model):
    """``PoseTracker`` has no source: ``fps`` gives the rate, else the fallback; a live change
    of ``det_interval_s`` takes effect at the next frame."""
    assert PoseTracker(model=pose_model, backend="cpu").processor.det_frames == N_AT_30
    tracker = PoseTracker(model=pose_model, backend="cpu", fps=5.0)
    assert tracker.processor.det_frames == 1
    tracker.processor.request("detect", det_interval_s=1.0)
    tracker(_frames(WALK, 1)[0], 0.0)
    assert tracker.processor.det_frames == 5


def test_an_empty_scene_is_searched_on_every_frame_and_a_newcomer_found_at_once(pose_model):
    """Nobody to follow: the detector runs on every frame, so a person walking into an empty
    view is found on the first frame they are in, not a detection interval later (and shown
    once their track is confirmed, TRACK_CONFIRM_FRAMES frames in)."""
    person = _frames(WALK, 6)
    empty = np.full_like(person[0], 128)
    tracker = PoseTracker(model=pose_model, backend="cpu", fps=30.0)
    counts = [len(tracker(image, i / 30.0)) for i, image in enumerate([empty] * 7 + person)]
    confirming = TRACK_CONFIRM_FRAMES - 1
    assert counts == [0] * (7 + confirming) + [1] * (6 - confirming)


def test_a_second_person_entering_is_found_at_the_next_detection(pose_model):
    """Someone is followed, so detection runs every N frames (5 at 30 fps); a second person
    appearing between two detections is found at the next one, at most N - 1 frames later."""
    left = [image[:, 80:400] for image in _frames(WALK, 24)]
    right = [image[:, 160:480] for image in _frames(PLEASE, 24)]
    empty = np.full_like(right[0], 128)
    enters = 7  # between the detections of frames 5 and 10
    images = [
        np.hstack([a, b if i >= enters else empty]) for i, (a, b) in enumerate(zip(left, right))
    ]
    tracker = PoseTracker(model=pose_model, backend="cpu", fps=30.0)
    counts = [len(tracker(image, i / 30.0)) for i, image in enumerate(images)]
    confirming = TRACK_CONFIRM_FRAMES - 1  # frames before a new track is shown
    assert counts[:enters] == [0] * confirming + [1] * (enters - confirming)
    found = next(i for i, count in enumerate(counts) if count == 2)
    assert enters + confirming <= found < enters + N_AT_30 + confirming
    assert counts[found:] == [2] * (len(images) - found)


@pytest.mark.slow
@pytest.mark.parametrize("lag", [1, 2])
def test_skeletons_between_detections_agree_with_detection_on_every_frame(lag):
    """The keypoints with the default interval against detection on every frame, on a real
    clip, frame by frame (OKS), as the pipeline (``lag`` 2: two frames in flight) and
    PoseTracker (1) follow people."""
    default = f"{DEFAULT_SECONDS}s"
    result = bench_det_interval.run_clip(WALK, 30, ["1", default], "cpu", lag)
    row = result["intervals"][default]
    assert row["frames_between"] == N_AT_30 and row["detected"] == pytest.approx(6 / 30)
    assert row["found"] == 1.0 and row["extra_per_frame"] == 0.0
    assert row["oks"] >= 0.95
