"""Outputs never destroy inputs or each other; a full disk, SIGTERM and a second run on the
same output end with every other output finished. Real files, links, devices, FIFOs, a real
second process holding the lock and real signals to a real ``hfpose-video`` process."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from hfpose.app.video_cli import UsageError, _check_outputs, build_parser, main
from hfpose.engine.output.output_files import NAME_MAX, OutputLock
from tests.helpers import REPO_ROOT, image_folder_of, probe, start_until_progress

VIDEOS = REPO_ROOT / "tests" / "data" / "videos"
WALK = VIDEOS / "intel_asl_walk_1s5.mp4"
PHOTO = REPO_ROOT / "tests" / "data" / "frames" / "intel_asl_book_f30.jpg"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _last_line(capsys) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    return lines[-1]


def _leftovers(folder: Path) -> list[str]:
    """Hidden files a run left beside its outputs (temporary files, locks)."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda d, v, p: ["--out", str(v)], "--out {v} is the same file as the input"),
        (lambda d, v, p: [p.name, "--out", p.name], "is the same file as the input"),
        (
            lambda d, v, p: ["--out", str(_link(d / "link.mp4", v, symbolic=True))],
            "is the same file as the input",
        ),
        (
            lambda d, v, p: ["--save-json", str(_link(d / "hard.json", v, symbolic=False))],
            "is the same file as the input",
        ),
        (
            lambda d, v, p: ["--out", str(d / "o.mp4"), "--save-json", str(d / "o.mp4")],
            "is the same file as --out",
        ),
        (
            lambda d, v, p: ["--save-json", str(d / "k"), "--save-csv", str(d / "." / "k")],
            "is the same file as --save-json",
        ),
        (lambda d, v, p: ["--save-csv", str(d / "model.onnx")], "is the same file as --model"),
        (lambda d, v, p: ["--save-json", str(d)], "is a folder, not a file"),
        (lambda d, v, p: ["--out", str(d / "o.avi")], "unknown video file kind '.avi'"),
    ],
    ids=[
        "out-is-input",
        "photo-out-is-itself",
        "out-symlink-to-input",
        "json-hard-link-to-input",
        "json-is-out",
        "csv-is-json",
        "csv-is-model",
        "json-is-a-folder",
        "out-unknown-extension",
    ],
)
def test_an_output_that_would_destroy_an_input_or_output_exits_2(
    tmp_path, pose_model, capsys, monkeypatch, make, reason
):
    video = tmp_path / WALK.name
    shutil.copy(WALK, video)
    photo = tmp_path / PHOTO.name
    shutil.copy(PHOTO, photo)
    model = tmp_path / "model.onnx"
    shutil.copy(pose_model, model)
    before = {p: _digest(p) for p in (video, photo, model)}
    monkeypatch.chdir(tmp_path)
    args = make(tmp_path, video, photo)
    if args[0] != photo.name:
        args = [str(video), *args]
    assert main([*args, "--model", str(model), "--backend", "cpu"]) == 2
    line = _last_line(capsys)
    assert line.startswith("hfpose-video: error: ")
    assert reason.format(v=video) in line
    assert {p: _digest(p) for p in before} == before  # nothing was opened for writing
    assert not (tmp_path / "o.mp4").exists()


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_an_output_under_proc_says_that_folder_takes_no_files(pose_model, capsys):
    """For root, whom the folder's permissions do not stop, this was "cannot write
    /proc/hfpose.mp4: No such file or directory": the lock file beside it was not made."""
    out = "/proc/hfpose.mp4"
    assert main([str(PHOTO), "--out", out, "--model", pose_model, "--backend", "cpu"]) == 1
    line = _last_line(capsys)
    assert line.startswith(f"hfpose-video: error: cannot write {out}: folder /proc ")
    assert line.endswith(("is not writable", "takes no new files (No such file or directory)"))


def _link(path: Path, target: Path, symbolic: bool) -> Path:
    if symbolic:
        path.symlink_to(target)
    else:
        os.link(target, path)
    return path


