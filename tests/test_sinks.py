"""Sinks with real encoders and files: timing, audio, fallback encoder, crash safety, formats."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from hfpose.engine.output.sinks import (
    CocoResultsSink,
    CsvKeypointSink,
    JsonKeypointSink,
    SinkError,
    VideoSink,
)
from hfpose.engine.results import FrameResult
from hfpose.engine.sources.opening import open_source
from tests.helpers import make_person, probe, write_vfr_clip

REPO_ROOT = Path(__file__).resolve().parents[1]
VIDEOS = REPO_ROOT / "tests" / "data" / "videos"
TONE = VIDEOS / "intel_asl_please_1s5_tone.mp4"


def _copy_through(sinks, source_path=TONE, people=()):
    with open_source(source_path) as source:
        for sink in sinks:
            sink.open(source.info)
        try:
            for frame in source:
                result = FrameResult(frame.index, frame.timestamp, frame.image, frame.image,
                                     list(people))  # fmt: skip
                for sink in sinks:
                    sink.write(result)
        finally:
            for sink in sinks:
                sink.close()
        return source.info


def test_video_keeps_frame_count_rate_duration_and_audio(tmp_path):
    out = tmp_path / "out.mp4"
    sink = VideoSink(out)
    info = _copy_through([sink])
    got = probe(out)
    assert sink.codec == "libx264"
    assert got["frames"] == info.frame_count == 45
    assert got["fps"] == pytest.approx(info.fps, rel=1e-3)
    assert got["duration"] == pytest.approx(info.duration, abs=1 / info.fps)
    assert got["audio_s"] == pytest.approx(1.5, abs=0.1)


def test_no_audio_drops_the_sound(tmp_path):
    out = tmp_path / "silent.mp4"
    _copy_through([VideoSink(out, audio=False)])
    assert probe(out)["audio_s"] is None


def test_fallback_encoder_when_h264_is_missing(tmp_path):
    out = tmp_path / "fallback.mp4"
    sink = VideoSink(out, codecs=("no_such_h264_encoder", "mpeg4"))
    _copy_through([sink])
    assert sink.codec == "mpeg4"
    assert probe(out)["frames"] == 45


_KILLED_WRITER = textwrap.dedent(
    """
    import sys, numpy as np
    from hfpose.engine.results import FrameResult
    from hfpose.engine.output.sinks import VideoSink
    from hfpose.engine.sources.frame_source import SourceInfo
    info = SourceInfo("file", "synthetic", 320, 240, fps=30.0)
    sink = VideoSink(sys.argv[1])
    sink.open(info)
    for i in range(10_000):
        image = np.random.default_rng(i).integers(0, 255, (240, 320, 3), dtype=np.uint8)
        sink.write(FrameResult(i, i / 30, image, image, []))
        if i == 90:
            print("written", flush=True)
    """
)


def test_video_killed_mid_write_is_still_playable(tmp_path):
    """SIGKILL gives the sink no chance to finalise: the fragmented MP4 must play anyway."""
    out = tmp_path / "killed.mp4"
    writer = subprocess.Popen(
        [sys.executable, "-c", _KILLED_WRITER, str(out)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout.readline().strip() == "written"
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait(10)
    got = probe(out)
    assert got["frames"] >= 30  # everything up to the last completed one-second fragment


def test_keypoint_files_get_the_permissions_of_a_new_file_or_of_the_one_they_replace(tmp_path):
    """Written whole under a temporary name, they had that name's private 0o600: another user
    of the folder (a web server, a colleague) could not read them, and a file they replaced
    lost its own permissions."""
    umask = os.umask(0)
    os.umask(umask)
    fresh, kept = tmp_path / "new.json", tmp_path / "old.csv"
    kept.write_text("an earlier run's table")
    kept.chmod(0o640)
    sinks = [JsonKeypointSink(fresh), CsvKeypointSink(kept)]
    with open_source(TONE) as source:
        for sink in sinks:
            sink.open(source.info)
        frame = source.read()
        for sink in sinks:
            sink.write(FrameResult(frame.index, frame.timestamp, frame.image, frame.image, []))
    for sink in sinks:
        sink.close()
    assert fresh.stat().st_mode & 0o777 == 0o666 & ~umask
    assert kept.stat().st_mode & 0o777 == 0o640
    assert kept.read_text().startswith("frame,")


def test_keypoint_files_appear_only_when_complete(tmp_path):
    person = make_person(320, 240)
    person.track_id = 3
    json_path, csv_path = tmp_path / "k.json", tmp_path / "k.csv"
    json_sink, csv_sink = JsonKeypointSink(json_path), CsvKeypointSink(csv_path)
    with open_source(TONE) as source:
        for sink in (json_sink, csv_sink):
            sink.open(source.info)
        frame = source.read()
        for sink in (json_sink, csv_sink):
            sink.write(
                FrameResult(frame.index, frame.timestamp, frame.image, frame.image, [person])
            )
        assert not json_path.exists() and not csv_path.exists()  # atomic: nothing half-written
    json_sink.close()
    csv_sink.close()
    data = json.loads(json_path.read_text())
    assert data["meta_info"]["dataset_name"] == "coco"
    (entry,) = data["instance_info"]
    assert entry["frame_id"] == 0 and entry["time"] == 0.0
    (instance,) = entry["instances"]
    assert instance["track_id"] == 3
    assert np.allclose(instance["keypoints"], person.keypoints, atol=0.01)
    assert len(instance["keypoint_scores"]) == 17 and len(instance["bbox"][0]) == 4
    rows = list(csv.DictReader(csv_path.open()))
    assert len(rows) == 17
    assert rows[9]["keypoint"] == "left_wrist" and rows[9]["track_id"] == "3"
    assert float(rows[9]["x"]) == pytest.approx(float(person.keypoints[9, 0]), abs=0.01)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp left


def test_full_run_json_has_every_frame(tmp_path):
    json_path = tmp_path / "all.json"
    _copy_through([JsonKeypointSink(json_path)], people=[make_person(300, 240)])
    frames = json.loads(json_path.read_text())["instance_info"]
    assert [f["frame_id"] for f in frames] == list(range(45))


def test_coco_results_for_an_image_folder(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for name in ("000000000139.jpg", "000000000785.jpg"):
        cv2.imwrite(str(folder / name), np.zeros((240, 320, 3), np.uint8))
    out, per_frame = tmp_path / "results.json", tmp_path / "frames.json"
    person = make_person(160, 120, 150)
    _copy_through([CocoResultsSink(out), JsonKeypointSink(per_frame)], folder, [person])
    names = [f["file_name"] for f in json.loads(per_frame.read_text())["instance_info"]]
    assert names == ["000000000139.jpg", "000000000785.jpg"]
    results = json.loads(out.read_text())
    assert [r["image_id"] for r in results] == [139, 785]
    assert all(r["category_id"] == 1 and len(r["keypoints"]) == 51 for r in results)
    assert results[0]["score"] == pytest.approx(0.95 * 0.9, abs=1e-3)


@pytest.mark.parametrize("sink_class", [VideoSink, JsonKeypointSink, CsvKeypointSink])
def test_unwritable_output_fails_before_any_work(tmp_path, sink_class):
    with open_source(TONE) as source:
        with pytest.raises(SinkError, match="does not exist"):
            sink_class(tmp_path / "no" / "such" / "folder" / "out.mp4").open(source.info)
        with pytest.raises(SinkError, match="is a folder"):
            sink_class(tmp_path).open(source.info)


def test_close_twice_is_harmless(tmp_path):
    sink = VideoSink(tmp_path / "twice.mp4")
    _copy_through([sink])
    size = os.path.getsize(tmp_path / "twice.mp4")
    sink.close()
    time.sleep(0.01)
    assert os.path.getsize(tmp_path / "twice.mp4") == size


def test_frame_times_match_the_source_and_the_sound(tmp_path):
    out = tmp_path / "synced.mp4"
    _copy_through([VideoSink(out)])
    with open_source(TONE) as source:
        source_times = [f.timestamp for f in source]
    with av.open(str(out)) as container:
        times = [f.time for f in container.decode(video=0)]
    with av.open(str(out)) as container:
        first_sound = next(container.decode(audio=0)).time
    assert times == pytest.approx(source_times, abs=1e-3)  # no B-frame delay at the start
    assert first_sound == pytest.approx(0.0, abs=1e-3)


def test_recording_started_mid_file_starts_at_zero_with_matching_sound(tmp_path):
    """The GUI's record button: the sink joins at frame 15 (0.5 s) of a running source."""
    out = tmp_path / "from_half_a_second.mp4"
    sink = VideoSink(out)
    with open_source(TONE) as source:
        sink.open(source.info)
        for frame in source:
            if frame.index >= 15:
                sink.write(FrameResult(frame.index, frame.timestamp, frame.image, frame.image, []))
    sink.close()
    got = probe(out)
    assert got["frames"] == 30
    assert got["duration"] == pytest.approx(1.0, abs=1 / 30)
    assert got["audio_s"] == pytest.approx(1.0, abs=0.05)


def test_matroska_recording_keeps_frames_and_sound(tmp_path):
    out = tmp_path / "out.mkv"
    _copy_through([VideoSink(out, container="mkv")])
    got = probe(out)
    assert got["frames"] == 45 and got["fps"] == pytest.approx(30.0)
    assert got["audio_s"] == pytest.approx(1.5, abs=0.1)
    with pytest.raises(SinkError, match="unknown container"):
        VideoSink(tmp_path / "out.avi", container="avi")


def test_variable_frame_rate_source_keeps_its_frame_times(tmp_path):
    times = [0.0, 0.033, 0.066, 0.2, 0.233, 0.5, 0.52, 0.54]
    clip = tmp_path / "vfr.mp4"
    write_vfr_clip(clip, times)
    with open_source(clip) as source:
        source_times = [f.timestamp for f in source]
    assert len(set(np.round(np.diff(source_times), 3))) > 2  # really variable
    out = tmp_path / "vfr_out.mp4"
    _copy_through([VideoSink(out)], source_path=clip)
    with av.open(str(out)) as container:
        written = [f.time for f in container.decode(video=0)]
    assert written == pytest.approx(source_times, abs=1e-3)
