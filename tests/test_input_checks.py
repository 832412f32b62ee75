"""What the inputs may be: a folder with bad photos, a file over HTTP (a real http.server on
127.0.0.1), a server that never answers, the images ``PoseTracker`` takes, text files, ONNX
files that are not pose models and frames too small to encode. Real files and sockets."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from hfpose.app.video_cli import main
from hfpose.engine.pose_tracker import PoseTracker
from hfpose.engine.sources.frame_source import SourceError
from hfpose.engine.sources.opening import open_source, open_url
from tests.helpers import REPO_ROOT, encode_frames, probe

VIDEOS = REPO_ROOT / "tests" / "data" / "videos"
WALK = VIDEOS / "intel_asl_walk_1s5.mp4"
COCO = REPO_ROOT / "tests" / "data" / "coco"
PHOTO = REPO_ROOT / "tests" / "data" / "frames" / "intel_asl_book_f30.jpg"


def _stderr_lines(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.strip()]


# --------------------------------------------------------------------------- image folders


def _folder_with_bad_entries(tmp_path: Path) -> Path:
    """Three COCO photos, and between them a truncated JPEG, a text file named .jpg and a
    subfolder named like an image."""
    folder = tmp_path / "photos"
    folder.mkdir()
    good = sorted(COCO.glob("*.jpg"))[:3]
    shutil.copy(good[0], folder / "a_good.jpg")
    data = good[1].read_bytes()
    (folder / "b_truncated.jpg").write_bytes(data[: len(data) // 2])
    (folder / "c_notes.jpg").write_text("not a photo")
    shutil.copy(good[1], folder / "d_good.jpg")
    (folder / "e_subfolder.jpg").mkdir()
    shutil.copy(good[2], folder / "f_good.jpg")
    return folder


@pytest.mark.slow
def test_a_folder_skips_each_unreadable_entry_and_lists_it(tmp_path, pose_model, capsys, caplog):
    folder = _folder_with_bad_entries(tmp_path)
    keypoints, results = tmp_path / "k.json", tmp_path / "coco.json"
    code = main([str(folder), "--save-json", str(keypoints), "--save-coco", str(results),
                 "--model", pose_model, "--backend", "cpu"])  # fmt: skip
    lines = _stderr_lines(capsys)
    assert code == 1  # an input not read completely, as for a cut-short file
    bad = ("b_truncated.jpg", "c_notes.jpg", "e_subfolder.jpg")
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    for name in bad:  # one warning each, not an error
        assert sum(name in w and w.startswith("skipped") for w in warnings) == 1
    summary = next(line for line in lines if "3 unreadable entries skipped" in line)
    assert all(name in summary for name in bad) and "wrote" in summary
    assert lines[-1].startswith("hfpose-video: error: 3 unreadable entries skipped")
    saved = json.loads(keypoints.read_text())
    assert [f["file_name"] for f in saved["instance_info"]] == [
        "a_good.jpg",
        "d_good.jpg",
        "f_good.jpg",
    ]
    meta = saved["meta_info"]
    assert meta["input_complete"] is False
    assert [Path(s["name"]).name for s in meta["skipped"]] == list(bad)
    assert "folder" in meta["skipped"][2]["reason"]
    assert json.loads(results.read_text())  # the COCO results of the good photos

    assert main([str(folder), "--save-json", str(keypoints), "--model", pose_model,
                 "--backend", "cpu", "--allow-truncated"]) == 0  # fmt: skip


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes: POSIX")
def test_entries_that_cannot_be_opened_are_skipped_too(tmp_path, capfd):
    """A link to a photo that is gone stopped the run ("source stage, frame 1: [Errno 2] No
    such file or directory"), as a photo without read permission does for a user who is not
    root; a pipe named like a photo hung it; a PNG cut short put libpng's own line beside the
    warning."""
    folder = tmp_path / "photos"
    folder.mkdir()
    good = sorted(COCO.glob("*.jpg"))[:2]
    shutil.copy(good[0], folder / "a_good.jpg")
    (folder / "b_gone.jpg").symlink_to(tmp_path / "deleted.jpg")
    os.mkfifo(folder / "c_pipe.jpg")
    png = cv2.imencode(".png", cv2.imread(str(good[1])))[1].tobytes()
    (folder / "d_cut.png").write_bytes(png[: len(png) // 2])
    shutil.copy(good[1], folder / "e_good.jpg")
    with open_source(folder) as source:
        names = [Path(source.paths[frame.index]).name for frame in source]
    assert names == ["a_good.jpg", "e_good.jpg"]
    skipped = {Path(s.name).name: s.reason for s in source.info.skipped}
    assert skipped == {
        "b_gone.jpg": "cannot be read (No such file or directory)",
        "c_pipe.jpg": "not a regular file (a pipe or a device)",
        "d_cut.png": "a PNG cut short (its end is missing)",
    }
    assert "libpng" not in capfd.readouterr().err


def test_a_folder_of_unreadable_entries_only_is_an_error_naming_them(tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "a_gone.jpg").symlink_to(tmp_path / "deleted.jpg")
    (folder / "b_empty.jpg").write_bytes(b"")
    (folder / "c_subfolder.jpg").mkdir()
    keypoints = tmp_path / "k.json"
    assert main([str(folder), "--save-json", str(keypoints), "--backend", "cpu"]) == 1
    line = _stderr_lines(capsys)[-1]
    assert line.startswith(f"hfpose-video: error: no readable image in {folder} (")
    assert all(name in line for name in ("a_gone.jpg", "b_empty.jpg", "c_subfolder.jpg"))
    assert not keypoints.exists()


@pytest.mark.slow
def test_a_folder_read_to_its_end_is_complete(tmp_path, pose_model):
    folder = tmp_path / "photos"
    shutil.copytree(COCO, folder)
    keypoints = tmp_path / "k.json"
    assert main([str(folder), "--save-json", str(keypoints), "--model", pose_model,
                 "--backend", "cpu"]) == 0  # fmt: skip
    meta = json.loads(keypoints.read_text())["meta_info"]
    assert meta["input_complete"] is True and "skipped" not in meta


# --------------------------------------------------------------------------- HTTP


def _free_port() -> int:
    with socket.socket() as probe_socket:
        probe_socket.bind(("127.0.0.1", 0))
        return probe_socket.getsockname()[1]


@pytest.fixture()
def http_server(tmp_path):
    """``python -m http.server`` on 127.0.0.1 serving a folder (no range requests)."""
    root = tmp_path / "served"
    root.mkdir()
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
         "--directory", str(root)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert time.monotonic() < deadline, "http.server did not start"
            time.sleep(0.1)
    yield root, f"http://127.0.0.1:{port}"
    server.terminate()
    server.wait(10)


@pytest.mark.slow
def test_a_video_over_http_is_processed_like_a_file(http_server, tmp_path, pose_model, capsys):
    root, url = http_server
    shutil.copy(WALK, root / WALK.name)
    out, keypoints = tmp_path / "o.mp4", tmp_path / "k.json"
    code = main([f"{url}/{WALK.name}", "--out", str(out), "--save-json", str(keypoints),
                 "--model", pose_model, "--backend", "cpu", "--max-persons", "1"])  # fmt: skip
    summary = _stderr_lines(capsys)[-1]
    assert code == 0, summary
    assert "45 frames" in summary and "skipped" not in summary
    frames = json.loads(keypoints.read_text())["instance_info"]
    assert [f["frame_id"] for f in frames] == list(range(45))
    assert probe(out)["frames"] == 45


def _moov_at_end_mp4(path: Path, frames: int = 90) -> None:
    """An MP4 large enough that its index (written last) is beyond FFmpeg's first reads."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 640, 480, "yuv420p"
        stream.options = {"crf": "1", "preset": "ultrafast"}
        rng = np.random.default_rng(0)
        noise = [rng.integers(0, 255, (480, 640, 3), np.uint8) for _ in range(frames)]
        encode_frames(out, stream, noise)


@pytest.mark.slow
def test_a_moov_at_end_mp4_without_range_requests_claims_no_output(
    http_server, tmp_path, pose_model, capsys
):
    root, url = http_server
    _moov_at_end_mp4(root / "big.mp4")
    out = tmp_path / "o.mp4"
    code = main([f"{url}/big.mp4", "--out", str(out), "--model", pose_model,
                 "--backend", "cpu"])  # fmt: skip
    line = _stderr_lines(capsys)[-1]
    assert code == 1
    assert line.startswith("hfpose-video: error: cannot read") and "range requests" in line
    assert not out.exists() and "wrote" not in line


def _faststart_walk(tmp_path: Path) -> bytes:
    """The walk clip as an MP4 with its index first, as a streaming server serves it."""
    clip = tmp_path / "faststart.mp4"
    with open_source(WALK) as source:
        images = [frame.image for frame in source]
    with av.open(str(clip), "w", options={"movflags": "faststart"}) as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 640, 480, "yuv420p"
        stream.options = {"g": "5", "bf": "0"}
        encode_frames(out, stream, images)
    return clip.read_bytes()


def _serve_60_percent(data: bytes, then_stall: bool):
    """A server that announces ``data``'s full length, sends 60% of it, then closes the
    connection (or, ``then_stall``, keeps it open and sends nothing more)."""
    import http.server
    import socketserver

    release = threading.Event()

    class PartServer(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Content-Type", "video/mp4")
            self.end_headers()
            self.wfile.write(data[: len(data) * 6 // 10])
            self.wfile.flush()
            if then_stall:
                release.wait(60)

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), PartServer)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, release


@pytest.fixture()
def cut_short_server(tmp_path):
    """Announces a faststart MP4's full length and closes the connection at 60% of it."""
    data = _faststart_walk(tmp_path)
    server, _ = _serve_60_percent(data, then_stall=False)
    yield f"http://127.0.0.1:{server.server_address[1]}/clip.mp4", len(data)
    server.shutdown()
    server.server_close()


def test_a_transfer_cut_short_is_reported_as_for_a_local_file(cut_short_server):
    url, size = cut_short_server
    with open_url(url) as source:
        assert (source.info.kind, source.info.is_live) == ("file", False)
        frames = list(source)
    ended = source.info.ended_early
    assert 10 < len(frames) < 45 and ended.frames == len(frames) and ended.announced == 45
    assert ended.message.startswith(f"decoding stopped at frame {len(frames)} of the 45")
    assert (
        "the transfer stopped after byte" in ended.reason and f"{size:,} announced" in ended.reason
    )


def test_a_transfer_that_stalls_says_it_timed_out_and_after_how_long(tmp_path):
    """Was reported as a connection closed early ("cut short?"), though the server was still
    there and had only stopped sending."""
    data = _faststart_walk(tmp_path)
    server, release = _serve_60_percent(data, then_stall=True)
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/clip.mp4"
        with open_url(url, timeout_s=1.0) as source:
            frames = list(source)
    finally:
        release.set()
        server.shutdown()
        server.server_close()
    ended = source.info.ended_early
    assert 10 < len(frames) < 45 and ended.frames == len(frames)
    assert ended.reason.startswith("no data for 1 s (timed out) after byte ")
    assert ended.reason.endswith(f" of the {len(data):,} announced")


def test_a_server_that_never_answers_times_out_saying_after_how_long():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)  # accepts connections, never answers
    try:
        started = time.monotonic()
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/clip.mp4"
        with pytest.raises(SourceError) as failed:
            open_url(url, timeout_s=1.0)
        assert time.monotonic() - started < 10
    finally:
        listener.close()
    assert str(failed.value) == f"cannot open stream {url}: no answer in 1 s (timed out)"


# --------------------------------------------------------------------------- PoseTracker


@pytest.fixture(scope="module")
def tracker(pose_model):
    return PoseTracker(model=pose_model, backend="cpu", stills=True)


def test_pose_tracker_converts_grayscale_and_bgra(tracker):
    photo = cv2.imread(str(PHOTO))
    gray = cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY)
    expected = tracker(cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR))
    assert expected  # a person in the photo
    for image in (gray, gray[:, :, None]):
        people = tracker(image)
        assert len(people) == len(expected)
        assert np.allclose(people[0].keypoints, expected[0].keypoints)
    bgra = tracker(cv2.cvtColor(photo, cv2.COLOR_BGR2BGRA))
    assert np.allclose(bgra[0].keypoints, tracker(photo)[0].keypoints)


