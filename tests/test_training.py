"""Training: data pipeline geometry, targets, loss, evaluation, trainer (resume, DDP, overfit).

Real components throughout: the real HF-HRNet (made small with --cfg-options: a 64x128 input and
one module per stage), real mmpose fixture images, real pycocotools, a real 2-process gloo group.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from hfpose.models.checkpoint import load_checkpoint
from hfpose.models.config import ConfigError, load_config
from hfpose.models.hf_hrnet import build_model
from hfpose.models.metainfo import COCO, MPII
from hfpose.training.checkpointing import LATEST, TrainingError
from hfpose.training.dataset_builder import build_dataset, dataset_layout, layout_ann_info
from hfpose.training.datasets import DatasetError
from hfpose.training.evaluation import (
    evaluate_dataset,
    pck_bbox,
    pck_torso,
    pckh_from_head_sizes,
    pckh_mpii_mat,
)
from hfpose.training.losses import JointsMSELoss
from hfpose.training.prediction import predict_with_model
from hfpose.training.run_config import LrConfig
from hfpose.training.schedule import StepLrWithWarmup
from hfpose.training.trainer import Trainer
from hfpose.training.transforms import build_pipeline

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "data"
COCO_JSON = FIXTURE / "coco" / "test_coco.json"
COCO_IMAGES = FIXTURE / "coco"
# one well-labelled person in each of the 4 fixture images
FOUR_PEOPLE = {442619, 230195, 1724673, 437295}
NO_AUGMENTATION = [
    {"type": "LoadImageFromFile"},
    {"type": "TopDownGetBboxCenterScale", "padding": 1.25},
    {"type": "TopDownAffine"},
    {"type": "ToTensor"},
    {"type": "NormalizeTensor", "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
    {"type": "TopDownGenerateTarget", "sigma": 2},
]


def small_options(ann: Path, **extra: object) -> list[str]:
    """--cfg-options making HF-HRNet-18 small enough for a test on 2 shared cores."""
    options = {
        "data_cfg.image_size": "[64,128]",
        "data_cfg.heatmap_size": "[16,32]",
        "model.backbone.extra.stages_spec.num_modules": "[1,1,1]",
        "data.samples_per_gpu": 2,
        "data.workers_per_gpu": 0,
        "data.train.ann_file": ann,
        "data.train.img_prefix": COCO_IMAGES,
        "data.val.ann_file": ann,
        "data.val.img_prefix": COCO_IMAGES,
        "data_cfg.use_gt_bbox": "true",
        "evaluation.interval": 0,
        "log_config.interval": 1,
        "lr_config.warmup_iters": 2,
        "amp": "none",
        **extra,
    }
    return [f"{key}={value}" for key, value in options.items()]


@pytest.fixture(scope="module", autouse=True)
def _one_thread_and_restore_denormals():
    """One intra-op thread: on 2 cores shared with other jobs, two OpenMP threads spin-waiting
    for each other made a step of the small model 10x slower (1.7 s against 0.15 s). The
    trainer flushes subnormals process-wide on the CPU: leave other tests as found."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    torch.set_flush_denormal(False)


@pytest.fixture(scope="module")
def four_people(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = json.loads(COCO_JSON.read_text())
    data["annotations"] = [a for a in data["annotations"] if a["id"] in FOUR_PEOPLE]
    path = tmp_path_factory.mktemp("ann") / "four_people.json"
    path.write_text(json.dumps(data))
    return path


# ------------------------------------------------------------------------------------------------
# Augmentation geometry: a drawn dot must stay under its keypoint


def _dot_sample(joint: int, rng: np.random.Generator) -> tuple[dict, np.ndarray]:
    """A black image with one bright blob at keypoint ``joint``; all 17 keypoints labelled."""
    height, width = 240, 320
    joints = np.zeros((17, 3), dtype=np.float32)
    joints[:, 0] = rng.uniform(110, 210, 17)
    joints[:, 1] = rng.uniform(40, 200, 17)
    image = np.zeros((height, width, 3), dtype=np.float32)
    yy, xx = np.mgrid[0:height, 0:width]
    x, y = joints[joint, :2]
    blob = np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 2.5**2))
    image[...] = (blob * 255)[..., None]
    visible = np.zeros((17, 3), dtype=np.float32)
    visible[:, :2] = 1
    results = {
        "img": image.round().astype(np.uint8),
        "bbox": np.array([100.0, 30.0, 120.0, 180.0]),
        "center": None,
        "scale": None,
        "rotation": 0.0,
        "joints_3d": joints,
        "joints_3d_visible": visible,
    }
    return results, joints


