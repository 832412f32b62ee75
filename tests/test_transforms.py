"""training/dataset/transforms.py: the augmentations keep keypoints on what they mark, flips swap
sides, and each layout's flip pairs reach the pipeline (real fixture images and configs)."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from hfpose.models.config import load_config
from hfpose.models.metainfo import COCO, MPII
from hfpose.training.dataset.builder import layout_ann_info
from hfpose.training.dataset.transforms import build_pipeline

pytestmark = pytest.mark.usefixtures("torch_one_thread")


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
