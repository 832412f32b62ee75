"""The threaded pipeline with real clips, real detector, real ONNX Runtime sessions and encoders.

The keypoint model is an exported randomly initialised HF-HRNet-18 (tests/helpers.py), so
these tests check structure, counts, order, timing behaviour and files, never pose accuracy.
"""

from __future__ import annotations

import gc
import json
import threading
import time
import weakref
from pathlib import Path

import numpy as np
import pytest

from hfpose.engine.config import PipelineConfig, available_cores
from hfpose.engine.output.sinks import JsonKeypointSink, Sink, VideoSink
from hfpose.engine.people.plausibility import TRACK_CONFIRM_FRAMES
from hfpose.engine.people.smoothing import SmoothingConfig
from hfpose.engine.pipeline import Pipeline
from hfpose.engine.pose_tracker import PoseTracker
from hfpose.engine.processor import (
    BOX_COLUMNS,
    FrameWork,
    boxes_from_keypoints,
    keypoint_centre,
)
from hfpose.engine.results import FrameResult, Person
from hfpose.engine.runtime.model_files import ModelError
from hfpose.engine.sources.frame_source import Frame, FrameSource, SourceError
from hfpose.engine.sources.opening import open_source
from tests.helpers import Collector, FakeCamera, probe, wait_until

VIDEOS = Path(__file__).parent / "data" / "videos"
TONE = VIDEOS / "intel_asl_please_1s5_tone.mp4"
WALK = VIDEOS / "intel_asl_walk_1s5.mp4"
STREET = VIDEOS / "mmpose_demo_street.mp4"


def _config(pose_model: str, source, **kw) -> PipelineConfig:
    return PipelineConfig(source=source, model=pose_model, backend="cpu", **kw)


@pytest.mark.slow
def test_file_run_end_to_end_keeps_every_frame_timing_and_audio(tmp_path, pose_model):
    video, keypoints = tmp_path / "out.mp4", tmp_path / "out.json"
    c = Collector()
    pipeline = c.pipeline(
        _config(pose_model, str(TONE)), [VideoSink(video), JsonKeypointSink(keypoints)]
    )
    summary = pipeline.run()
    assert c.finished.is_set() and not c.errors and summary.error is None
    source = open_source(TONE).info
    assert [r.index for r in c.results] == list(range(45))  # in order, none dropped
    assert all(r.image.shape == (480, 640, 3) and r.image is not r.frame for r in c.results)
    assert summary.frames == 45 and summary.runtime.backend == "cpu"
    got = probe(video)
    assert got["frames"] == 45
    assert got["fps"] == pytest.approx(source.fps, rel=1e-3)
    assert got["duration"] == pytest.approx(source.duration, abs=1 / source.fps)
    assert got["audio_s"] == pytest.approx(1.5, abs=0.1)
    frames = json.loads(keypoints.read_text())["instance_info"]
    assert len(frames) == 45
    people = [p for r in c.results for p in r.people]
    assert people and all(p.keypoints.shape == (17, 2) and p.track_id >= 1 for p in people)
    stats = pipeline.stats()
    assert all(stats[name].frames == 45 for name in ("detect", "pose", "render", "sink"))
    assert stats["pose"].latency_ms > 0 and stats["sink"].fps > 0


class _ClipPart(FrameSource):
    """The first ``frames`` frames of a real clip; with ``fail`` the stream 'breaks' there
    instead of ending (as a truncated download would). Keeps the tests short."""

    def __init__(self, path: Path, frames: int, fail: bool = False) -> None:
        self._inner = open_source(path)
        self.info = self._inner.info
        self.info.frame_count = frames
        self._frames = frames
        self._fail = fail

    def read(self) -> Frame | None:
        frame = self._inner.read()
        if frame is not None and frame.index == self._frames:
            if self._fail:
                raise SourceError(f"corrupt video stream after frame {self._frames - 1}")
            return None
        return frame

    def close(self) -> None:
        self._inner.close()


def test_source_error_stops_everything_names_stage_and_frame(tmp_path, pose_model):
    video = tmp_path / "partial.mp4"
    c = Collector()
    pipeline = c.pipeline(_config(pose_model, _ClipPart(WALK, 8, fail=True)), [VideoSink(video)])
    pipeline.start()
    assert pipeline.wait(60)
    (error,) = c.errors
    assert (error.stage, error.frame_index, error.fatal) == ("source", 8, True)
    assert "corrupt" in str(error)
    assert len(c.results) == 8
    assert not any(t.is_alive() for t in pipeline._stages.threads)
    assert probe(video)["frames"] == 8  # the sink was finalised