def _blob_centre(crop: np.ndarray) -> np.ndarray:
    weights = crop[..., 0].astype(np.float64)
    weights[weights < 20] = 0
    yy, xx = np.mgrid[0 : crop.shape[0], 0 : crop.shape[1]]
    return np.array([(xx * weights).sum(), (yy * weights).sum()]) / weights.sum()


AUGMENTATIONS = {
    "shift": {"type": "TopDownRandomShiftBboxCenter", "shift_factor": 0.16, "prob": 1.0},
    "flip": {"type": "TopDownRandomFlip", "flip_prob": 1.0},
    "half_body": {"type": "TopDownHalfBodyTransform", "num_joints_half_body": 8, "prob_half_body": 1.0},
    "scale_rotation": {"type": "TopDownGetRandomScaleRotation", "rot_factor": 30,
                       "scale_factor": 0.25, "rot_prob": 1.0},
}  # fmt: skip


@pytest.mark.parametrize("names", [[n] for n in AUGMENTATIONS] + [list(AUGMENTATIONS)])
def test_augmentations_keep_keypoints_on_the_drawn_dot(names: list[str]) -> None:
    cfg = load_config("hf_hrnet_18_coco_256x192")
    ann_info = layout_ann_info(cfg)
    steps = [{"type": "TopDownGetBboxCenterScale", "padding": 1.25}]
    steps += [AUGMENTATIONS[n] for n in names]
    steps += [{"type": "TopDownAffine"}, {"type": "TopDownGenerateTarget", "sigma": 2}]
    pipeline = build_pipeline(steps)
    flip_index = COCO.flip_index()
    checked = 0
    for seed in range(12):
        rng = np.random.default_rng(seed)
        joint = int(rng.integers(0, 17))
        results, _ = _dot_sample(joint, rng)
        results["ann_info"] = ann_info
        out = pipeline(results, np.random.default_rng(seed))
        # after a flip, the body point drawn as ``joint`` carries its mirror label
        label = flip_index[joint] if out.get("flipped") else joint
        x, y = out["joints_3d"][label, :2]
        height, width = out["img"].shape[:2]
        if not (8 <= x < width - 8 and 8 <= y < height - 8):  # blob cut by the crop border
            continue
        centre = _blob_centre(out["img"])
        np.testing.assert_allclose(out["joints_3d"][label, :2], centre, atol=0.35)
        peak = np.unravel_index(out["target"][label].argmax(), out["target"][label].shape)
        np.testing.assert_allclose(np.array(peak[::-1]), centre / 4, atol=0.75)
        checked += 1
    assert checked >= 6, f"only {checked} of 12 samples kept the dot inside the crop"


def test_flip_swaps_left_and_right_joints() -> None:
    cfg = load_config("hf_hrnet_18_coco_256x192")
    results, joints = _dot_sample(0, np.random.default_rng(0))
    results["ann_info"] = layout_ann_info(cfg)
    results["joints_3d_visible"][3] = 0  # left ear unlabelled: its mask must move to the right ear
    flip = build_pipeline([{"type": "TopDownGetBboxCenterScale"}, AUGMENTATIONS["flip"]])
    out = flip(copy.deepcopy(results), np.random.default_rng(0))
    width = results["img"].shape[1]
    for left, right in COCO.flip_pairs:
        for a, b in ((left, right), (right, left)):
            if results["joints_3d_visible"][a, 0]:
                np.testing.assert_allclose(out["joints_3d"][b, 0], width - 1 - joints[a, 0])
                np.testing.assert_allclose(out["joints_3d"][b, 1], joints[a, 1])
    assert out["joints_3d_visible"][4, 0] == 0 and out["joints_3d_visible"][3, 0] == 1
    np.testing.assert_array_equal(out["img"], results["img"][:, ::-1])
    np.testing.assert_allclose(out["joints_3d"][0, 0], width - 1 - joints[0, 0])  # nose stays


