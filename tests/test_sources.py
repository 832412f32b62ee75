"""Frame sources on real clips: metadata, timestamps, seeking, live newest-frame and errors."""

from __future__ import annotations

import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from hfpose.engine.sources.frame_source import SourceError
from hfpose.engine.sources.image_folder import ImageFolderSource
from hfpose.engine.sources.opening import list_cameras, open_source, parse_camera_index
from hfpose.engine.sources.video_file import VideoFileSource
from tests.helpers import FakeCamera, fake_frame_number, write_vfr_clip

VIDEOS = Path(__file__).parent / "data" / "videos"
WALK = VIDEOS / "intel_asl_walk_1s5.mp4"
TONE = VIDEOS / "intel_asl_please_1s5_tone.mp4"


def test_video_file_metadata_and_frames():
    with open_source(WALK) as source:
        info = source.info
        assert (info.kind, info.width, info.height) == ("file", 640, 480)
        assert info.fps == pytest.approx(30.0)
        assert info.frame_count == 45
        assert info.duration == pytest.approx(1.5, abs=1e-3)
        assert not info.has_audio and info.seekable and not info.is_live
        frames = list(source)
    assert len(frames) == 45
    assert [f.index for f in frames] == list(range(45))
    assert frames[0].image.dtype == np.uint8 and frames[0].image.shape == (480, 640, 3)
    assert np.allclose(np.diff([f.timestamp for f in frames]), 1 / 30, atol=1e-3)


def test_audio_stream_is_reported():
    with open_source(TONE) as source:
        assert source.info.has_audio


def test_seek_lands_on_the_requested_time():
    with VideoFileSource(WALK) as source:
        source.read()
        source.seek(1.0)
        frame = source.read()
        assert frame.timestamp == pytest.approx(1.0, abs=1 / 60)
        assert frame.index == 30
        source.seek(0.0)
        assert source.read().index == 0


def test_variable_frame_rate_keeps_real_timestamps(tmp_path):
    times = [0.0, 0.033, 0.066, 0.2, 0.233, 0.5]
    path = tmp_path / "vfr.mp4"
    write_vfr_clip(path, times)
    with VideoFileSource(path) as source:
        got = [f.timestamp for f in source]
    assert got == pytest.approx(times, abs=2e-3)


def test_image_folder_in_name_order(tmp_path):
    for name, value in (("b.png", 20), ("a.jpg", 10), ("c.png", 30)):
        cv2.imwrite(str(tmp_path / name), np.full((40, 50, 3), value, np.uint8))
    (tmp_path / "notes.txt").write_text("not an image")
    with open_source(tmp_path, folder_fps=10) as source:
        assert isinstance(source, ImageFolderSource)
        assert (source.info.frame_count, source.info.width, source.info.height) == (3, 50, 40)
        frames = list(source)
        source.seek(0.2)
        assert source.read().index == 2
    assert [int(f.image[0, 0, 0]) for f in frames] == pytest.approx([10, 20, 30], abs=2)
    assert [f.timestamp for f in frames] == pytest.approx([0.0, 0.1, 0.2])


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "missing.mp4", "not found"),
        (lambda d: _text_file(d / "notes.mp4"), "not a video"),
        (lambda d: _corrupt_copy(d / "corrupt.mp4"), "corrupt"),
        (lambda d: d, "no images"),
    ],
    ids=["missing", "not-a-video", "corrupt", "empty-folder"],
)
def test_bad_inputs_give_one_line_errors(tmp_path, make, message):
    with pytest.raises(SourceError, match=message) as caught:
        with open_source(make(tmp_path)) as source:
            list(source)
    assert "\n" not in str(caught.value)


def _text_file(path: Path) -> Path:
    path.write_text("this is not a video\n")
    return path


def _corrupt_copy(path: Path) -> Path:
    """The clip with its picture data scrambled after the header (decoding must fail)."""
    data = bytearray(WALK.read_bytes())
    for i in range(4096, len(data), 101):
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))
    return path


def test_unopenable_camera_is_a_clear_error():
    # No machine running the tests has a 64th camera.
    with pytest.raises(SourceError, match="cannot open camera 63"):
        open_source("webcam:63")


