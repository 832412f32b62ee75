"""``hfpose-video`` end to end: outputs, exit codes with one-line reasons, Ctrl+C safety."""

from __future__ import annotations

import csv
import json
import signal
import sys
import time
from pathlib import Path

import pytest

from hfpose.app.video_cli import main
from tests.helpers import image_folder_of, probe, start_until_progress

REPO_ROOT = Path(__file__).resolve().parents[1]
VIDEOS = REPO_ROOT / "tests" / "data" / "videos"
TONE = VIDEOS / "intel_asl_please_1s5_tone.mp4"
WALK = VIDEOS / "intel_asl_walk_1s5.mp4"


def _error_line(capsys) -> str:
    """The last stderr line, which must carry the reason on its own."""
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    return lines[-1]


@pytest.mark.slow
def test_video_in_annotated_video_and_keypoints_out(tmp_path, pose_model, capsys):
    out, js, table = tmp_path / "out.mp4", tmp_path / "k.json", tmp_path / "k.csv"
    code = main([str(TONE), "--out", str(out), "--model", pose_model, "--backend", "cpu",
                 "--save-json", str(js), "--save-csv", str(table), "--max-persons", "1"])  # fmt: skip
    assert code == 0
    summary = _error_line(capsys)
    assert "45 frames" in summary and "cpu" in summary and "FPS" in summary
    got = probe(out)
    assert got["frames"] == 45 and got["fps"] == pytest.approx(30.0)
    assert got["audio_s"] == pytest.approx(1.5, abs=0.1)
    assert len(json.loads(js.read_text())["instance_info"]) == 45
    rows = list(csv.DictReader(table.open()))
    assert len(rows) % 17 == 0 and {r["frame"] for r in rows} <= {str(i) for i in range(45)}


@pytest.mark.slow
def test_no_audio_flag(tmp_path, pose_model):
    out = tmp_path / "silent.mp4"
    code = main([str(TONE), "--out", str(out), "--model", pose_model, "--backend", "cpu",
                 "--no-audio", "--max-persons", "1", "--det-interval-s", "0.17"])  # fmt: skip
    assert code == 0
    assert probe(out)["audio_s"] is None


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["--backend", "tpu"], "unknown backend 'tpu'"),
        (["--device", "tpu"], "unknown backend 'tpu'"),  # the deprecated name checks the same
        (["--det-interval-s", "-1"], "must be 0 or more"),
        (["--det-interval-s", "nan"], "must be a finite number, got nan"),
        (["--det-interval-s", "inf"], "must be a finite number, got inf"),
        (["--det-interval", "5"], "is now --det-interval-s SECONDS"),  # frames: no longer
        (["--kpt-thr", "2"], "between 0 and 1"),
        (["--smooth", "wobble"], "invalid choice"),
        (["--frobnicate"], "unrecognized arguments"),
    ],
    ids=[
        "unknown-backend",
        "unknown-backend-by-old-name",
        "det-interval-s",
        "det-interval-s-nan",
        "det-interval-s-inf",
        "det-interval-in-frames",
        "kpt-thr",
        "smooth",
        "unknown-option",
    ],
)
def test_bad_arguments_exit_2(args, reason, capsys):
    with pytest.raises(SystemExit) as exited:
        main([str(WALK), *args])
    assert exited.value.code == 2
    assert reason in _error_line(capsys)


def test_missing_input_and_missing_model_exit_2(tmp_path, pose_model, capsys):
    assert main([str(tmp_path / "nope.mp4"), "--model", pose_model]) == 2
    assert _error_line(capsys) == f"hfpose-video: error: input not found: {tmp_path / 'nope.mp4'}"
    assert main([str(WALK), "--model", str(tmp_path / "nope.onnx")]) == 2
    assert "model not found" in _error_line(capsys)


def test_show_without_a_display_exits_2(monkeypatch, pose_model, capsys):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    if not sys.platform.startswith("linux"):
        pytest.skip("display detection is for Linux")
    assert main([str(WALK), "--model", pose_model, "--show"]) == 2
    assert "needs a display" in _error_line(capsys)


def _not_a_video(tmp_path: Path) -> Path:
    path = tmp_path / "notes.mp4"
    path.write_text("just text")
    return path