def test_mpii_flip_pairs_reach_the_pipeline() -> None:
    info = layout_ann_info(load_config("hf_hrnet_18_mpii_256x256"))
    assert [tuple(p) for p in info["flip_pairs"]] == list(MPII.flip_pairs)
    assert info["upper_body_ids"] == list(range(7, 16))


# ------------------------------------------------------------------------------------------------
# Loss and schedule


def test_joints_mse_masks_weightless_joints() -> None:
    output = torch.zeros(2, 3, 4, 4)
    target = torch.ones(2, 3, 4, 4)
    weight = torch.tensor([[[1.0], [0.0], [1.0]], [[0.0], [0.0], [1.0]]])
    loss = JointsMSELoss(use_target_weight=True)(output, target, weight)
    # mmpose: mean over all N*K*H*W entries, masked ones contributing 0
    assert loss.item() == pytest.approx(3 / 6)


def test_schedule_warms_up_linearly_then_steps_down() -> None:
    lr_config = LrConfig(step=(170, 200), warmup="linear", warmup_iters=500, warmup_ratio=0.001)
    schedule = StepLrWithWarmup(2e-3, lr_config)
    assert schedule.lr(0, 0) == pytest.approx(2e-6)
    assert schedule.lr(0, 250) == pytest.approx(2e-3 * (1 - 0.5 * 0.999))
    assert schedule.lr(5, 500) == pytest.approx(2e-3)
    assert schedule.lr(170, 10**6) == pytest.approx(2e-4)
    assert schedule.lr(200, 10**6) == pytest.approx(2e-5)


# ------------------------------------------------------------------------------------------------
# Evaluation


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


# ------------------------------------------------------------------------------------------------
# Bad input


def test_bad_config_key_and_missing_paths_are_named(tmp_path: Path, capsys) -> None:
    from hfpose.training.train_cli import main

    assert main(["hf_hrnet_18_coco_256x192", "--cfg-options", "optimiser.lr=1"]) == 2
    assert "optimiser" in capsys.readouterr().err

    missing_ann = tmp_path / "nope.json"
    code = main(["hf_hrnet_18_coco_256x192", "--work-dir", str(tmp_path / "w"),
                 "--cfg-options", f"data.train.ann_file={missing_ann}"])  # fmt: skip
    assert code == 1 and f"annotation file not found: {missing_ann}" in capsys.readouterr().err

    cfg_options = small_options(COCO_JSON, **{"data.train.img_prefix": tmp_path / "no_images"})
    code = main(["hf_hrnet_18_coco_256x192", "--work-dir", str(tmp_path / "w"), "--cfg-options",
                 *cfg_options])  # fmt: skip
    assert code == 1 and str(tmp_path / "no_images") in capsys.readouterr().err

    images = tmp_path / "three_images"
    images.mkdir()
    for name in ("000000000785.jpg", "000000040083.jpg", "000000196141.jpg"):
        (images / name).write_bytes((COCO_IMAGES / name).read_bytes())
    cfg_options = small_options(COCO_JSON, **{"data.train.img_prefix": images})
    code = main(["hf_hrnet_18_coco_256x192", "--work-dir", str(tmp_path / "w"), "--cfg-options",
                 *cfg_options])  # fmt: skip
    assert code == 1 and str(images / "000000197388.jpg") in capsys.readouterr().err
    assert not (tmp_path / "w" / LATEST).exists()


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


# ------------------------------------------------------------------------------------------------
# Trainer


def _state_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], dict):
            _state_equal(a[key], b[key])
        elif torch.is_tensor(a[key]):
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
        else:
            assert a[key] == b[key], key