class _BrokenSink(Sink):
    """A sink whose disk 'fills up' at frame ``fail_at``."""

    def __init__(self, fail_at: int) -> None:
        self.path = Path("broken")
        self.fail_at = fail_at
        self.closed = False

    def open(self, info) -> None:
        pass

    def write(self, result: FrameResult) -> None:
        if result.index == self.fail_at:
            raise OSError(28, "No space left on device")

    def close(self) -> None:
        self.closed = True


def test_sink_error_is_reported_and_other_sinks_are_finalised(tmp_path, pose_model):
    video = tmp_path / "kept.mp4"
    broken = _BrokenSink(fail_at=5)
    c = Collector()
    pipeline = c.pipeline(_config(pose_model, _ClipPart(WALK, 10)), [VideoSink(video), broken])
    pipeline.start()
    assert pipeline.wait(60)
    (error,) = c.errors
    assert (error.stage, error.frame_index) == ("sink", 5)
    assert broken.closed
    assert probe(video)["frames"] == 6  # frames 0-5: it is written before the broken sink


@pytest.mark.slow
def test_stop_mid_file_ends_within_a_second_and_video_plays(tmp_path, pose_model):
    video = tmp_path / "stopped.mp4"
    c = Collector()
    pipeline = c.pipeline(_config(pose_model, str(WALK)), [VideoSink(video)])
    pipeline.start()
    wait_until(lambda: len(c.results) >= 10)
    stopped_at = time.monotonic()
    pipeline.stop()
    assert pipeline.wait(5)
    assert time.monotonic() - stopped_at < 1.0
    assert c.summary.interrupted and not c.errors
    written = probe(video)["frames"]
    assert 10 <= written == len(c.results) < 45


@pytest.mark.slow
def test_pause_step_seek_and_resume(pose_model):
    c = Collector()
    pipeline = c.pipeline(_config(pose_model, str(WALK), queue_size=1))
    pipeline.start()
    wait_until(lambda: len(c.results) >= 1)
    pipeline.pause()
    # Frames read before the pause finish their way through the stages.
    wait_until(lambda: pipeline.stats()["source"].frames == len(c.results))
    settled = len(c.results)
    time.sleep(0.5)
    assert len(c.results) == settled < 45  # paused: nothing new
    pipeline.step()
    wait_until(lambda: len(c.results) == settled + 1)
    time.sleep(0.3)
    assert pipeline.stats()["source"].frames == len(c.results) == settled + 1  # one per step
    pipeline.seek(1.2)
    wait_until(lambda: any(abs(r.timestamp - 1.2) < 0.02 for r in c.results))
    pipeline.resume()
    assert pipeline.wait(60)
    indices = [r.index for r in c.results]
    assert indices[-1] == 44 and 36 in indices


@pytest.mark.slow
def test_live_changes_take_effect_without_restarting(tmp_path, pose_model):
    """max_persons, smoothing, drawing, detector, bad model (kept running), sink added and
    removed."""
    c = Collector()
    source = FakeCamera(STREET, period=0.05)
    pipeline = c.pipeline(_config(pose_model, source, smoothing=SmoothingConfig("kalman")))
    pipeline.start()
    wait_until(lambda: len(c.results) >= 2 and max(len(r.people) for r in c.results) >= 2)
    pipeline.change_settings({"max_persons": 1, "smoothing": "none", "show_hud": False})
    pipeline.change_settings({"show_boxes": False, "detector": "blazepose"})
    pipeline.change_settings({"model": str(tmp_path / "no_such_model.onnx")})
    mark = len(c.results)
    wait_until(lambda: len(c.results) >= mark + 8)
    # Frames already past the pose stage when the change was made may still show everyone.
    assert all(len(r.people) <= 1 for r in c.results[mark + 6 :])
    assert [e.stage for e in c.errors] == ["pose"] and not c.errors[0].fatal
    recording = VideoSink(tmp_path / "clip.mp4")
    pipeline.add_sink(recording)
    wait_until(lambda: recording.frames_written >= 5)
    pipeline.remove_sink(recording)
    written = recording.frames_written
    pipeline.stop()
    assert pipeline.wait(5)
    assert probe(tmp_path / "clip.mp4")["frames"] == written
    assert pipeline.processor.config.smoothing.method == "none"
    assert not pipeline.processor.renderer.options.draw_hud
    assert not pipeline.processor.renderer.options.draw_boxes
    assert pipeline.processor.detector.name == "blazepose"
    assert source.closed