@pytest.mark.parametrize(
    ("image", "detail"),
    [
        (np.zeros((64, 48, 3), np.float32), "dtype float32; from floats in 0..1"),
        (np.zeros((64, 48, 3), np.uint16), "dtype uint16; from 16 bits"),
        (np.zeros((0, 0, 3), np.uint8), "an empty image"),
        (np.zeros((3, 64, 48), np.uint8), "shape (3, 64, 48); channels first?"),
        (np.zeros((64, 48, 3), bool), "dtype bool"),
        ([[0, 0, 0]], "got list"),
        (None, "got NoneType"),
    ],
    ids=["float", "uint16", "empty", "chw", "bool", "list", "none"],
)
def test_pose_tracker_refuses_other_images_naming_what_it_wants(tracker, image, detail):
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8 BGR") as refused:
        tracker(image)
    assert detail in str(refused.value) and "\n" not in str(refused.value)


def test_non_finite_settings_are_refused_by_every_interface(pose_model):
    for value in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="det_interval_s must be a finite number"):
            PoseTracker(model=pose_model, backend="cpu", det_interval_s=value)


# --------------------------------------------------------------------------- what is no input


def test_a_text_file_is_not_a_video(pose_model, tmp_path, capsys):
    text = tmp_path / "README.txt"  # FFmpeg's tty demuxer takes it as a 10-frame video
    text.write_text("Videos used by the tests.\n" * 40)
    assert main([str(text), "--out", str(tmp_path / "o.mp4"), "--model", pose_model,
                 "--backend", "cpu"]) == 1  # fmt: skip
    assert _stderr_lines(capsys)[-1] == (
        f"hfpose-video: error: not a video file (FFmpeg would draw it as text): {text}"
    )
    assert not (tmp_path / "o.mp4").exists()