def _corrupt(tmp_path: Path) -> Path:
    data = bytearray(WALK.read_bytes())
    for i in range(4096, len(data), 101):
        data[i] ^= 0x5A
    path = tmp_path / "corrupt.mp4"
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize(
    ("make_input", "reason"),
    [
        (_not_a_video, "not a video file"),
        (_corrupt, "corrupt video stream"),
        (lambda tmp: "webcam:63", "cannot open camera 63"),
    ],
    ids=["not-a-video", "corrupt", "camera"],
)
def test_unusable_inputs_exit_1(tmp_path, pose_model, capsys, make_input, reason):
    out = tmp_path / "out.mp4"
    code = main([str(make_input(tmp_path)), "--out", str(out), "--model", pose_model,
                 "--backend", "cpu"])  # fmt: skip
    assert code == 1
    line = _error_line(capsys)
    assert line.startswith("hfpose-video: error:") and reason in line


def test_unwritable_output_exits_1(tmp_path, pose_model, capsys):
    out = tmp_path / "missing_folder" / "out.mp4"
    assert main([str(WALK), "--out", str(out), "--model", pose_model, "--backend", "cpu"]) == 1
    line = _error_line(capsys)
    assert line.startswith("hfpose-video: error: cannot write") and "does not exist" in line


def test_file_that_is_not_a_model_exits_1(tmp_path, capsys):
    fake = tmp_path / "model.onnx"
    fake.write_text("not a network")
    assert main([str(WALK), "--out", str(tmp_path / "o.mp4"), "--model", str(fake),
                 "--backend", "cpu"]) == 1  # fmt: skip
    line = _error_line(capsys)
    assert line.startswith("hfpose-video: error:") and "model.onnx" in line


@pytest.mark.slow
@pytest.mark.parametrize("sigint_ignored", [False, True], ids=["terminal", "inherited-ignored"])
def test_ctrl_c_half_way_leaves_a_playable_video(tmp_path, pose_model, sigint_ignored):
    """SIGINT (twice) while a 150-frame image folder is processed: exit 130, files complete;
    also where SIGINT came in ignored (a background job of a shell without job control)."""
    folder = image_folder_of(WALK, tmp_path / "frames", 150)
    out, keypoints = tmp_path / "interrupted.mp4", tmp_path / "interrupted.json"
    command = [sys.executable, "-m", "hfpose.app.video_cli", str(folder), "--out", str(out),
               "--save-json", str(keypoints), "--model", pose_model, "--backend", "cpu",
               "--max-persons", "1"]  # fmt: skip
    process, seen = start_until_progress(command, 10, 150, sigint_ignored)
    process.send_signal(signal.SIGINT)
    time.sleep(0.05)
    process.send_signal(signal.SIGINT)  # an impatient second Ctrl+C must not lose the files
    rest = process.communicate(timeout=60)[1]
    assert process.returncode == 130, seen + rest
    assert "interrupted" in rest
    written = probe(out)["frames"]
    assert 10 <= written < 150
    saved = json.loads(keypoints.read_text())
    assert len(saved["instance_info"]) == written
    assert saved["meta_info"]["input_complete"] is False  # stopped: not every frame was read


@pytest.mark.slow
def test_default_output_name_in_the_current_folder(tmp_path, pose_model, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = main([str(WALK), "--model", pose_model, "--backend", "cpu", "--det-interval-s", "0.3",
                 "--kpt-thr", "0", "--max-persons", "1"])  # fmt: skip
    assert code == 0
    assert probe(tmp_path / "intel_asl_walk_1s5_pose.mp4")["frames"] == 45


def test_image_folder_to_coco_results(tmp_path, pose_model):
    """COCO val images in, COCO keypoint results out (image ids from the file names)."""
    folder = REPO_ROOT / "tests" / "data" / "coco"
    out = tmp_path / "results.json"
    code = main([str(folder), "--save-coco", str(out), "--model", pose_model, "--backend", "cpu"])
    assert code == 0
    results = json.loads(out.read_text())
    expected = {int(p.stem) for p in folder.glob("*.jpg")}
    assert results and {r["image_id"] for r in results} <= expected
    assert all(len(r["keypoints"]) == 51 and r["category_id"] == 1 for r in results)