@pytest.mark.slow
def test_resume_continues_exactly(tmp_path: Path, four_people: Path) -> None:
    # 4 people, batch 2: 2 steps per epoch, 2 epochs; the interrupted run stops mid-epoch 2
    cfg = load_config("hf_hrnet_18_coco_256x192", small_options(four_people, total_epochs=2))
    straight = Trainer(cfg, tmp_path / "straight", progress=False)
    straight.train()

    first = Trainer(cfg, tmp_path / "resumed", max_steps=2, progress=False)
    first.train()
    saved = torch.load(tmp_path / "resumed" / LATEST, map_location="cpu", weights_only=True)
    assert saved["meta"]["iter"] == 2 and saved["meta"]["epoch"] == 1
    _state_equal(saved["optimizer"], first.optimizer.state_dict())
    stopped = Trainer(cfg, tmp_path / "resumed", resume=True, max_steps=1, progress=False)
    _state_equal(stopped.optimizer.state_dict(), saved["optimizer"])
    stopped.train()  # stops inside epoch 2
    assert torch.load(tmp_path / "resumed" / LATEST, weights_only=True)["meta"]["epoch_step"] == 1
    resumed = Trainer(cfg, tmp_path / "resumed", resume=True, progress=False)
    resumed.train()

    assert resumed.position.global_step == straight.position.global_step == 4
    _state_equal(resumed.model.state_dict(), straight.model.state_dict())
    _state_equal(resumed.optimizer.state_dict(), straight.optimizer.state_dict())
    with pytest.raises(TrainingError, match="--resume"):
        Trainer(cfg, tmp_path / "straight", progress=False)
    other = load_config("hf_hrnet_18_coco_256x192", small_options(four_people, total_epochs=3,
                        **{"model.backbone.extra.stages_spec.num_modules": "[1,2,1]"}))  # fmt: skip
    with pytest.raises(TrainingError, match="does not fit this config: missing keys"):
        Trainer(other, tmp_path / "straight", resume=True, progress=False)


@pytest.mark.slow
def test_a_persistent_loader_worker_gives_each_epoch_the_same_batches(
    tmp_path: Path, four_people: Path
) -> None:
    """One DataLoader with a persistent worker serves all epochs: same weights as in-process."""
    trained = []
    for workers in (0, 1):
        options = small_options(four_people, total_epochs=2, **{"data.workers_per_gpu": workers})
        cfg = load_config("hf_hrnet_18_coco_256x192", options)
        trainer = Trainer(cfg, tmp_path / f"w{workers}", progress=False)
        trainer.train()
        assert trainer.position.global_step == 4
        trained.append(trainer.model.state_dict())
    _state_equal(trained[0], trained[1])


def test_nan_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(
    tmp_path: Path, four_people: Path
) -> None:
    # warm-up from 1e-35 x 1e30: step 1 is sane, step 2 blows the weights up, step 3's loss is inf
    options = small_options(
        four_people,
        **{"total_epochs": 5, "data.samples_per_gpu": 4, "optimizer.lr": "1.0e+30",
           "lr_config.warmup_ratio": "1.0e-35", "auto_scale_lr": "false"},
    )  # fmt: skip
    trainer = Trainer(load_config("hf_hrnet_18_coco_256x192", options), tmp_path, progress=False)
    with pytest.raises(TrainingError, match=r"global step \d") as error:
        trainer.train()
    assert "last good checkpoint" in str(error.value)
    kept = torch.load(tmp_path / LATEST, weights_only=True)
    assert kept["meta"]["iter"] == trainer.position.global_step  # the failing step was not saved
    assert all(
        torch.isfinite(v).all() for v in kept["state_dict"].values() if v.is_floating_point()
    )