def test_an_image_to_image_onnx_is_not_a_keypoint_model(tmp_path, capsys):
    import onnx
    from onnx import TensorProto, helper

    shape = [1, 3, 256, 192]
    graph = helper.make_graph(
        [helper.make_node("Identity", ["image"], ["picture"])],
        "image_to_image",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("picture", TensorProto.FLOAT, shape)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "image_to_image.onnx"
    onnx.save(model, str(path))
    assert main([str(WALK), "--save-json", str(tmp_path / "k.json"), "--model", str(path),
                 "--backend", "cpu"]) == 1  # fmt: skip
    line = _stderr_lines(capsys)[-1]
    assert "is not a top-down keypoint model of a known family" in line
    assert "picture (1, 3, 256, 192)" in line and not (tmp_path / "k.json").exists()


def test_a_1x1_video_says_its_frames_are_too_small_to_encode(tmp_path, pose_model, capsys):
    tiny = tmp_path / "tiny.mkv"
    with av.open(str(tiny), "w") as out:
        stream = out.add_stream("ffv1", rate=30)
        stream.width, stream.height, stream.pix_fmt = 1, 1, "bgr0"
        encode_frames(out, stream, [np.full((1, 1, 3), 99, np.uint8)] * 5)
    out_path = tmp_path / "o.mp4"
    assert main([str(tiny), "--out", str(out_path), "--model", pose_model,
                 "--backend", "cpu"]) == 1  # fmt: skip
    assert _stderr_lines(capsys)[-1] == (
        f"hfpose-video: error: cannot write {out_path}: the frames (1x1) are too small to "
        "encode (2x2 pixels at least)"
    )
    assert not out_path.exists()
