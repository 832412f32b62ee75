"""Angles out of the real pipeline: ``hfpose-video --save-angles / --save-reps`` on a real
clip, the angles in ``--save-json``, and ``PoseTracker``'s ``person.angles``."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import av
import numpy as np
import pytest

from hfpose.app.video_cli import main
from hfpose.engine.angles import ANGLE_BY_NAME, angle_table
from hfpose.engine.output.angle_sinks import REPETITION_COLUMNS
from hfpose.models.metainfo import COCO

# Pedestrians walking across a hall, whole bodies 70-110 px tall (OpenCV's vtest.avi).
WALKING = "opencv_vtest.avi"
WALK_FRAMES = 80  # the first 8 s at 10 fps


def _first_frames(source: Path, target: Path, count: int) -> list[float]:
    """The first ``count`` frames of ``source`` copied without re-encoding (its packets and
    timestamps as they are: the clip has no B-frames); returns their times in seconds."""
    times = []
    with av.open(str(source)) as inp, av.open(str(target), "w") as out:
        stream_in = inp.streams.video[0]
        stream_out = out.add_stream_from_template(stream_in)
        for packet in inp.demux(stream_in):
            if packet.dts is None:
                continue
            if len(times) >= count:
                break
            times.append(float(packet.pts * stream_in.time_base))
            packet.stream = stream_out
            out.mux(packet)
    return sorted(times)


@pytest.fixture(scope="module")
def walking_run(shared_dir: Path, pose_model: str, tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("angles")
    clip = folder / "walking.mkv"
    times = _first_frames(shared_dir / "datasets" / "videos" / WALKING, clip, WALK_FRAMES)
    angles, reps, keypoints = folder / "angles.csv", folder / "reps.csv", folder / "k.json"
    code = main([str(clip), "--model", pose_model, "--backend", "cpu", "--save-angles",
                 str(angles), "--save-reps", str(reps), "--save-json", str(keypoints),
                 "--reps-angle", "left_knee", "--reps-low", "10", "--reps-high", "25"])  # fmt: skip
    assert code == 0
    with open(angles, newline="") as handle:
        rows = list(csv.DictReader(handle))
    with open(reps, newline="") as handle:
        rep_rows = list(csv.reader(handle))
    return {
        "times": times,
        "rows": rows,
        "reps": rep_rows,
        "json": json.loads(keypoints.read_text()),
    }


@pytest.mark.slow
def test_save_angles_one_row_per_frame_and_person_at_the_source_times(walking_run) -> None:
    rows, frames = walking_run["rows"], walking_run["json"]["instance_info"]
    names = angle_table(COCO.keypoint_names).names
    assert list(rows[0]) == ["frame", "time_s", "track_id", *names]
    expected = [(f["frame_id"], i["track_id"]) for f in frames for i in f["instances"]]
    assert [(int(r["frame"]), int(r["track_id"])) for r in rows] == expected
    source_times = walking_run["times"]
    for row in rows:
        assert float(row["time_s"]) == pytest.approx(source_times[int(row["frame"])], abs=1e-6)
    by_key = {(f["frame_id"], i["track_id"]): i["angles"] for f in frames for i in f["instances"]}
    filled = 0
    for row in rows:
        in_json = by_key[(int(row["frame"]), int(row["track_id"]))]
        for name in names:
            definition = ANGLE_BY_NAME[name]
            if row[name] == "":
                assert in_json[name] is None  # missing in both, never a made-up number
                continue
            value = float(row[name])
            assert definition.low <= value <= definition.high, (name, value)
            assert value == pytest.approx(in_json[name], abs=0.006)
            filled += 1
    assert filled > 0.5 * len(rows) * len(names)


@pytest.mark.slow
def test_a_walking_persons_knees_oscillate(walking_run) -> None:
    rows = walking_run["rows"]
    track = max({r["track_id"] for r in rows}, key=lambda t: sum(r["track_id"] == t for r in rows))
    mine = [r for r in rows if r["track_id"] == track]
    assert len(mine) >= 30
    for knee in ("left_knee", "right_knee"):
        values = np.array([float(r[knee]) if r[knee] else math.nan for r in mine])
        values = values[np.isfinite(values)]
        assert len(values) >= 20
        # a stride bends each knee and straightens it again, several times in 6 s
        assert values.max() - values.min() > 20.0, knee
        centred = values - np.median(values)
        crossings = np.count_nonzero(np.diff(np.sign(centred[centred != 0])) != 0)
        assert crossings >= 4, (knee, crossings)


@pytest.mark.slow
def test_save_reps_rows_are_complete_repetitions(walking_run) -> None:
    header, *reps = walking_run["reps"]
    assert tuple(header) == REPETITION_COLUMNS
    assert reps, "a walking knee passes 10 and 25 degrees at each stride"
    for row in reps:
        record = dict(zip(header, row))
        assert record["angle"] == "left_knee"
        assert float(record["start_s"]) < float(record["end_s"])
        assert float(record["min_deg"]) <= 10.0 and float(record["max_deg"]) >= 25.0


def test_angle_outputs_without_angles_exit_2(tmp_path, capsys) -> None:
    clip = Path(__file__).parent / "data" / "videos" / "mmpose_demo_street.mp4"
    out = str(tmp_path / "a.csv")
    assert main([str(clip), "--no-angles", "--save-angles", out]) == 2
    assert "leave out --no-angles" in capsys.readouterr().err
    assert main([str(clip), "--save-reps", out, "--reps-low", "50", "--reps-high", "40"]) == 2
    assert not Path(out).exists()


def test_pose_tracker_gives_each_person_their_angles(pose_model, data_dir) -> None:
    from hfpose.engine import PoseTracker

    # one frame as a still: a video's newcomers are confirmed over three frames first
    tracker = PoseTracker(model=pose_model, backend="cpu", stills=True)
    with av.open(str(data_dir / "videos" / "mmpose_demo_street.mp4")) as container:
        frame = next(container.decode(video=0)).to_ndarray(format="bgr24")
    people = tracker(frame, 0.0)
    assert people
    names = angle_table(COCO.keypoint_names).names
    assert all(tuple(person.angles) == names for person in people)
    assert any(math.isfinite(v) for person in people for v in person.angles.values())
    without = PoseTracker(model=pose_model, backend="cpu", stills=True, joint_angles=False)
    assert without(frame, 0.0)[0].angles == {}
