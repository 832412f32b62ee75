"""Detection every Nth frame (the default): who is detected when, who is found, and whether the
skeletons stay those of detection on every frame. Real clips, the shipped model and NanoDet."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from hfpose.engine import PoseTracker
from hfpose.engine.config import SETTINGS, PipelineConfig
from hfpose.engine.frame_source import Frame, FrameSource, SourceInfo
from hfpose.engine.pipeline import Pipeline
from hfpose.engine.results import FrameResult
from hfpose.engine.sources import open_source

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_det_interval  # noqa: E402

VIDEOS = Path(__file__).resolve().parent / "data" / "videos"
WALK = VIDEOS / "intel_asl_walk_1s5.mp4"  # one person, 640x480
PLEASE = VIDEOS / "intel_asl_please_1s5_tone.mp4"  # another person, 640x480
DEFAULT_INTERVAL = SETTINGS["det_interval"].default


def _frames(path: Path, count: int) -> list[np.ndarray]:
    with open_source(path) as source:
        return [source.read().image for _ in range(count)]


class _Frames(FrameSource):
    """Given images as a file-like source (every frame, in order)."""

    def __init__(self, images: list[np.ndarray]) -> None:
        height, width = images[0].shape[:2]
        self.info = SourceInfo("file", "frames", width, height, 30.0, len(images))
        self._images = images
        self._next = 0

    def read(self) -> Frame | None:
        if self._next >= len(self._images):
            return None
        frame = Frame(self._images[self._next], self._next, self._next / 30.0)
        self._next += 1
        return frame

    def close(self) -> None:
        pass


def test_the_default_interval_is_more_than_one_and_declared_once():
    assert DEFAULT_INTERVAL > 1
    assert PipelineConfig(source="").det_interval == DEFAULT_INTERVAL


def test_the_pipeline_detects_one_frame_in_n_while_it_follows_someone(pose_model):
    results: list[FrameResult] = []
    config = PipelineConfig(source=_Frames(_frames(WALK, 16)), model=pose_model, backend="cpu")
    Pipeline(config, on_result=results.append).run()
    assert [r.detected for r in results] == [i % DEFAULT_INTERVAL == 0 for i in range(16)]
    assert all(len(r.people) == 1 for r in results)  # followed by keypoints in between


def test_an_empty_scene_is_searched_on_every_frame_and_a_newcomer_found_at_once(pose_model):
    """Nobody to follow: the detector runs on every frame, so a person walking into an empty
    view is found on the first frame they are in, not up to N frames later."""
    person = _frames(WALK, 6)
    empty = np.full_like(person[0], 128)
    tracker = PoseTracker(model=pose_model, backend="cpu")
    counts = [len(tracker(image, i / 30.0)) for i, image in enumerate([empty] * 7 + person)]
    assert counts == [0] * 7 + [1] * 6


def test_a_second_person_entering_is_found_within_n_frames(pose_model):
    """Someone is followed, so detection runs every N frames; a second person appearing
    between two detections is found at the next one, at most N - 1 frames later."""
    left = [image[:, 80:400] for image in _frames(WALK, 24)]
    right = [image[:, 160:480] for image in _frames(PLEASE, 24)]
    empty = np.full_like(right[0], 128)
    enters = 7  # between the detections of frames 5 and 10
    images = [
        np.hstack([a, b if i >= enters else empty]) for i, (a, b) in enumerate(zip(left, right))
    ]
    tracker = PoseTracker(model=pose_model, backend="cpu")
    counts = [len(tracker(image, i / 30.0)) for i, image in enumerate(images)]
    assert counts[:enters] == [1] * enters
    found = next(i for i, count in enumerate(counts) if count == 2)
    assert enters <= found < enters + DEFAULT_INTERVAL
    assert counts[found:] == [2] * (len(images) - found)


@pytest.mark.slow
@pytest.mark.parametrize("lag", [1, 2])
def test_skeletons_between_detections_agree_with_detection_on_every_frame(lag):
    """The keypoints with the default interval against detection on every frame, on a real
    clip, frame by frame (OKS), as the pipeline (``lag`` 2: two frames in flight) and
    PoseTracker (1) follow people."""
    result = bench_det_interval.run_clip(WALK, 30, [1, DEFAULT_INTERVAL], "cpu", lag)
    row = result["intervals"][DEFAULT_INTERVAL]
    assert row["detected"] == pytest.approx(6 / 30)
    assert row["found"] == 1.0 and row["extra_per_frame"] == 0.0
    assert row["oks"] >= 0.95