@pytest.mark.slow
def test_overfits_four_people_to_pck_005_above_09(tmp_path: Path, four_people: Path) -> None:
    steps = 120
    options = small_options(
        four_people,
        **{"data.samples_per_gpu": 4, "optimizer.lr": "5.0e-3", "auto_scale_lr": "false",
           "lr_config.warmup_iters": 10, "total_epochs": 1, "amp": "auto",
           "model.test_cfg.flip_test": "false", "log_config.interval": 20},
    )  # fmt: skip
    cfg = load_config("hf_hrnet_18_coco_256x192", options)
    cfg["train_pipeline"] = NO_AUGMENTATION
    cfg["data"]["train"] = [dict(cfg["data"]["train"])]  # one epoch of `steps` repeated draws
    cfg["data"]["train_samples_per_epoch"] = 4 * steps
    trainer = Trainer(cfg, tmp_path, progress=False)
    trainer.train()
    assert trainer.position.global_step == steps

    dataset = build_dataset(cfg, "val")
    predictions = predict_with_model(trainer.model, dataset, cfg, torch.device("cpu"))
    records = [dataset.records[i] for i in predictions["index"]]
    gt = np.stack([r["joints_3d"] for r in records])
    mask = np.stack([r["joints_3d_visible"][:, 0] > 0 for r in records])
    boxes = np.stack([r["bbox"] for r in records])
    assert pck_bbox(predictions["keypoints"], gt, mask, boxes, 0.05) > 0.9

    # the same model exported and scored through the app's PoseEstimator (engine runtime)
    from hfpose.training.export.export_cli import export_onnx
    from hfpose.training.test_cli import main as test_main

    export_onnx(cfg, trainer.model.float().eval(), tmp_path / "model.onnx")
    scores = {}
    for flag, path in (("--checkpoint", tmp_path / LATEST), ("--model", tmp_path / "model.onnx")):
        out = tmp_path / f"metrics{flag}.json"
        code = test_main(["hf_hrnet_18_coco_256x192", flag, str(path), "--ann", str(four_people),
                          "--img-dir", str(COCO_IMAGES), "--use-gt-bbox", "--metric", "pck",
                          "--out-json", str(out), "--work-dir", str(tmp_path), "--cfg-options",
                          *options])  # fmt: skip
        assert code == 0
        scores[flag] = json.loads(out.read_text())
    # the checkpoint ran in torch; the ONNX file in the engine, on hfpose-test's default backend
    assert scores["--checkpoint"]["runtime"].startswith("torch ")
    assert scores["--model"]["runtime"].startswith("cpu · CPUExecutionProvider")
    assert scores["--model"]["metrics"]["PCK"] == scores["--checkpoint"]["metrics"]["PCK"] > 90


@pytest.mark.slow
def test_ddp_two_cpu_processes_match_one_process_accumulating(
    tmp_path: Path, four_people: Path
) -> None:
    """2 gloo processes x batch 1 == 1 process x 2 accumulated micro-batches of 1 (same shards,
    same BatchNorm groups): the same losses step by step and the same weights."""
    common = small_options(four_people, total_epochs=1, **{"data.samples_per_gpu": 1})
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    ddp = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
           "--standalone", "-m", "hfpose.training.train_cli", "hf_hrnet_18_coco_256x192",
           "--work-dir", str(tmp_path / "ddp"), "--no-progress", "--cfg-options", *common]  # fmt: skip
    single = [sys.executable, "-m", "hfpose.training.train_cli", "hf_hrnet_18_coco_256x192",
              "--work-dir", str(tmp_path / "single"), "--no-progress", "--cfg-options", *common,
              "optimizer_config.cumulative_iters=2"]  # fmt: skip
    for command in (ddp, single):
        done = subprocess.run(
            command, cwd=REPO, env=env, capture_output=True, text=True, timeout=240
        )
        assert done.returncode == 0, done.stderr[-3000:]
    logs = {}
    for name in ("ddp", "single"):
        rows = (tmp_path / name / "log.csv").read_text().splitlines()[1:]
        logs[name] = [float(row.split(",")[3]) for row in rows]
    assert len(logs["ddp"]) == 2
    np.testing.assert_allclose(logs["ddp"], logs["single"], rtol=1e-5)
    a = torch.load(tmp_path / "ddp" / LATEST, weights_only=True)
    b = torch.load(tmp_path / "single" / LATEST, weights_only=True)
    assert a["meta"]["world_size"] == 2 and b["meta"]["world_size"] == 1
    # weights only: BatchNorm running statistics differ by design (DDP keeps rank 0's, the
    # accumulating process updates them once per micro-batch)
    weights = [k for k in a["state_dict"] if not k.endswith(("running_mean", "running_var",
                                                                "num_batches_tracked"))]  # fmt: skip
    assert len(weights) > 100
    for key in weights:
        torch.testing.assert_close(a["state_dict"][key], b["state_dict"][key], rtol=1e-4, atol=1e-6)