def test_camera_specs_parse():
    assert parse_camera_index("webcam:2") == 2
    assert parse_camera_index(1) == 1
    assert parse_camera_index(str(WALK)) is None
    assert parse_camera_index("rtsp://host/stream") is None


def test_live_source_hands_out_the_newest_frame_fake_camera():
    camera = FakeCamera(period=0.002)
    try:
        first = camera.read()
        time.sleep(0.1)  # a slow consumer: ~50 frames arrive meanwhile
        produced_before_read = camera.produced
        second = camera.read()
    finally:
        camera.close()
    assert second.index == first.index + 1
    # No stale frame: the newest one grabbed when read() was called (the grabber may have been
    # between counting a frame and storing it, hence the 1), whatever the machine's load.
    assert fake_frame_number(second.image) >= produced_before_read - 1
    assert camera.dropped_frames >= 20
    assert second.timestamp - first.timestamp >= 0.09


@pytest.fixture()
def http_videos():
    """A local HTTP server over tests/data/videos: a real network stream, no camera needed."""
    import functools
    import http.server
    import socketserver
    import threading

    class QuietHandler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    handler = functools.partial(QuietHandler, directory=str(VIDEOS))
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_video_file_over_http_is_read_as_a_file_every_frame_in_order(http_videos):
    """A plain http.server (no range requests) announces the clip's length: a file, not live."""
    with open_source(WALK) as local:
        expected = [frame.image for frame in local]
    with open_source(f"{http_videos}/{WALK.name}") as remote:
        assert (remote.info.kind, remote.info.is_live, remote.info.frame_count) == (
            "file",
            False,
            45,
        )
        time.sleep(0.5)  # a live source would drop frames meanwhile; a file waits
        frames = list(remote)
        with pytest.raises(SourceError, match="cannot seek"):
            remote.seek(1.0)
    assert [f.index for f in frames] == list(range(45))
    assert all(np.array_equal(f.image, e) for f, e in zip(frames, expected))
    assert remote.info.ended_early is None


def test_unreachable_stream_is_a_clear_error(http_videos):
    with pytest.raises(SourceError, match="cannot open stream"):
        open_source(f"{http_videos}/no_such_clip.mp4")


def test_list_cameras_reads_names_and_skips_metadata_nodes_fake_sysfs(tmp_path):
    """The machines have no camera: a fake /sys/class/video4linux with two UVC cameras."""
    import sys

    if not sys.platform.startswith("linux"):
        pytest.skip("sysfs camera names are Linux only")
    for node, name, index in (
        ("video0", "Integrated Camera: Integrated C", 0),
        ("video1", "Integrated Camera: Integrated C", 1),  # its metadata node
        ("video10", "HD Pro Webcam C920", 0),
    ):
        (tmp_path / node).mkdir()
        (tmp_path / node / "name").write_text(name + "\n")
        (tmp_path / node / "index").write_text(f"{index}\n")
    cameras = list_cameras(sysfs=tmp_path)
    assert [(c.index, c.name, c.spec) for c in cameras] == [
        (0, "Integrated Camera: Integrated C", "webcam:0"),
        (10, "HD Pro Webcam C920", "webcam:10"),
    ]


@pytest.mark.parametrize(("rotation", "corner"), [(-90, (0, -1)), (90, (-1, 0)), (180, (-1, -1))])
def test_phone_rotation_is_applied(tmp_path, rotation, corner):
    """A landscape picture stored with a display rotation (as phones record portrait video)
    comes out upright; the white block starts top-left in the stored picture."""
    path = tmp_path / f"rotated{rotation}.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.set_display_rotation(rotation)
        image = np.zeros((48, 64, 3), np.uint8)
        image[:12, :16] = 255
        frame = av.VideoFrame.from_ndarray(image, format="bgr24")
        frame.pts, frame.time_base = 0, Fraction(1, 30)
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    with open_source(path) as source:
        picture = source.read().image
        info = source.info
    expected_size = (64, 48) if rotation == 180 else (48, 64)
    assert (info.width, info.height) == expected_size
    assert picture.shape[:2] == (expected_size[1], expected_size[0])
    row, column = corner
    assert picture[row * 5 if row else 2, column * 5 if column else 2].mean() > 200
