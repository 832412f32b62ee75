"""The device data path (``data_preprocessor: DeviceBatchAugment``) against the CPU pipeline.

Run on the CPU (no GPU here or in CI): the device path is the same torch code on either. Given
the parameters the device drew, the CPU transforms cut the same crops and make the same targets.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from hfpose.models.config import ConfigError, load_config
from hfpose.training.dataset.builder import build_dataset
from hfpose.training.dataset.crop_cache import build_cache
from hfpose.training.dataset.device_batches import DeviceBatches, DeviceCrops
from hfpose.training.dataset.samplers import StepBatchSampler
from hfpose.training.dataset.transforms import (
    NormalizeTensor,
    TopDownAffine,
    TopDownGenerateTarget,
    TopDownHalfBodyTransform,
    TopDownRandomFlip,
    ToTensor,
)

CONFIG = "hfpose_hf_hrnet_18_coco_256x192_lspet_mpii"


@pytest.fixture(scope="module")
def fixture_cache(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    coco = json.loads((data_dir / "coco" / "test_coco.json").read_text())
    out = tmp_path_factory.mktemp("device_batches") / "cache"
    build_cache(coco, data_dir / "coco", out, "coco", "all", None)
    return out


def device_config(cache_dir: Path, *options: str) -> dict:
    entry = {"type": "CropCacheDataset", "cache_dir": str(cache_dir)}
    return load_config(
        CONFIG,
        [f"data.train={json.dumps(entry)}", "data_preprocessor.type=DeviceBatchAugment", *options],
    )


def _cpu_reference(dataset, row: int, drawn, k: int) -> dict:
    """The CPU pipeline's crop and target for sample ``row`` with the device's draws ``k``."""
    record = dataset.records[row]
    results = {
        "img": dataset.load_image(record),
        "center": record["center"].copy(),
        "scale": record["scale"].copy(),
        "joints_3d": record["joints_3d"].copy(),
        "joints_3d_visible": record["joints_3d_visible"].copy(),
        "ann_info": dataset.ann_info,
    }
    rng = np.random.default_rng(0)
    if bool(drawn.flipped[k]):
        results = TopDownRandomFlip(flip_prob=1.0)(results, rng)
    results["center"] = drawn.center[k].double().numpy()
    results["scale"] = drawn.scale[k].double().numpy()
    results["rotation"] = float(drawn.rotation[k])
    flipped_joints = results["joints_3d"][:, :2].copy()
    for step in (
        TopDownAffine(),
        ToTensor(),
        NormalizeTensor([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
        TopDownGenerateTarget(sigma=2),
    ):
        results = step(results, rng)
    results["flipped_joints"] = flipped_joints
    return results


def test_device_crops_and_targets_equal_the_cpu_pipeline_given_the_same_draws(
    fixture_cache: Path,
) -> None:
    cfg = device_config(fixture_cache)
    dataset = build_dataset(cfg, "train")
    crops = DeviceCrops(dataset, cfg, torch.device("cpu"))
    assert crops.images.dtype == torch.uint8 and len(crops) == len(dataset)
    rows = torch.arange(len(dataset)).repeat(4)  # several draws per person
    generator = torch.Generator().manual_seed(3)
    drawn = crops.draw(rows, generator)
    assert drawn.flipped.any() and (~drawn.flipped).any() and (drawn.rotation != 0).any()
    images = crops.crops(rows, drawn)
    targets, weights = crops.targets(drawn)
    assert images.shape == (len(rows), 3, 256, 192)
    for k, row in enumerate(rows.tolist()):
        reference = _cpu_reference(dataset, row, drawn, k)
        labelled = reference["joints_3d_visible"][:, 0] > 0
        np.testing.assert_allclose(
            drawn.joints[k].numpy()[labelled], reference["flipped_joints"][labelled], atol=1e-3
        )
        np.testing.assert_allclose(weights[k].numpy(), reference["target_weight"], atol=1e-6)
        # the Gaussians land on the same heatmap pixels; values agree to float rounding
        np.testing.assert_allclose(targets[k].numpy(), reference["target"], atol=1e-5)
        # OpenCV interpolates with 1/32-pixel fixed-point weights: a few grey levels at edges
        difference = np.abs(images[k].numpy() - reference["img"])
        assert difference.mean() < 0.01, (k, difference.mean())
        assert np.quantile(difference, 0.999) < 0.1, (k, np.quantile(difference, 0.999))


class _FixedDraws:
    """An rng whose draws are given: the half-body step always applies, upper or lower."""

    def __init__(self, normal: float) -> None:
        self.normal = normal

    def random(self) -> float:
        return 0.0

    def standard_normal(self) -> float:
        return self.normal


@pytest.mark.parametrize("upper", [True, False])
def test_half_body_box_equals_the_cpu_transform(fixture_cache: Path, upper: bool) -> None:
    cfg = device_config(fixture_cache)
    dataset = build_dataset(cfg, "train")
    crops = DeviceCrops(dataset, cfg, torch.device("cpu"))
    rows = torch.arange(len(dataset))
    joints, weight = crops.joints[rows], crops.weight[rows]
    chance = torch.zeros(len(rows))
    choice = torch.full((len(rows),), 0.0 if upper else 1.0)
    center, scale = crops._half_body(
        joints, weight, crops.center[rows], crops.scale[rows], chance, choice
    )
    step = TopDownHalfBodyTransform(num_joints_half_body=8, prob_half_body=1.0)
    changed = 0
    for k, record in enumerate(dataset.records):
        results = {
            "center": record["center"].copy(),
            "scale": record["scale"].copy(),
            "joints_3d": record["joints_3d"].copy(),
            "joints_3d_visible": record["joints_3d_visible"].copy(),
            "ann_info": dataset.ann_info,
        }
        results = step(results, _FixedDraws(0.0 if upper else 1.0))
        changed += not np.allclose(results["center"], record["center"])
        np.testing.assert_allclose(center[k].numpy(), results["center"], rtol=1e-5, atol=1e-3)
        np.testing.assert_allclose(scale[k].numpy(), results["scale"], rtol=1e-5)
    assert changed > 0  # the fixture has people with more than 8 labelled joints


def test_batches_follow_the_sampler_and_repeat_exactly(fixture_cache: Path) -> None:
    cfg = device_config(fixture_cache, "data_preprocessor.colour.brightness=0.3")
    dataset = build_dataset(cfg, "train")
    crops = DeviceCrops(dataset, cfg, torch.device("cpu"))
    sampler = StepBatchSampler(dataset, 4, seed=1)
    batches = DeviceBatches(crops, sampler, len(dataset), seed=1)
    sampler.set_epoch(0)
    first = [b["img"].clone() for b in batches]
    sampler.set_epoch(0, skip_steps=1)
    resumed = [b["img"] for b in batches]
    assert len(first) == sampler.steps_per_epoch() == len(resumed) + 1
    assert torch.equal(first[1], resumed[0])  # a resumed epoch draws what the whole one drew
    batch = next(iter(batches))
    assert batch["target"].shape == (4, 17, 64, 48) and batch["target_weight"].shape == (4, 17, 1)
    assert batch["img"].is_contiguous(memory_format=torch.channels_last)


def test_only_crop_caches_and_known_keys_are_accepted(fixture_cache: Path, data_dir: Path) -> None:
    cfg = device_config(fixture_cache, "data_preprocessor.colour.hue=0.1")
    with pytest.raises(ConfigError, match="colour takes"):
        DeviceCrops(build_dataset(cfg, "train"), cfg, torch.device("cpu"))
    full = {
        "type": "TopDownCocoDataset",
        "ann_file": str(data_dir / "coco" / "test_coco.json"),
        "img_prefix": str(data_dir / "coco"),
    }
    cfg = load_config(
        CONFIG, [f"data.train={json.dumps(full)}", "data_preprocessor.type=DeviceBatchAugment"]
    )
    with pytest.raises(ConfigError, match="crop caches only"):
        DeviceCrops(build_dataset(cfg, "train"), cfg, torch.device("cpu"))
