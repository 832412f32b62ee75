"""CropCacheDataset: a cached person trains and scores like the same person on the full image."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hfpose.models.config import load_config
from hfpose.models.processing import bbox_xywh_to_cs
from hfpose.training.dataset.builder import build_dataset, dataset_layout
from hfpose.training.dataset.crop_cache import build_cache
from hfpose.training.dataset.records import DatasetError
from hfpose.training.scoring.evaluation import evaluate_dataset

CONFIG = "hfpose_hf_hrnet_18_coco_256x192_lspet_mpii"


@pytest.fixture(scope="module")
def fixture_cache(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The COCO fixture cut into a cache, with the first labelled joint marked as pseudo."""
    coco = json.loads((data_dir / "coco" / "test_coco.json").read_text())
    for annotation in coco["annotations"]:
        visible = np.asarray(annotation["keypoints"]).reshape(17, 3)[:, 2] > 0
        pseudo = np.zeros(17, int)
        if visible.any():
            pseudo[int(np.argmax(visible))] = 1
        annotation["pseudo_keypoints"] = pseudo.tolist()
    root = tmp_path_factory.mktemp("crop_dataset")
    ann_file = root / "coco_pseudo.json"
    ann_file.write_text(json.dumps(coco))
    build_cache(coco, data_dir / "coco", root / "cache", "coco", "all", None)
    return root / "cache", ann_file


def _config(entry: dict, data_dir: Path, ann_file: Path) -> dict:
    full = {
        "type": "TopDownCocoDataset",
        "ann_file": str(ann_file),
        "img_prefix": str(data_dir / "coco"),
    }
    return load_config(
        CONFIG,
        [
            f"data.val={json.dumps(entry)}",
            f"data.test={json.dumps(full)}",
            "data_cfg.use_gt_bbox=true",
        ],
    )


def test_cached_person_matches_full_image_sample(fixture_cache, data_dir: Path) -> None:
    cache_dir, ann_file = fixture_cache
    cfg = _config({"type": "CropCacheDataset", "cache_dir": str(cache_dir)}, data_dir, ann_file)
    cached = build_dataset(cfg, "val")
    full = build_dataset(cfg, "test")
    assert len(cached) == len(full) > 0
    by_ann = {r["ann_id"]: i for i, r in enumerate(full.records)}
    for i, record in enumerate(cached.records):
        j = by_ann[record["ann_id"]]
        assert np.array_equal(record["joints_3d_visible"], full.records[j]["joints_3d_visible"])
        assert np.array_equal(record["pseudo"], full.records[j]["pseudo"])
        a, b = cached[i]["img"], full[j]["img"]
        # The cache was resampled once (small people enlarged up to 3x, so blurred): measured
        # 0.07-0.25 of the crop's own contrast; a misplaced crop differs by more than its contrast.
        assert np.abs(a - b).mean() < 0.35 * np.abs(b - b.mean()).mean()


def test_scores_in_cache_pixels_equal_scores_in_image_pixels(fixture_cache, data_dir: Path) -> None:
    """PCK is a ratio of distances: the same relative errors score the same in cache pixels as
    in the original image's pixels (which differ by a zoom and a shift)."""
    cache_dir, ann_file = fixture_cache
    cfg = _config({"type": "CropCacheDataset", "cache_dir": str(cache_dir)}, data_dir, ann_file)
    layout = dataset_layout(cfg)
    scores = []
    for dataset in (build_dataset(cfg, "val"), build_dataset(cfg, "test")):
        order = np.argsort([r["ann_id"] for r in dataset.records])
        gt = np.stack([dataset.records[i]["joints_3d"][:, :2] for i in order])
        labelled = np.stack([dataset.records[i]["joints_3d_visible"][:, :1] > 0 for i in order])
        centroid = (gt * labelled).sum(axis=1, keepdims=True) / labelled.sum(axis=1, keepdims=True)
        # each joint moved away from the person's centroid by a random fraction: the same
        # relative error in any pixels that differ by a zoom and a shift
        stretch = 1 + np.random.default_rng(0).normal(size=gt.shape[:2] + (1,)) * 0.3
        guesses = centroid + (gt - centroid) * stretch
        predictions = {
            "index": order,
            "keypoints": np.concatenate([guesses, np.ones(gt.shape[:2] + (1,))], axis=2),
        }
        scores.append(evaluate_dataset("pck", predictions, dataset, layout, {})["PCK"])
    assert 0 < scores[0] < 100
    assert scores[0] == pytest.approx(scores[1], abs=1e-6)


def test_exclude_list_drops_people_and_an_emptied_set_is_refused(
    fixture_cache, data_dir: Path, tmp_path: Path
) -> None:
    cache_dir, ann_file = fixture_cache
    names = json.loads(ann_file.read_text())["images"]
    exclude = tmp_path / "exclude.txt"
    exclude.write_text(f"# comment\n{names[0]['file_name']}\n")
    entry = {"type": "CropCacheDataset", "cache_dir": str(cache_dir)}
    everyone = build_dataset(_config(entry, data_dir, ann_file), "val")
    some = build_dataset(
        _config({**entry, "exclude_image_list": str(exclude)}, data_dir, ann_file), "val"
    )
    dropped = sum(r["file_name"] == names[0]["file_name"] for r in everyone.records)
    assert dropped > 0 and len(some) == len(everyone) - dropped
    exclude.write_text("\n".join(image["file_name"] for image in names))
    with pytest.raises(DatasetError, match="empty"):
        build_dataset(
            _config({**entry, "exclude_image_list": str(exclude)}, data_dir, ann_file), "val"
        )


def test_missing_cache_names_its_folder(tmp_path: Path, data_dir: Path) -> None:
    cfg = _config(
        {"type": "CropCacheDataset", "cache_dir": str(tmp_path / "nope")}, data_dir, tmp_path
    )
    with pytest.raises(DatasetError, match="nope"):
        build_dataset(cfg, "val")


def test_another_input_aspect_cuts_the_box_afresh_instead_of_distorting(
    fixture_cache, data_dir: Path
) -> None:
    """Progressive resolution at 192x128 (2:3) reads caches cut for 3:4: the crop is the box at
    2:3 with the usual padding, as on the full image, not the 3:4 crop squeezed."""
    cache_dir, ann_file = fixture_cache
    entry = {"type": "CropCacheDataset", "cache_dir": str(cache_dir)}
    base = build_dataset(_config(entry, data_dir, ann_file), "val")
    narrow_cfg = _config(entry, data_dir, ann_file)
    narrow_cfg["data_cfg"]["image_size"] = [128, 192]
    narrow_cfg["data_cfg"]["heatmap_size"] = [32, 48]
    narrow = build_dataset(narrow_cfg, "val")
    assert len(narrow) == len(base) > 0
    for i, record in enumerate(narrow.records):
        sample = narrow[i]
        centers, scales = bbox_xywh_to_cs(record["bbox"], 128 / 192)
        assert np.allclose(sample["center"], centers[0])
        assert np.allclose(sample["scale"], scales[0])
        assert sample["scale"][0] / sample["scale"][1] == pytest.approx(128 / 192)
        assert np.asarray(sample["img"]).shape[-2:] == (192, 128)
    assert np.allclose(base[0]["scale"], base.records[0]["scale"])  # 3:4 keeps the cache's