@pytest.mark.slow
def test_live_source_faster_than_pipeline_queue_never_grows_fake_camera(pose_model):
    camera = FakeCamera(WALK, period=0.002)  # 500 frames/s: far more than we process
    c = Collector()
    pipeline = c.pipeline(_config(pose_model, camera))
    pipeline.start()
    depths = []
    deadline = time.monotonic() + 6.0
    while time.monotonic() < deadline:
        depths.append(max(s.queue_size for s in pipeline.stats().values()))
        time.sleep(0.02)
    pipeline.stop()
    assert pipeline.wait(5)
    assert max(depths) <= 1  # every queue holds at most the one frame being handed over
    assert len(c.results) >= 10
    assert camera.produced > 3 * len(c.results)
    assert c.results[-1].dropped_frames > 0
    # Newest-frame processing: latency does not build up over the run.
    latencies = [r.latency_ms for r in c.results]
    early = float(np.median(latencies[2:7]))
    late = float(np.median(latencies[-5:]))
    assert late < 2.5 * early + 50.0


def _run_with_display_stuck_on_first_frame(pose_model: str, keep_real_time: bool, steps: int):
    """A file stepped frame by frame while the display (``on_result``) is still busy with frame
    0: the slowest stage is the last one, on any machine. Returns the pipeline, the results
    shown, the event that frees the display and, in real time, the longest queue after each
    step."""
    shown: list[FrameResult] = []
    display_free = threading.Event()

    def display(result: FrameResult) -> None:
        shown.append(result)
        if len(shown) == 1:
            display_free.wait(60.0)

    config = _config(pose_model, str(WALK), keep_real_time=keep_real_time, queue_size=4)
    pipeline = Pipeline(config, on_result=display)
    pipeline.pause()
    pipeline.start()
    pipeline.step()
    wait_until(lambda: len(shown) == 1)
    queued = []
    for rendered in range(2, steps + 2):
        pipeline.step()
        if keep_real_time:  # nothing blocks: each stepped frame gets through to the display
            wait_until(lambda n=rendered: pipeline.stats()["render"].frames == n)
            queued.append(max(s.queue_size for s in pipeline.stats().values()))
    return pipeline, shown, display_free, queued


@pytest.mark.slow
def test_real_time_replaces_frames_waiting_between_stages_instead_of_queueing(pose_model):
    """Keep real time: a frame that reaches a busy stage replaces the one waiting there, so the
    display, once free, shows the newest frame, not the backlog; the skipped are counted."""
    steps = 8
    pipeline, shown, display_free, queued = _run_with_display_stuck_on_first_frame(
        pose_model, keep_real_time=True, steps=steps
    )
    assert max(queued) == 1  # one frame waits at a hand-over, never the engine's queue_size 4
    display_free.set()
    wait_until(lambda: len(shown) == 2)
    pipeline.stop()
    assert pipeline.wait(5)
    assert [r.index for r in shown] == [0, steps]  # frames 1..7 replaced before the display
    assert shown[1].dropped_frames == steps - 1


def test_every_frame_mode_queues_behind_a_busy_stage_and_loses_nothing(pose_model):
    steps = 8
    pipeline, shown, display_free, _ = _run_with_display_stuck_on_first_frame(
        pose_model, keep_real_time=False, steps=steps
    )
    display_free.set()
    wait_until(lambda: len(shown) == steps + 1)
    pipeline.stop()
    assert pipeline.wait(5)
    assert [r.index for r in shown] == list(range(steps + 1))
    assert shown[-1].dropped_frames == 0


def test_a_replaced_frame_hands_its_detections_to_the_newer_one():
    """Detection every few frames in real time: the keypoint stage must not lose a detection because the
    detected frame was replaced by an undetected one while it waited."""
    image = np.zeros((4, 4, 3), np.uint8)
    boxes = np.array([[0, 0, 2, 2, 0.9]], np.float32)
    detected = FrameWork(Frame(image, 0, 0.0), epoch=0, born=0.0, boxes=boxes)
    following = FrameWork(Frame(image, 1, 0.1), epoch=0, born=0.0)
    following.take_place_of(detected)
    assert following.boxes is boxes
    after_seek = FrameWork(Frame(image, 2, 5.0), epoch=1, born=0.0)
    after_seek.take_place_of(detected)  # boxes from before a seek belong to another scene
    assert after_seek.boxes is None


