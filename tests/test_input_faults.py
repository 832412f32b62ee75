"""Real-world input faults: decode-order frame times in AVI, input that ends early
(cut-short file, live stream that drops), photos taken for video frames.

The B-frame AVI and the cut-short MP4 are made by the tests from the repository's clips with
PyAV, as cameras and interrupted downloads make them; the NTU RGB+D clip (a dataset AVI with
B-frames) comes from ../shared and is skipped without it.
"""

from __future__ import annotations

import json
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from hfpose.app.video_cli import main
from hfpose.engine.config import PipelineConfig
from hfpose.engine.output.sinks import JsonKeypointSink, VideoSink
from hfpose.engine.pipeline import Pipeline
from hfpose.engine.pose_tracker import PoseTracker
from hfpose.engine.results import Person
from hfpose.engine.sources.live import StreamSource
from hfpose.engine.sources.opening import open_source
from hfpose.engine.sources.video_file import VideoFileSource
from tests.helpers import encode_frames, probe

VIDEOS = Path(__file__).parent / "data" / "videos"
WALK = VIDEOS / "intel_asl_walk_1s5.mp4"  # 45 frames, 30 fps
NTU = "datasets/videos/ntu_S001C001P001R001A001_rgb.avi"


def _clip_frames(path: Path) -> list[np.ndarray]:
    with open_source(path) as source:
        return [frame.image for frame in source]


