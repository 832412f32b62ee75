"""benchmarks/bench_accuracy.py: BlazePose's 33 landmarks scored as COCO-17 through hfpose-test's
dataset and metrics (real mediapipe model on mmpose's COCO test images), and the table."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_accuracy  # noqa: E402


@pytest.mark.slow
def test_blazepose_scores_like_a_pose_model_on_coco_people(data_dir, tmp_path) -> None:
    pytest.importorskip("mediapipe")
    argv = [
        bench_accuracy.CONFIG, "--model", "blazepose", "--use-gt-bbox", "--metric", "coco",
        "--ann", str(data_dir / "coco" / "test_coco.json"),
        "--img-dir", str(data_dir / "coco"), "--work-dir", str(tmp_path),
    ]  # fmt: skip

    metrics = bench_accuracy.score_blazepose_argv(argv)

    # A landmark mapped to the wrong COCO joint (or left/right swapped) scores near zero.
    assert metrics["AP .5"] > 0.5, metrics
    assert (tmp_path / "result_keypoints.json").is_file()


def test_table_shows_percent_and_the_crop_of_each_model() -> None:
    results = {
        "hf_hrnet": {"mpii": {"PCKh": 69.19, "PCKh@0.1": 18.2}, "coco_found": {"AP": 0.138}},
        "blazepose": {"mpii": {"PCKh": 73.3, "PCKh@0.1": 26.4}},
    }
    crops = {"hf_hrnet": "192x256, 3:4", "blazepose": "256x256, square"}

    table = bench_accuracy.markdown_table(results, crops).splitlines()

    assert table[0].startswith("| model | crop | MPII val PCKh@0.5 | MPII val PCKh@0.1 |")
    assert "LSPET" not in table[0]  # no model was scored on it
    assert table[2] == "| HF-HRNet-18 (shipped) | 192x256, 3:4 | 69.2 | 18.2 | 13.8 | - |"
    assert table[3].endswith("| 73.3 | 26.4 | - | - |")