def test_det_interval_follows_people_between_detections(pose_model):
    c = Collector()
    # Random weights score every keypoint ~0: a zero threshold lets them define the boxes.
    # WALK is 30 fps: 4 frames between detections.
    config = _config(pose_model, _ClipPart(WALK, 17), det_interval_s=4 / 30, kpt_thr=0.0)
    pipeline = c.pipeline(config)
    pipeline.run()
    assert [r.detected for r in c.results] == [i % 4 == 0 for i in range(17)]
    # followed by keypoints in between (shown once their track is confirmed)
    assert all(r.people for r in c.results[TRACK_CONFIRM_FRAMES - 1 :])


def test_boxes_between_detections_follow_the_body_and_never_shrink():
    rng = np.random.default_rng(0)
    keypoints = rng.uniform([110, 80], [190, 300], size=(17, 2)).astype(np.float32)
    crop = np.array([80, 30, 220, 380], dtype=np.float32)
    sure = Person(keypoints, np.full(17, 0.9, np.float32), crop, bbox_score=0.8)
    legs_unsure = np.full(17, 0.9, np.float32)
    legs_unsure[11:] = 0.1  # hips, knees, ankles under the threshold
    upper = Person(keypoints, legs_unsure, crop, bbox_score=0.8)
    scores = np.zeros(17, np.float32)
    scores[[9, 10]] = 0.9  # only the wrists: too few to say where the body is
    unsure = Person(keypoints, scores, crop, bbox_score=0.7)
    detected = np.full((3, 2), np.nan, np.float32)  # boxes straight from the detector
    boxes = boxes_from_keypoints([sure, upper, unsure], detected, 0.3, (640, 480))
    assert boxes.shape == (3, BOX_COLUMNS)
    for row in boxes[:2]:  # the crop box holds all, and the upper body does not shrink it
        np.testing.assert_allclose(row[:5], [*crop, 0.8])
    np.testing.assert_allclose(boxes[2, :5], [*crop, 0.7])
    np.testing.assert_allclose(boxes[0, 5:], keypoint_centre(sure), rtol=1e-5)
    # The next frame: the body moved 30 px right, so does the box; its centre is the anchor.
    moved = Person(keypoints + [30, 0], sure.keypoint_scores, crop, bbox_score=0.8)
    again = boxes_from_keypoints([moved], boxes[:1, 5:], 0.3, (640, 480))
    np.testing.assert_allclose(again[0, :4], crop + [30, 0, 30, 0], atol=1e-3)


def test_pose_tracker_synchronous_api(pose_model):
    tracker = PoseTracker(model=pose_model, backend="cpu", smoothing="one-euro")
    with open_source(WALK) as source:
        frames = [source.read() for _ in range(TRACK_CONFIRM_FRAMES + 2)]
    results = [tracker(f.image, f.timestamp) for f in frames]
    assert tracker.runtime_info.backend == "cpu"
    first = TRACK_CONFIRM_FRAMES - 1  # the person's track is confirmed and shown from here
    assert not any(results[:first])
    for people in results[first:]:
        assert people and all(p.keypoints.shape == (17, 2) for p in people)
    assert results[first][0].track_id == results[-1][0].track_id
    drawn = tracker.draw(frames[first].image, results[first])
    assert drawn.shape == frames[0].image.shape and not np.array_equal(drawn, frames[first].image)


def test_start_failures_raise_in_the_caller_and_leave_nothing_open(tmp_path, pose_model):
    missing = Pipeline(_config(pose_model, str(tmp_path / "missing.mp4")))
    with pytest.raises(SourceError, match="not found"):
        missing.start()
    assert missing.wait(0.1) and not missing.running  # a dead pipeline never blocks a waiter
    source = _ClipPart(WALK, 5)
    bad_model = tmp_path / "model.onnx"
    bad_model.write_text("not a model")
    with pytest.raises(ModelError, match="model"):
        Pipeline(PipelineConfig(source=source, model=str(bad_model), backend="cpu")).start()


