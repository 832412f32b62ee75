"""training/dataset/records.py and builder.py: refusals, MPII's centre and scale, mixed sets
by ratio with shards, COCO test sets on detections (real fixture files)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest

from hfpose.models.config import ConfigError, load_config
from hfpose.training.dataset.builder import build_dataset
from hfpose.training.dataset.records import DatasetError
from hfpose.training.dataset.transforms import build_pipeline
from tests.helpers import COCO_IMAGES, COCO_JSON, FIXTURE, small_options

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def test_empty_and_unlabelled_datasets_are_refused(tmp_path: Path) -> None:
    data = json.loads(COCO_JSON.read_text())
    empty = dict(data, annotations=[])
    (tmp_path / "empty.json").write_text(json.dumps(empty))
    unlabelled = copy.deepcopy(data)
    for ann in unlabelled["annotations"]:
        ann["keypoints"] = [v if i % 3 != 2 else 0 for i, v in enumerate(ann["keypoints"])]
        ann.pop("num_keypoints")
    (tmp_path / "unlabelled.json").write_text(json.dumps(unlabelled))
    for name, message in (("empty.json", "is empty"), ("unlabelled.json", "no labelled joints")):
        cfg = load_config("hf_hrnet_18_coco_256x192", small_options(tmp_path / name))
        with pytest.raises(DatasetError, match=message):
            build_dataset(cfg, "train")
    with pytest.raises(ConfigError, match="unknown step 'TopDownRandomFlipp'"):
        build_pipeline([{"type": "TopDownRandomFlipp"}])


def test_mpii_json_centre_scale_and_joints_follow_mmpose() -> None:
    cfg = load_config(
        "hf_hrnet_18_mpii_256x256",
        [f"data.train.ann_file={FIXTURE / 'mpii' / 'test_mpii.json'}",
         f"data.train.img_prefix={FIXTURE / 'mpii'}"],
    )  # fmt: skip
    dataset = build_dataset(cfg, "train")
    entry = json.loads((FIXTURE / "mpii" / "test_mpii.json").read_text())[0]
    record = dataset.records[0]
    # centre 15 px x scale lower, scale x 1.25, then MATLAB's 1-based pixels to 0-based
    np.testing.assert_allclose(
        record["center"], [entry["center"][0] - 1, entry["center"][1] + 15 * entry["scale"] - 1]
    )
    np.testing.assert_allclose(record["scale"], [entry["scale"] * 1.25] * 2)
    np.testing.assert_allclose(record["joints_3d"][:, :2], np.array(entry["joints"]) - 1)
    sample = dataset[(0, 0)]
    assert sample["img"].shape == (3, 256, 256) and sample["target"].shape == (16, 64, 64)


def test_mixed_datasets_follow_ratios_and_shards_split_one_order(four_people: Path) -> None:
    from hfpose.training.dataset.samplers import StepBatchSampler

    cfg = load_config("hf_hrnet_18_coco_256x192", small_options(four_people))
    entry = dict(cfg["data"]["train"])
    cfg["data"]["train"] = [dict(entry, sampling_ratio=3), dict(entry, sampling_ratio=1)]
    cfg["data"]["train_samples_per_epoch"] = 400
    dataset = build_dataset(cfg, "train")
    one = StepBatchSampler(dataset, 4, seed=1)
    one.set_epoch(2)
    drawn = [i for batch in one for _, i in batch]
    assert len(drawn) == 400
    from_first = sum((i % len(dataset)) < 4 for i in drawn)
    assert 270 <= from_first <= 330  # 3:1 of 400 = 300
    # two processes' shards, interleaved step by step, are one process's accumulation batches
    ranks = [StepBatchSampler(dataset, 2, world_size=2, rank=r, seed=1) for r in range(2)]
    accumulating = StepBatchSampler(dataset, 2, accumulate=2, seed=1)
    for sampler in (*ranks, accumulating):
        sampler.set_epoch(2)
    interleaved = [b for pair in zip(*ranks) for b in pair]
    assert interleaved == list(accumulating)
    # a repeated draw of one person gets its own augmentation
    repeat = next(i for i in drawn if i >= len(dataset))
    a, b = dataset[(2, repeat % len(dataset))], dataset[(2, repeat)]
    assert not np.array_equal(a["img"], b["img"])


def test_coco_test_set_on_detections_keeps_boxes_above_the_threshold(tmp_path: Path) -> None:
    data = json.loads(COCO_JSON.read_text())
    detections = [
        {"image_id": a["image_id"], "category_id": 1, "bbox": a["bbox"], "score": score}
        for a, score in zip(data["annotations"], np.linspace(0.1, 1.0, len(data["annotations"])))
    ]
    detections.append({"image_id": 785, "category_id": 2, "bbox": [0, 0, 50, 50], "score": 1.0})
    (tmp_path / "dets.json").write_text(json.dumps(detections))
    cfg = load_config(
        "hf_hrnet_18_coco_256x192",
        [f"data.test.ann_file={COCO_JSON}", f"data.test.img_prefix={COCO_IMAGES}",
         f"data_cfg.bbox_file={tmp_path / 'dets.json'}", "data_cfg.det_bbox_thr=0.5"],
    )  # fmt: skip
    dataset = build_dataset(cfg, "test")
    scores = [r["bbox_score"] for r in dataset.records]
    assert len(dataset) == sum(1 for d in detections[:-1] if d["score"] >= 0.5)
    assert min(scores) >= 0.5
    sample = dataset[0]
    assert sample["img"].shape == (3, 256, 192) and "target" not in sample
