"""Datasets built from a config's ``data`` section: the one place that knows every dataset type.

``data.train`` / ``data.val`` / ``data.test`` entries name a type (COCO json, MPII json, crop
cache), their files and filters; each is built, checked (a bad path or an empty set fails here,
before anything is trained) and given the config's pipeline and keypoint layout.
"""

from __future__ import annotations

from typing import Any

from hfpose.models.config import ConfigError, model_heatmap_size, model_input_size
from hfpose.models.metainfo import DatasetInfo, get_dataset_info
from hfpose.training.dataset.crop_dataset import CropCacheDataset
from hfpose.training.dataset.records import (
    DatasetError,
    MixedDataset,
    TopDownDataset,
    load_coco_records,
    load_mpii_records,
    read_image_list,
)
from hfpose.training.dataset.transforms import build_pipeline

# Joints below the waist: the half-body transform's "lower body" (everything else is upper).
_LOWER_BODY_WORDS = ("hip", "knee", "ankle", "pelvis")


def layout_ann_info(cfg: dict[str, Any]) -> dict[str, Any]:
    """mmpose's ``ann_info``: what the pipeline needs to know about the layout and sizes."""
    layout = get_dataset_info(cfg.get("dataset_info", "coco"))
    upper = [
        i
        for i, name in enumerate(layout.keypoint_names)
        if not any(word in name for word in _LOWER_BODY_WORDS)
    ]
    num_joints = int(cfg["data_cfg"]["num_joints"])
    if num_joints != layout.num_keypoints:
        raise ConfigError(
            f"data_cfg.num_joints is {num_joints} but the {layout.name} layout has "
            f"{layout.num_keypoints} keypoints"
        )
    return {
        "image_size": model_input_size(cfg),
        "heatmap_size": model_heatmap_size(cfg),
        "num_joints": num_joints,
        "flip_pairs": [list(p) for p in layout.flip_pairs],
        "upper_body_ids": upper,
        "use_different_joint_weights": False,
    }


_ENTRY_KEYS = {
    "type",
    "ann_file",
    "img_prefix",
    "image_list",
    "exclude_image_list",
    "sampling_ratio",
    "cache_dir",
    "dataset_info",
    "data_cfg",
    "pipeline",
}
DATASET_TYPES = ("TopDownCocoDataset", "TopDownMpiiDataset", "CropCacheDataset")


def build_dataset(
    cfg: dict[str, Any], split: str, seed: int = 0, entry: dict | list | None = None
) -> TopDownDataset | MixedDataset:
    """The ``data.train`` / ``data.val`` / ``data.test`` dataset of a config, checked.

    ``data.train`` may be a list of entries with ``sampling_ratio`` (mixed datasets); the epoch
    then has ``data.train_samples_per_epoch`` samples (default: the sum of their lengths).
    """
    if entry is None:
        if split not in cfg.get("data", {}):
            raise ConfigError(f"config has no data.{split}")
        entry = cfg["data"][split]
    if isinstance(entry, list):
        if not entry:
            raise ConfigError(f"data.{split} is an empty list")
        if split != "train":
            raise ConfigError(f"data.{split}: mixing datasets is for training only")
        parts = [
            _build_single(cfg, split, e, seed, f"data.{split}[{i}]") for i, e in enumerate(entry)
        ]
        ratios = [float(e.get("sampling_ratio", len(p))) for e, p in zip(entry, parts)]
        length = cfg["data"].get("train_samples_per_epoch") or sum(len(p) for p in parts)
        return MixedDataset(parts, ratios, int(length))
    return _build_single(cfg, split, entry, seed, f"data.{split}")


def _build_single(
    cfg: dict[str, Any], split: str, entry: dict[str, Any], seed: int, where: str
) -> TopDownDataset:
    if not isinstance(entry, dict):
        raise ConfigError(f"{where} must be a mapping")
    unknown = sorted(set(entry) - _ENTRY_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}")
    kind = entry.get("type", "TopDownCocoDataset")
    if kind not in DATASET_TYPES:
        raise ConfigError(f"{where}.type {kind!r} is unknown; known: {', '.join(DATASET_TYPES)}")
    ann_info = layout_ann_info(cfg)
    test_mode = split != "train"
    pipeline_key = "train_pipeline" if not test_mode else "test_pipeline"
    steps = entry.get("pipeline") or cfg.get(pipeline_key) or cfg.get("val_pipeline")
    pipeline = build_pipeline(steps, pipeline_key)
    include = read_image_list(entry["image_list"]) if entry.get("image_list") else None
    exclude = (
        read_image_list(entry["exclude_image_list"]) if entry.get("exclude_image_list") else None
    )
    data_cfg = {**cfg["data_cfg"], **entry.get("data_cfg", {})}
    source = {"where": where, **entry}
    if kind == "CropCacheDataset":
        dataset: TopDownDataset = CropCacheDataset(
            entry, pipeline, ann_info, seed=seed, include=include, exclude=exclude
        )
    else:
        for key in ("ann_file", "img_prefix"):
            if not entry.get(key):
                raise ConfigError(f"{where} needs {key}")
        if kind == "TopDownMpiiDataset":
            records = load_mpii_records(
                entry["ann_file"], entry["img_prefix"], ann_info["num_joints"], test_mode,
                include, exclude,
            )  # fmt: skip
            dataset = TopDownDataset(records, pipeline, ann_info, kind, seed, source=source)
        else:
            use_gt = (not test_mode) or bool(data_cfg.get("use_gt_bbox", True))
            records, coco = load_coco_records(
                entry["ann_file"],
                entry["img_prefix"],
                ann_info["num_joints"],
                use_gt_bbox=use_gt,
                bbox_file=data_cfg.get("bbox_file"),
                det_bbox_thr=float(data_cfg.get("det_bbox_thr", 0.0) or 0.0),
                include=include,
                exclude=exclude,
            )
            source["use_gt_bbox"] = use_gt
            dataset = TopDownDataset(records, pipeline, ann_info, kind, seed, coco, source)
    if len(dataset) == 0:
        raise DatasetError(f"{where} ({entry.get('ann_file') or entry.get('cache_dir')}) is empty")
    if not test_mode and dataset.labelled_joints() == 0:
        raise DatasetError(
            f"{where} ({entry.get('ann_file') or entry.get('cache_dir')}) has no labelled joints"
        )
    return dataset


def dataset_layout(cfg: dict[str, Any]) -> DatasetInfo:
    """The config's keypoint layout (``dataset_info``: names, flip pairs, sigmas)."""
    return get_dataset_info(cfg.get("dataset_info", "coco"))