@pytest.mark.parametrize("option", ["--save-angles", "--save-reps"])
def test_outputs_added_by_other_features_are_checked_too(option):
    """Every --save-* option is an output by its name: the angle exports, declared by their own
    feature and listed nowhere in the check, are refused onto the input all the same."""
    args = build_parser().parse_args([str(WALK), option, str(WALK)])
    with pytest.raises(UsageError, match=f"{option} .* is the same file as the input"):
        _check_outputs(args)


def _run_photo(tmp_path: Path, pose_model: str, *outputs: str) -> list[str]:
    return [sys.executable, "-m", "hfpose.app.video_cli", str(PHOTO), *outputs,
            "--model", pose_model, "--backend", "cpu"]  # fmt: skip


@pytest.mark.slow
def test_a_fifo_is_written_through_not_replaced(tmp_path, pose_model):
    fifo = tmp_path / "keypoints.pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    done = subprocess.run(_run_photo(tmp_path, pose_model, "--save-json", str(fifo)),
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)  # fmt: skip
    reader.join(10)
    assert done.returncode == 0, done.stderr
    assert stat.S_ISFIFO(fifo.stat().st_mode)  # still the pipe, not a regular file
    assert len(json.loads(received[0])["instance_info"]) == 1
    assert _leftovers(tmp_path) == []


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0 if hasattr(os, "geteuid") else True, reason="mknod: root")
def test_a_character_device_is_written_through_not_replaced(tmp_path, pose_model):
    """A copy of the null device (the real one would be replaced system-wide)."""
    device = tmp_path / "null"
    os.mknod(device, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    done = subprocess.run(_run_photo(tmp_path, pose_model, "--save-json", str(device)),
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert stat.S_ISCHR(device.stat().st_mode)
    assert _leftovers(tmp_path) == []


@pytest.mark.slow
def test_a_legal_250_character_name_works(tmp_path, pose_model):
    name = "k" * (250 - len(".json")) + ".json"
    assert len(name) <= NAME_MAX
    out = tmp_path / name
    done = subprocess.run(_run_photo(tmp_path, pose_model, "--save-json", str(out)),
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert len(json.loads(out.read_text())["instance_info"]) == 1
    assert _leftovers(tmp_path) == []


@pytest.mark.slow
def test_a_second_run_on_the_same_output_stops_before_touching_it(tmp_path, pose_model):
    """Another process (a real one) writes out.mp4: this run says so, exits 1, and the file
    keeps the other run's bytes; its other output is not left half-made either."""
    out = tmp_path / "out.mp4"
    out.write_bytes(b"the other run's video")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from hfpose.engine.output.output_files import OutputLock; "
         "lock = OutputLock(sys.argv[1]); lock.acquire(); print('held', flush=True); "
         "sys.stdin.read(); lock.release()", str(out)],
        cwd=REPO_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        done = subprocess.run(
            _run_photo(tmp_path, pose_model, "--out", str(out), "--save-json",
                       str(tmp_path / "k.json")),
            cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    finally:
        holder.communicate("", timeout=10)
    assert done.returncode == 1
    line = done.stderr.strip().splitlines()[-1]
    assert "out.mp4 is being written by another run (process" in line
    assert out.read_bytes() == b"the other run's video"
    assert _leftovers(tmp_path) == []  # the holder removed its lock; this run left none
    lock = OutputLock(out)
    lock.acquire()  # free again once the other run finished
    lock.release()


@pytest.mark.slow
@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs Linux's /dev/full")
def test_a_full_disk_is_exit_1_with_the_reason_and_the_other_outputs_finished(tmp_path, pose_model):
    keypoints = tmp_path / "j.json"
    command = [sys.executable, "-m", "hfpose.app.video_cli", str(WALK), "--out", "/dev/full",
               "--save-json", str(keypoints), "--model", pose_model, "--backend", "cpu"]  # fmt: skip
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr  # was a segmentation fault (139)
    line = done.stderr.strip().splitlines()[-1]
    assert line.startswith("hfpose-video: error: ") and "No space left on device" in line
    saved = json.loads(keypoints.read_text())
    assert 0 < len(saved["instance_info"]) < 45
    assert saved["meta_info"]["input_complete"] is False
    assert _leftovers(tmp_path) == []


@pytest.mark.slow
@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs Linux's /dev/full")
def test_a_full_disk_under_a_keypoint_file_names_that_file(tmp_path, pose_model):
    """Was "sink stage, frame N: [Errno 28] No space left on device": which of the outputs?"""
    out = tmp_path / "o.mp4"
    command = [sys.executable, "-m", "hfpose.app.video_cli", str(WALK), "--out", str(out),
               "--save-csv", "/dev/full", "--model", pose_model, "--backend", "cpu"]  # fmt: skip
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr
    line = done.stderr.strip().splitlines()[-1]
    assert line.startswith("hfpose-video: error: sink stage, frame ")
    assert line.endswith("writing /dev/full failed: No space left on device")
    assert done.stderr.count("No space left") == 1  # once, not also as a "warning:" line
    assert 0 < probe(out)["frames"] < 45  # the video has the frames before the failure
    assert _leftovers(tmp_path) == []


@pytest.mark.slow
def test_sigterm_finishes_every_output_and_exits_143(tmp_path, pose_model):
    folder = image_folder_of(WALK, tmp_path / "frames", 150)
    out, keypoints, table = tmp_path / "t.mp4", tmp_path / "t.json", tmp_path / "t.csv"
    command = [sys.executable, "-m", "hfpose.app.video_cli", str(folder), "--out", str(out),
               "--save-json", str(keypoints), "--save-csv", str(table), "--model", pose_model,
               "--backend", "cpu", "--max-persons", "1"]  # fmt: skip
    process, seen = start_until_progress(command, 10, 150)
    process.send_signal(signal.SIGTERM)
    rest = process.communicate(timeout=60)[1]
    assert process.returncode == 143, seen + rest
    assert rest.strip().splitlines()[-1] == (
        "hfpose-video: stopped by SIGTERM; the files written so far are complete"
    )
    written = probe(out)["frames"]
    assert 10 <= written < 150
    saved = json.loads(keypoints.read_text())
    assert len(saved["instance_info"]) == written
    assert saved["meta_info"]["input_complete"] is False
    rows = table.read_text().splitlines()
    assert len(rows) > 1 and rows[0].startswith("frame,")
    assert _leftovers(tmp_path) == []


# SIGTERM placed at a precise moment of the start, whatever the machine's speed: the real
# hfpose-video in its own process, one engine call wrapped so that it raises the signal there.
SIGTERM_AT = """
import signal, sys
from hfpose.app import video_cli
from hfpose.engine.pipeline import Pipeline
from hfpose.engine.stage_threads import StageThreads

def signalled(real, before):
    def call(*args):
        if before:
            signal.raise_signal(signal.SIGTERM)
        real(*args)
        if not before:
            signal.raise_signal(signal.SIGTERM)
    return call

if sys.argv[1] == "threads-starting":
    StageThreads.start = signalled(StageThreads.start, before=True)
else:
    Pipeline.start = signalled(Pipeline.start, before=False)
sys.exit(video_cli.main(sys.argv[2:]))
"""


@pytest.mark.slow
@pytest.mark.parametrize("moment", ["threads-starting", "just-started"])
def test_sigterm_while_the_run_starts_finishes_every_output_and_leaves_nothing(
    tmp_path, pose_model, moment
):
    """The outputs are open and the stage threads about to start (or just started, before the
    progress loop): was exit 143 with every lock and temporary file left behind, and, just
    started, an abort (134) as the still running threads met the interpreter's exit."""
    out, keypoints, table = tmp_path / "t.mp4", tmp_path / "t.json", tmp_path / "t.csv"
    command = [sys.executable, "-c", SIGTERM_AT, moment, str(WALK), "--out", str(out),
               "--save-json", str(keypoints), "--save-csv", str(table), "--model", pose_model,
               "--backend", "cpu"]  # fmt: skip
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 143, done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "hfpose-video: stopped by SIGTERM; the files written so far are complete"
    )
    assert _leftovers(tmp_path) == []
    saved = json.loads(keypoints.read_text())
    assert saved["meta_info"]["input_complete"] is False
    assert table.read_text().startswith("frame,")
    if out.exists():  # the recording starts with its first frame; if one came, it plays
        assert probe(out)["frames"] == len(saved["instance_info"])