def test_checkpoint_loads_with_the_models_loader(tmp_path: Path, four_people: Path) -> None:
    """Also: a loader worker forked after the main process warped an image with OpenCV (its
    thread pool then exists) must not hang on its first warp."""
    import threading

    cv2.warpAffine(np.zeros((1500, 1500, 3), np.uint8), np.eye(2, 3), (1200, 1200))
    options = small_options(four_people, total_epochs=1, **{"data.workers_per_gpu": 1})
    cfg = load_config("hf_hrnet_18_coco_256x192", options)
    run = threading.Thread(target=Trainer(cfg, tmp_path, max_steps=1, progress=False).train)
    run.start()
    run.join(timeout=120)
    assert not run.is_alive(), "the training step with one loader worker hung"
    # batch 2 on one process against the paper's 256: the lr is scaled and the log says so
    assert (
        "learning rate scaled linearly 0.002 -> 1.5625e-05" in (tmp_path / "train.log").read_text()
    )
    model = build_model(cfg)
    checkpoint = load_checkpoint(model, tmp_path / LATEST, input_size_wh=(64, 128))
    assert all(k.startswith(("backbone.", "keypoint_head.")) for k in checkpoint["state_dict"])
    assert checkpoint["meta"]["config_name"] == "hf_hrnet_18_coco_256x192"
    # The layout every earlier trainer wrote, which --resume of a running training reads back.
    checkpoint = torch.load(tmp_path / LATEST, map_location="cpu", weights_only=True)
    assert set(checkpoint) == {"meta", "state_dict", "optimizer", "scaler", "rng"}
    assert set(checkpoint["meta"]) == {
        "config_name", "config", "epoch", "iter", "epoch_step", "image_size", "heatmap_size",
        "dataset_info", "world_size", "global_batch", "lr_scale", "best", "torch_version", "time",
    }  # fmt: skip
    assert set(checkpoint["rng"]) == {"python", "numpy", "torch"}
    assert (checkpoint["meta"]["iter"], checkpoint["meta"]["epoch_step"]) == (1, 1)


def test_test_cli_scores_a_checkpoint_on_a_coco_format_set(tmp_path: Path, four_people: Path):
    from hfpose.training.test_cli import main

    options = small_options(four_people, total_epochs=1)
    Trainer(load_config("hf_hrnet_18_coco_256x192", options), tmp_path, max_steps=1,
            progress=False).train()  # fmt: skip
    out = tmp_path / "metrics.json"
    code = main(["hf_hrnet_18_coco_256x192", "--checkpoint", str(tmp_path / LATEST),
                 "--ann", str(four_people), "--img-dir", str(COCO_IMAGES), "--use-gt-bbox",
                 "--metric", "pck", "--out-json", str(out), "--work-dir", str(tmp_path),
                 "--cfg-options", *options])  # fmt: skip
    assert code == 0
    report = json.loads(out.read_text())
    assert report["samples"] == 4 and report["flip_test"] is True

    # The CLI's score is the library's on the same checkpoint and people: same weights loaded,
    # same flip test and decoding, same metric (a PCK merely inside 0..100 would prove nothing).
    cfg = load_config("hf_hrnet_18_coco_256x192", [*options, "data_cfg.use_gt_bbox=true"])
    model = build_model(cfg)
    load_checkpoint(model, tmp_path / LATEST, input_size_wh=(64, 128))
    entry = {"type": "TopDownCocoDataset", "ann_file": str(four_people),
             "img_prefix": str(COCO_IMAGES)}  # fmt: skip
    dataset = build_dataset(cfg, "test", entry=entry)
    predictions = predict_with_model(model, dataset, cfg, torch.device("cpu"))
    expected = evaluate_dataset(
        "pck", predictions, dataset, dataset_layout(cfg), cfg["data_cfg"], tmp_path / "in_process"
    )
    assert report["metric"] == "pck" and report["metrics"] == pytest.approx(expected, abs=1e-9)


# ------------------------------------------------------------------------------------------------
# Datasets and samplers


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
    from hfpose.training.samplers import StepBatchSampler

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