def _write_b_frame_avi(path: Path, images: list[np.ndarray]) -> None:
    """H.264 with B-frames in AVI, as cameras and datasets store it (30 fps)."""
    with av.open(str(path), "w", format="avi") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.height, stream.width = images[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        stream.options = {"bf": "3", "crf": "20"}
        encode_frames(out, stream, images)


def _packet_times(path: Path) -> list[float]:
    """Presentation times of a written video's frames, in display order."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        time_base = stream.time_base
        stamps = [p.pts for p in container.demux(stream) if p.pts is not None]
    return [float(t * time_base) for t in sorted(stamps)]


def test_b_frame_avi_frames_come_in_display_order_with_even_times(tmp_path):
    originals = _clip_frames(WALK)
    avi = tmp_path / "b_frames.avi"
    _write_b_frame_avi(avi, originals)
    with av.open(str(avi)) as container:  # the fault is real: decode-order stamps
        raw = [frame.pts for frame in container.decode(video=0)]
    assert raw != sorted(raw)
    with VideoFileSource(avi) as source:
        frames = list(source)
    times = np.array([f.timestamp for f in frames])
    assert len(frames) == 45 and [f.index for f in frames] == list(range(45))
    assert np.allclose(np.diff(times), 1 / 30, atol=1e-6)
    # Each picture is the original frame of its position (display order), not a neighbour.
    for i in (5, 20, 40):
        errors = [np.abs(frames[i].image.astype(int) - o).mean() for o in originals[i - 2 : i + 3]]
        assert int(np.argmin(errors)) == 2


@pytest.mark.slow
def test_b_frame_avi_annotated_output_steps_evenly(tmp_path, pose_model):
    avi = tmp_path / "b_frames.avi"
    _write_b_frame_avi(avi, _clip_frames(WALK)[:20])
    video, keypoints = tmp_path / "out.mp4", tmp_path / "out.json"
    config = PipelineConfig(source=str(avi), model=pose_model, backend="cpu", max_persons=1)
    summary = Pipeline(config, [VideoSink(video), JsonKeypointSink(keypoints)]).run()
    assert summary.frames == 20 and summary.error is None
    assert np.allclose(np.diff(_packet_times(video)), 1 / 30, atol=1e-3)
    times = [f["time"] for f in json.loads(keypoints.read_text())["instance_info"]]
    assert np.allclose(np.diff(times), 1 / 30, atol=1e-5)


@pytest.mark.slow
@pytest.mark.shared
def test_ntu_avi_keeps_one_track_id_for_its_one_person(shared_dir, tmp_path, pose_model):
    """NTU RGB+D sample: one person standing, 103 frames, H.264 with B-frames in AVI."""
    clip = shared_dir / NTU
    with VideoFileSource(clip) as source:
        times = np.array([f.timestamp for f in source])
    assert len(times) == 103 and np.allclose(np.diff(times), 1 / 30, atol=1e-6)
    video, keypoints = tmp_path / "ntu.mp4", tmp_path / "ntu.json"
    config = PipelineConfig(source=str(clip), model=pose_model, backend="cpu")
    summary = Pipeline(config, [VideoSink(video), JsonKeypointSink(keypoints)]).run()
    assert summary.frames == 103 and summary.error is None and summary.ended_early is None
    frames = json.loads(keypoints.read_text())["instance_info"]
    ids = {person["track_id"] for frame in frames for person in frame["instances"]}
    assert len(ids) == 1, f"one person got track ids {sorted(ids)}"
    assert sum(len(frame["instances"]) for frame in frames) >= 100
    assert np.allclose(np.diff(_packet_times(video)), 1 / 30, atol=1e-3)


# --------------------------------------------------------------------------- ended early


def _cut_short(tmp_path: Path, keep: float = 0.6) -> Path:
    """The walk clip with its index first (as cameras and the web write MP4), cut after
    ``keep`` of its bytes: an interrupted download or copy."""
    whole = tmp_path / "faststart.mp4"
    with (
        av.open(str(WALK)) as source,
        av.open(str(whole), "w", options={"movflags": "faststart"}) as out,
    ):
        stream = out.add_stream_from_template(source.streams.video[0])
        for packet in source.demux(source.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    data = whole.read_bytes()
    cut = tmp_path / "cut_short.mp4"
    cut.write_bytes(data[: int(len(data) * keep)])
    return cut


def test_cut_short_file_says_where_it_stopped_and_why(tmp_path):
    with VideoFileSource(_cut_short(tmp_path)) as source:
        frames = list(source)
        ended = source.info.ended_early
    assert 5 < len(frames) < 45
    assert (ended.frames, ended.announced) == (len(frames), 45)
    assert "missing data" in ended.reason
    assert ended.message.startswith(f"decoding stopped at frame {len(frames)} of the 45 announced")
    with VideoFileSource(WALK) as source:
        list(source)
        assert source.info.ended_early is None


@pytest.mark.slow
def test_cut_short_file_in_the_engine_summary_and_the_json_metadata(tmp_path, pose_model):
    cut = _cut_short(tmp_path)
    video, keypoints = tmp_path / "out.mp4", tmp_path / "out.json"
    finished = []
    config = PipelineConfig(source=str(cut), model=pose_model, backend="cpu", max_persons=1)
    pipeline = Pipeline(
        config, [VideoSink(video), JsonKeypointSink(keypoints)], on_finished=finished.append
    )
    summary = pipeline.run()
    ended = summary.ended_early
    assert summary.error is None and ended is not None and finished[0].ended_early == ended
    assert ended.frames == summary.frames and ended.announced == 45
    assert probe(video)["frames"] == summary.frames  # everything decoded is in the video
    data = json.loads(keypoints.read_text())
    assert len(data["instance_info"]) == summary.frames
    meta = data["meta_info"]
    assert meta["input_complete"] is False
    assert meta["ended_early"]["frames_decoded"] == summary.frames
    assert meta["ended_early"]["frames_announced"] == 45
    assert "missing data" in meta["ended_early"]["reason"]


@pytest.mark.slow
def test_cli_cut_short_file_exits_1_after_writing_unless_allowed(tmp_path, pose_model, capsys):
    cut = _cut_short(tmp_path)
    out, keypoints = tmp_path / "out.mp4", tmp_path / "out.json"
    common = ["--model", pose_model, "--backend", "cpu", "--max-persons", "1", "--no-hud"]
    code = main([str(cut), "--out", str(out), "--save-json", str(keypoints), *common])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    written = probe(out)["frames"]
    assert 5 < written < 45 and len(json.loads(keypoints.read_text())["instance_info"]) == written
    assert f"input incomplete, decoding stopped at frame {written} of the 45" in lines[-2]
    assert lines[-1].startswith("hfpose-video: error: the input ended early (decoding stopped")
    assert "--allow-truncated" in lines[-1]
    code = main([str(cut), "--out", str(out), "--allow-truncated", *common])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 0 and "input incomplete" in lines[-1] and "missing data" in lines[-1]


# --------------------------------------------------------------------------- stills

COCO_IMAGE = Path(__file__).parent / "data" / "coco" / "000000196141.jpg"


def _photo_and_shifted_copy(folder: Path) -> tuple[Path, Path]:
    """A photo and the same photo moved 12 px right: as video frames, the second one's people
    would match the first one's tracks and be smoothed towards them."""
    folder.mkdir()
    image = cv2.imread(str(COCO_IMAGE))
    shifted = np.zeros_like(image)
    shifted[:, 12:] = image[:, :-12]
    first, second = folder / "000000000001.jpg", folder / "000000000002.jpg"
    cv2.imwrite(str(first), image)
    cv2.imwrite(str(second), shifted)
    return first, second


def _keypoints_of(path: Path, pose_model: str, **settings) -> list[list[Person]]:
    people: list[list[Person]] = []
    config = PipelineConfig(source=str(path), model=pose_model, backend="cpu", **settings)
    summary = Pipeline(config, on_result=lambda r: people.append(r.people)).run()
    assert summary.error is None
    return people


@pytest.mark.slow
def test_images_are_stills_nothing_carries_from_one_to_the_next(tmp_path, pose_model):
    first, second = _photo_and_shifted_copy(tmp_path / "photos")
    with open_source(first.parent) as folder, open_source(second) as single:
        assert folder.info.stills and (folder.info.kind, single.info.kind) == ("folder", "image")
        assert single.info.stills and single.info.frame_count == 1
    # Default settings (One-Euro smoothing, tracking) and boxes carried for 0.17 s if it were
    # a video: the second photo's people must be exactly what that photo alone gives.
    in_folder = _keypoints_of(first.parent, pose_model, det_interval_s=0.17)
    alone = _keypoints_of(second, pose_model, det_interval_s=0.17)[0]
    assert len(in_folder) == 2 and len(alone) >= 2
    assert [p.track_id for p in in_folder[1]] == list(range(1, len(alone) + 1))
    assert len(in_folder[1]) == len(alone)
    for got, expected in zip(in_folder[1], alone):
        np.testing.assert_allclose(got.keypoints, expected.keypoints, atol=1e-3)
        np.testing.assert_allclose(got.bbox, expected.bbox, atol=1e-3)


@pytest.mark.slow
def test_pose_tracker_with_stills_treats_each_call_as_a_new_photo(tmp_path, pose_model):
    first, second = (cv2.imread(str(p)) for p in _photo_and_shifted_copy(tmp_path / "photos"))
    tracker = PoseTracker(model=pose_model, backend="cpu", smoothing="one-euro", stills=True)
    tracker(first, timestamp=0.0)
    after_first = tracker(second, timestamp=1 / 30)
    alone = PoseTracker(model=pose_model, backend="cpu", stills=True)(second, timestamp=0.0)
    assert len(after_first) == len(alone) >= 2
    assert [p.track_id for p in after_first] == list(range(1, len(alone) + 1))
    for got, expected in zip(after_first, alone):
        np.testing.assert_allclose(got.keypoints, expected.keypoints, atol=1e-3)


def test_cli_single_image_to_coco_results(tmp_path, pose_model):
    image = tmp_path / "000000196141.jpg"
    image.write_bytes(COCO_IMAGE.read_bytes())
    out = tmp_path / "results.json"
    assert (
        main([str(image), "--save-coco", str(out), "--model", pose_model, "--backend", "cpu"]) == 0
    )
    results = json.loads(out.read_text())
    assert results and {r["image_id"] for r in results} == {196141}


# --------------------------------------------------------------------------- dropped stream


@pytest.fixture()
def dropping_stream():
    """A live MPEG-TS stream over HTTP (no length announced) that drops half-way through the
    walk clip; ``connections[0]`` is how many connections it serves before refusing (503)."""
    import http.server
    import io
    import socketserver
    import threading

    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mpegts") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 640, 480, "yuv420p"
        stream.options = {"g": "5", "bf": "0"}
        encode_frames(out, stream, _clip_frames(WALK))
    half = buffer.getvalue()[: len(buffer.getvalue()) // 2]
    connections = [2]

    class DroppingHandler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            if connections[0] == 0:
                self.send_error(503)
                return
            connections[0] -= 1
            self.send_response(200)
            self.send_header("Content-Type", "video/mp2t")
            self.end_headers()
            self.wfile.write(half)  # then the connection closes: the stream dropped

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), DroppingHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/live.ts", connections
    server.shutdown()
    server.server_close()


def test_dropped_live_stream_reconnects_then_ends_saying_why(dropping_stream):
    url, connections = dropping_stream
    stream = StreamSource(url, reconnect_delay_s=0.05)
    try:
        assert stream.info.frame_count is None  # live: nothing announced
        while stream.read() is not None:
            pass
        grabbed = stream._grabbed
    finally:
        stream.close()
    ended = stream.info.ended_early
    assert connections[0] == 0  # it came back once after the first drop
    assert grabbed > 30 and ended.frames == grabbed  # both halves were received
    assert "3 reconnection attempts failed" in ended.reason and "5XX" in ended.reason
    assert ended.message.startswith(f"the input stopped after frame {grabbed}: the stream")


@pytest.mark.slow
def test_cli_dropped_stream_exits_1_with_the_reason(dropping_stream, tmp_path, pose_model, capsys):
    url, connections = dropping_stream
    connections[0] = 1
    out = tmp_path / "stream.mp4"
    code = main([url, "--out", str(out), "--model", pose_model, "--backend", "cpu",
                 "--max-persons", "1"])  # fmt: skip
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 1 and probe(out)["frames"] > 0
    assert line.startswith("hfpose-video: error: the input ended early (the input stopped after")
    assert "reconnection attempts failed" in line