@pytest.mark.slow
def test_backend_switch_takes_effect_without_reopening_the_source(pose_model):
    camera = FakeCamera(WALK, period=0.03)
    c = Collector()
    pipeline = c.pipeline(_config(pose_model, camera))
    pipeline.start()
    wait_until(lambda: len(c.results) >= 2)
    assert c.results[-1].runtime.requested == "cpu"
    pipeline.change_settings(
        {"backend": "openvino"}
    )  # falls back to the CPU, saying so, where it is missing
    wait_until(lambda: c.results[-1].runtime.requested == "openvino", timeout=120)
    switched_at = len(c.results)
    wait_until(lambda: len(c.results) >= switched_at + 3)
    pipeline.stop()
    assert pipeline.wait(5)
    assert not c.errors and pipeline.source is camera and camera.closed
    indices = [r.index for r in c.results]
    assert indices == sorted(indices)  # one uninterrupted stream of frames
    assert pipeline.runtime_info.requested == "openvino"


def test_stop_while_models_load_ends_the_run_cleanly(pose_model):
    """The GUI may stop a run from its thread while start() is still building the models."""
    c = Collector()
    camera = FakeCamera(WALK, period=0.03)
    pipeline = c.pipeline(_config(pose_model, camera))
    starter = threading.Thread(target=pipeline.start)
    starter.start()
    pipeline.stop()
    starter.join(60)
    assert pipeline.wait(5) and c.finished.is_set()
    assert camera.closed and not c.results and not pipeline.running


def test_a_finished_run_is_freed_once_let_go_without_the_cycle_collector(pose_model):
    """A run played to its end, and one stopped while its models load, go (models, sessions,
    thread pools, decoder) as soon as nothing holds them, also where ``on_finished`` closes over
    the pipeline: an app opening source after source held a dozen finished runs, over a GiB,
    until the cycle collector's next full pass."""
    gc.collect()
    gc.disable()  # only reference counting frees them now
    try:
        played = Collector().pipeline(_config(pose_model, str(STREET)))
        ended = []
        # a caller's cycle: the callback holds the pipeline that holds the callback
        played.on_finished = lambda summary, run=played: ended.append(run.summary())
        played.run()
        assert len(ended) == 1
        stopped = Collector().pipeline(_config(pose_model, FakeCamera(WALK, period=0.03)))
        starter = threading.Thread(target=stopped.start)
        starter.start()
        stopped.stop()
        starter.join(60)
        assert played.wait(5) and stopped.wait(5)
        runs = [weakref.ref(played), weakref.ref(stopped)]
        del played, stopped, starter
        assert [run() for run in runs] == [None, None]
    finally:
        gc.enable()


def test_settings_changed_before_start_become_the_configuration():
    pipeline = Pipeline(PipelineConfig(source=str(WALK)))
    pipeline.change_settings({"max_persons": 2, "kpt_thr": 0.5, "smoothing": "kalman"})
    pipeline.change_settings({"backend": "openvino", "detector": "blazepose"})
    config = pipeline.config
    assert (config.max_persons, config.kpt_thr, config.smoothing.method) == (2, 0.5, "kalman")
    assert (config.backend, config.detector) == ("openvino", "blazepose")
    with pytest.raises(ValueError, match="max_persons"):
        pipeline.change_settings({"max_persons": -1})
    assert config.max_persons == 2


def test_detector_and_keypoint_model_share_the_cores_they_run_beside():
    # The two models run at once in their own stages: half the cores each (measured in
    # benchmarks/bench_pipeline.py: on 2 cores 28-29 FPS against 24 with every core for each).
    cores = available_cores()
    threads = max(1, cores // 2)
    assert PipelineConfig(source="").threads_per_model == threads
    # A crowd leaves the detector idle: its crops run side by side on the spare cores.
    assert PipelineConfig(source="").pose_threading == {
        "num_threads": threads,
        "crop_workers": max(1, cores // threads),
    }
    every_core = PipelineConfig(source="", model_threads=0)
    assert every_core.pose_threading == {"num_threads": 0, "crop_workers": 1}
    with pytest.raises(ValueError, match="model_threads"):
        PipelineConfig(source="", model_threads=-1)


def test_unplugged_camera_ends_the_run_with_a_clear_error_fake_camera(tmp_path, pose_model):
    recording = tmp_path / "until_unplugged.mp4"
    c = Collector()
    camera = FakeCamera(WALK, period=0.05, unplug_after=12)
    pipeline = c.pipeline(_config(pose_model, camera), [VideoSink(recording)])
    pipeline.start()
    assert pipeline.wait(60)
    (error,) = c.errors
    assert error.stage == "source" and "unplugged" in str(error) and "\n" not in str(error)
    assert c.results and camera.closed
    assert probe(recording)["frames"] == len(c.results)  # what was seen is kept
