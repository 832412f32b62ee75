"""training/scoring/evaluation.py: COCO AP against pycocotools, PCKh, torso and box PCK, on real
fixture sets and, with ../shared, the LSPET validation list."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hfpose.models.config import load_config
from hfpose.models.metainfo import COCO, MPII
from hfpose.training.dataset.builder import build_dataset
from hfpose.training.scoring.evaluation import (
    evaluate_dataset,
    pck_torso,
    pckh_from_head_sizes,
    pckh_mpii_mat,
)
from tests.helpers import COCO_IMAGES, COCO_JSON, REPO

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _gt_predictions(dataset) -> dict[str, np.ndarray]:
    keypoints = np.stack([r["joints_3d"] for r in dataset.records]).astype(np.float64)
    keypoints[..., 2] = np.stack([r["joints_3d_visible"][:, 0] for r in dataset.records])
    return {
        "index": np.arange(len(dataset)),
        "keypoints": keypoints,
        "center": np.stack([r["bbox"][:2] + r["bbox"][2:] / 2 for r in dataset.records]),
        "scale": np.stack([r["bbox"][2:] / 200 * 1.25 for r in dataset.records]),
        "bbox_score": np.ones(len(dataset)),
    }


def _coco_test_set() -> tuple[dict, object]:
    cfg = load_config(
        "hf_hrnet_18_coco_256x192",
        [f"data.test.ann_file={COCO_JSON}", f"data.test.img_prefix={COCO_IMAGES}",
         "data_cfg.use_gt_bbox=true"],
    )  # fmt: skip
    return cfg, build_dataset(cfg, "test")


def test_coco_ap_is_one_on_ground_truth_fed_back(tmp_path: Path) -> None:
    cfg, dataset = _coco_test_set()
    metrics = evaluate_dataset(
        "mAP", _gt_predictions(dataset), dataset, COCO, cfg["data_cfg"], tmp_path
    )
    assert metrics["AP"] == pytest.approx(1.0)
    assert metrics["AR"] == pytest.approx(1.0)
    assert (tmp_path / "result_keypoints.json").is_file()


def test_coco_ap_agrees_with_pycocotools_on_a_perturbed_set(tmp_path: Path) -> None:
    from pycocotools import coco as pycoco
    from pycocotools.cocoeval import COCOeval

    cfg, dataset = _coco_test_set()
    rng = np.random.default_rng(3)
    predictions = _gt_predictions(dataset)
    n = len(dataset)
    predictions["keypoints"][..., :2] += rng.normal(0, 6, (n, 17, 2))
    predictions["keypoints"][..., 2] = rng.uniform(0.05, 1.0, (n, 17))
    predictions["bbox_score"] = rng.uniform(0.5, 1.0, n)
    # a duplicate of person 0 with a lower score: OKS-NMS at 0.9 must drop it
    for key in predictions:
        predictions[key] = np.concatenate([predictions[key], predictions[key][:1]])
    predictions["index"][-1] = n  # its own sample index
    predictions["bbox_score"][-1] *= 0.5
    dataset.records.append(dataset.records[0])
    ours = evaluate_dataset("coco", predictions, dataset, COCO, cfg["data_cfg"], tmp_path)

    # the same by hand: rescoring, the duplicate removed, then pycocotools directly
    results = []
    for i in range(n):
        kpts = predictions["keypoints"][i]
        confident = kpts[:, 2] > 0.2
        score = kpts[confident, 2].mean() * predictions["bbox_score"][i]
        results.append({"image_id": dataset.records[i]["image_id"], "category_id": 1,
                        "keypoints": kpts.reshape(-1).tolist(), "score": float(score)})  # fmt: skip
    gt = pycoco.COCO(str(COCO_JSON))
    evaluator = COCOeval(gt, gt.loadRes(results), "keypoints")
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    assert 0.05 < ours["AP"] < 0.95
    np.testing.assert_allclose(
        [ours[k] for k in ("AP", "AP .5", "AP .75", "AP (M)", "AP (L)", "AR")],
        evaluator.stats[:6],
        atol=1e-12,
    )


def test_pckh_matches_a_hand_computation(tmp_path: Path) -> None:
    layout = COCO
    gt = np.zeros((2, 17, 3))
    pred = np.zeros((2, 17, 3))
    mask = np.zeros((2, 17), dtype=bool)
    # person 0, head size 10: shoulders 3 and 6 px off (hit, miss), left knee 4.9 px (hit)
    mask[0, [5, 6, 13]] = True
    pred[0, 5, 0], pred[0, 6, 1], pred[0, 13, 0] = 3.0, 6.0, 4.9
    # person 1, head size 20: left shoulder 9 px (hit), right shoulder 11 px (miss)
    mask[1, [5, 6]] = True
    pred[1, 5, 0], pred[1, 6, 1] = 9.0, 11.0
    table = pckh_from_head_sizes(pred, gt, mask, np.array([10.0, 20.0]), layout)
    # shoulders: left 2/2 = 100, right 0/2 = 0 -> 50; knee: 1/1; total: 3 hits of 5 joints
    assert table["Shoulder"] == pytest.approx(50.0)
    assert table["Knee"] == pytest.approx(100.0)
    assert table["PCKh"] == pytest.approx(60.0)
    assert table["PCKh@0.1"] == pytest.approx(0.0)  # every error is above 0.1 head

    # the same people through MPII's mat layout (1-based pixels, head boxes 0.6 x diagonal)
    from scipy.io import savemat

    mpii_pred = np.zeros((2, 16, 3))
    missing = np.ones((16, 2))
    pos_gt = np.full((16, 2, 2), 1.0)  # 1-based origin = 0-based (0, 0)
    names = MPII.keypoint_names
    for person, (joint, offset) in enumerate([("left_shoulder", 3.0), ("left_shoulder", 9.0)]):
        j = names.index(joint)
        missing[j, person] = 0
        mpii_pred[person, j, 0] = offset
    side = np.array([10.0, 20.0]) / 0.6 / np.sqrt(2)
    headboxes = np.zeros((2, 2, 2))
    headboxes[1, :, :] = side[None, :]
    savemat(tmp_path / "mpii_gt_val.mat",
            {"jnt_missing": missing, "pos_gt_src": pos_gt, "headboxes_src": headboxes})  # fmt: skip
    mat_table = pckh_mpii_mat(mpii_pred, tmp_path / "mpii_gt_val.mat", MPII)
    assert mat_table["Shoulder"] == pytest.approx(100.0)
    assert mat_table["PCKh"] == pytest.approx(100.0)


def test_torso_pck_uses_left_shoulder_to_right_hip() -> None:
    gt = np.zeros((1, 17, 3))
    gt[0, 5, :2] = (0, 0)  # left shoulder
    gt[0, 12, :2] = (30, 40)  # right hip: torso 50 px, PCK@0.2 radius 10 px
    pred = gt.copy()
    pred[0, 9, :2] = (9.9, 0)  # left wrist, labelled at (0, 0)
    pred[0, 10, :2] = (10.1, 0)  # right wrist
    mask = np.zeros((1, 17), dtype=bool)
    mask[0, [5, 9, 10, 12]] = True
    table = pck_torso(pred, gt, mask, COCO, 0.2)
    assert table["Wrist"] == pytest.approx(50.0)
    assert table["PCK"] == pytest.approx(75.0)  # mean over the 4 labelled joints


@pytest.mark.shared
def test_lspet_validation_list_loads_and_scores_its_own_labels_perfectly(shared_dir: Path):
    lspet = shared_dir / "datasets" / "lspet"
    cfg = load_config(
        "hf_hrnet_18_coco_256x192",
        [f"data.test.ann_file={lspet / 'lspet_coco17.json'}",
         f"data.test.img_prefix={lspet / 'images'}", "data_cfg.use_gt_bbox=true"],
    )  # fmt: skip
    cfg["data"]["test"]["image_list"] = str(REPO / "training/data/splits/lspet_val.txt")
    dataset = build_dataset(cfg, "test")
    assert len(dataset) == 500
    predictions = _gt_predictions(dataset)
    metrics = evaluate_dataset("pck", predictions, dataset, COCO, cfg["data_cfg"])
    assert metrics["PCK"] == pytest.approx(100.0)
    assert "Eye" not in metrics  # face joints are absent from LSPET: not scored
