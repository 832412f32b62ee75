"""Top-down keypoint datasets (COCO, MPII, any COCO-format json, crop caches) and samplers.

A dataset is a list of person records (mmpose 0.x keys, see ``hfpose.training.transforms``) plus the
config's pipeline. Records are read once, checked (annotation file, image folder and every image
exist; at least one labelled joint) and then only indexed, so a bad path fails before training.

Sampling is deterministic: a sample's augmentation is drawn from a generator seeded by
(seed, epoch, index), and the train batch sampler splits every step into ``world * accumulate``
interleaved shards with torch's ``DistributedSampler``. Two processes of one step each then see
exactly the shards that one process sees as its two accumulation micro-batches, which is what
makes a DDP run reproduce a single-process run and ``--resume`` continue exactly.
"""

from __future__ import annotations

import gzip
import json
import os
from collections import defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler, Sampler

from hfpose.models.config import ConfigError, model_heatmap_size, model_input_size
from hfpose.models.metainfo import DatasetInfo, get_dataset_info
from hfpose.training.label_weights import gate_weights, label_weights
from hfpose.training.transforms import Compose, build_pipeline

# Joints below the waist: the half-body transform's "lower body" (everything else is upper).
_LOWER_BODY_WORDS = ("hip", "knee", "ankle", "pelvis")


class DatasetError(ValueError):
    """Data that cannot be trained or evaluated on; the message names the file or folder."""


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


def read_image_list(path: str | Path) -> set[str]:
    """File names, one per line (blank lines and ``#`` comments ignored)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"image list not found: {path}")
    lines = path.read_text(encoding="utf-8").splitlines()
    return {line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")}


def _read_json(path: Path, what: str) -> Any:
    """A json file, gzip-compressed when it ends in .gz (the pseudo-labelled sets are)."""
    if not path.is_file():
        raise DatasetError(f"{what} not found: {path}")
    try:
        raw = path.read_bytes()
        if path.suffix == ".gz":
            raw = gzip.decompress(raw)
        return json.loads(raw.decode("utf-8"))
    except (OSError, EOFError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{what} {path} is not readable JSON: {exc}") from None


def _check_images(img_prefix: Path, names: Sequence[str], ann_file: Path) -> None:
    """Every referenced image must exist: one directory listing, not one stat per image."""
    if not img_prefix.is_dir():
        raise DatasetError(f"image folder not found: {img_prefix} (named by {ann_file})")
    present = set(os.listdir(img_prefix))
    missing = [
        n
        for n in dict.fromkeys(names)
        if n not in present and not (("/" in n or os.sep in n) and (img_prefix / n).is_file())
    ]
    if missing:
        raise DatasetError(
            f"{len(missing)} image(s) listed in {ann_file} are missing, e.g. {img_prefix / missing[0]}"
        )


def _keep_image(name: str, include: set[str] | None, exclude: set[str] | None) -> bool:
    base = os.path.basename(name)
    if include is not None and name not in include and base not in include:
        return False
    return not (exclude is not None and (name in exclude or base in exclude))


def load_coco_records(
    ann_file: str | Path,
    img_prefix: str | Path,
    num_joints: int,
    use_gt_bbox: bool = True,
    bbox_file: str | Path | None = None,
    det_bbox_thr: float = 0.0,
    include: set[str] | None = None,
    exclude: set[str] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Person records of a COCO-format keypoint json (GT boxes) or of a detections file.

    GT boxes are sanitised and people without any labelled joint are skipped, as mmpose does.
    Joints with v=0 (absent, e.g. the face joints of LSPET) get a zero mask, so the loss and the
    metrics ignore them. Returns the records and the json (for evaluation).
    """
    ann_file, img_prefix = Path(ann_file), Path(img_prefix)
    coco = _read_json(ann_file, "annotation file")
    if not isinstance(coco, dict) or "images" not in coco or "annotations" not in coco:
        raise DatasetError(f"{ann_file} is not a COCO keypoint file (no images/annotations)")
    images = {
        img["id"]: img for img in coco["images"] if _keep_image(img["file_name"], include, exclude)
    }
    records: list[dict[str, Any]] = []
    if use_gt_bbox:
        by_image: dict[Any, list[dict]] = defaultdict(list)
        for ann in coco["annotations"]:
            if ann.get("image_id") in images and not ann.get("iscrowd", 0):
                by_image[ann["image_id"]].append(ann)
        for image_id, image in images.items():
            width, height = image.get("width"), image.get("height")
            for ann in by_image.get(image_id, ()):
                record = _coco_gt_record(ann, width, height, num_joints, ann_file)
                if record is not None:
                    record["image_file"] = str(img_prefix / image["file_name"])
                    record["image_id"] = image_id
                    records.append(record)
    else:
        if bbox_file is None:
            raise DatasetError(
                "no person detections file (data_cfg.bbox_file) for evaluating on detected boxes; "
                "set it or use GT boxes (--use-gt-bbox)"
            )
        detections = _read_json(Path(bbox_file), "person detections file")
        if not isinstance(detections, list):
            raise DatasetError(f"{bbox_file} must hold a list of detections")
        for det in detections:
            if det.get("category_id", 1) != 1 or det["image_id"] not in images:
                continue
            if float(det["score"]) < det_bbox_thr:
                continue
            records.append(
                {
                    "image_file": str(img_prefix / images[det["image_id"]]["file_name"]),
                    "image_id": det["image_id"],
                    "bbox": np.asarray(det["bbox"][:4], dtype=np.float64),
                    "bbox_score": float(det["score"]),
                    "joints_3d": np.zeros((num_joints, 3), dtype=np.float32),
                    "joints_3d_visible": np.zeros((num_joints, 3), dtype=np.float32),
                }
            )
    for i, record in enumerate(records):
        record["bbox_id"] = i
    _check_images(img_prefix, [img["file_name"] for img in images.values()], ann_file)
    return records, coco


def _coco_gt_record(
    ann: dict[str, Any], width: float | None, height: float | None, num_joints: int, ann_file: Path
) -> dict[str, Any] | None:
    if "bbox" not in ann or "keypoints" not in ann:
        return None
    x, y, w, h = (float(v) for v in ann["bbox"][:4])
    x1, y1 = max(0.0, x), max(0.0, y)
    x2 = x1 + max(0.0, w - 1)
    y2 = y1 + max(0.0, h - 1)
    if width is not None and height is not None:
        x2, y2 = min(width - 1, x2), min(height - 1, y2)
    if ann.get("area", 1) <= 0 or x2 <= x1 or y2 <= y1:
        return None
    keypoints = np.asarray(ann["keypoints"], dtype=np.float64).reshape(-1, 3)
    if len(keypoints) != num_joints:
        raise DatasetError(
            f"{ann_file}: annotation {ann.get('id')} has {len(keypoints)} keypoints, the config "
            f"expects {num_joints}"
        )
    if keypoints.max() == 0 or ann.get("num_keypoints", 1) == 0:
        return None
    joints = np.zeros((num_joints, 3), dtype=np.float32)
    visible = np.zeros((num_joints, 3), dtype=np.float32)
    joints[:, :2] = keypoints[:, :2]
    # the label's loss weight: 1 human, the teacher's score (gated) for its points
    visible[:, :2] = gate_weights(label_weights(ann, num_joints))[:, None]
    record = {
        "bbox": np.array([x1, y1, x2 - x1, y2 - y1], dtype=np.float64),
        "bbox_score": 1.0,
        "joints_3d": joints,
        "joints_3d_visible": visible,
        "ann_id": ann.get("id"),
    }
    if "head_size" in ann:
        record["head_size"] = float(ann["head_size"])
    if "pseudo_keypoints" in ann:
        # machine-made labels (hfpose.training.pseudo_label): trained on, never scored
        record["pseudo"] = np.asarray(ann["pseudo_keypoints"], dtype=bool)
    return record


def load_mpii_records(
    ann_file: str | Path,
    img_prefix: str | Path,
    num_joints: int,
    test_mode: bool,
    include: set[str] | None = None,
    exclude: set[str] | None = None,
) -> list[dict[str, Any]]:
    """Records of mmpose's MPII json (HRNet format: centre, scale, 1-based MATLAB joints).

    The centre moves down by 15·scale px and the scale grows by 1.25, then everything shifts to
    0-based pixels, as mmpose does; test records carry no joints (``mpii_gt_val.mat`` has them).
    """
    ann_file, img_prefix = Path(ann_file), Path(img_prefix)
    entries = _read_json(ann_file, "annotation file")
    if not isinstance(entries, list):
        raise DatasetError(f"{ann_file} is not an MPII json (a list of people)")
    records = []
    for entry in entries:
        if not _keep_image(entry["image"], include, exclude):
            continue
        center = np.array(entry["center"], dtype=np.float64)
        scale = np.array([entry["scale"], entry["scale"]], dtype=np.float64)
        if center[0] != -1:
            center[1] += 15 * scale[1]
            scale *= 1.25
        center -= 1
        joints = np.zeros((num_joints, 3), dtype=np.float32)
        visible = np.zeros((num_joints, 3), dtype=np.float32)
        if not test_mode:
            source = np.asarray(entry["joints"], dtype=np.float64)
            if len(source) != num_joints:
                raise DatasetError(
                    f"{ann_file}: {entry['image']} has {len(source)} joints, expected {num_joints}"
                )
            joints[:, :2] = source[:, :2] - 1
            visible[:, :2] = np.asarray(entry["joints_vis"], dtype=np.float64)[:, None]
        records.append(
            {
                "image_file": str(img_prefix / entry["image"]),
                "image_id": entry["image"],
                "center": center,
                "scale": scale,
                "bbox_score": 1.0,
                "joints_3d": joints,
                "joints_3d_visible": visible,
                "bbox_id": len(records),
            }
        )
    _check_images(img_prefix, [entry["image"] for entry in entries], ann_file)
    return records


class TopDownDataset(Dataset):
    """Person records + pipeline; item ``(epoch, index)`` or ``index`` -> one sample dict."""

    def __init__(
        self,
        records: list[dict[str, Any]],
        pipeline: Compose,
        ann_info: dict[str, Any],
        name: str,
        seed: int = 0,
        coco: dict[str, Any] | None = None,
        source: dict[str, Any] | None = None,
    ) -> None:
        self.records = records
        self.pipeline = pipeline
        self.ann_info = ann_info
        self.name = name
        self.seed = int(seed)
        # the COCO json (GT for evaluation) and the settings it was loaded with
        self.coco = coco
        self.source = source or {}

    def __len__(self) -> int:
        return len(self.records)

    def labelled_joints(self) -> int:
        return int(sum((r["joints_3d_visible"][:, 0] > 0).sum() for r in self.records))

    def record(self, index: int) -> dict[str, Any]:
        return self.records[index]

    def load_image(self, record: dict[str, Any]) -> np.ndarray | None:
        """Subclasses with pre-decoded pixels return them; None lets the pipeline decode."""
        return None

    def __getitem__(self, key: int | tuple[int, ...]) -> dict[str, Any]:
        """``index``, ``(epoch, index)`` or ``(epoch, index, draw)``: the augmentation depends on
        all of them and on the seed only, never on which worker or process loads the sample."""
        epoch, index, draw = (tuple(key) + (0,))[:3] if isinstance(key, tuple) else (0, key, 0)
        record = self.records[index]
        rng = np.random.default_rng([self.seed, epoch, index, draw])
        results = {
            "image_file": record.get("image_file"),
            "img": self.load_image(record),
            "bbox": record.get("bbox"),
            "center": record.get("center"),
            "scale": record.get("scale"),
            "rotation": 0.0,
            "joints_3d": record["joints_3d"].copy(),
            "joints_3d_visible": record["joints_3d_visible"].copy(),
            "ann_info": self.ann_info,
        }
        results = self.pipeline(results, rng)
        sample = {
            "img": results["img"],
            "center": np.asarray(results["center"], dtype=np.float64),
            "scale": np.asarray(results["scale"], dtype=np.float64),
            "rotation": float(results.get("rotation", 0.0)),
            "bbox_score": float(record.get("bbox_score", 1.0)),
            "index": index,
        }
        if "target" in results:
            sample["target"] = results["target"]
            sample["target_weight"] = results["target_weight"]
        return sample


class MixedDataset(Dataset):
    """Several datasets of one keypoint layout, drawn with sampling ratios per epoch."""

    def __init__(self, datasets: list[TopDownDataset], ratios: list[float], epoch_length: int):
        if len(datasets) != len(ratios):
            raise ConfigError("every mixed dataset needs a sampling_ratio")
        if any(r < 0 for r in ratios) or sum(ratios) <= 0:
            raise ConfigError("sampling_ratio values must be >= 0 and not all 0")
        self.datasets = datasets
        self.ratios = [r / sum(ratios) for r in ratios]
        self.offsets = np.cumsum([0] + [len(d) for d in datasets])
        self.epoch_length = int(epoch_length)
        self.name = "+".join(d.name for d in datasets)
        self.ann_info = datasets[0].ann_info

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def labelled_joints(self) -> int:
        return sum(d.labelled_joints() for d in self.datasets)

    def _locate(self, index: int) -> tuple[TopDownDataset, int]:
        part = int(np.searchsorted(self.offsets, index, side="right") - 1)
        return self.datasets[part], index - int(self.offsets[part])

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        # Indices beyond the length are repeated draws of an oversampled dataset: same record,
        # different augmentation.
        dataset, local = self._locate(index % len(self))
        sample = dataset[(epoch, local, index // len(self))]
        sample["index"] = index % len(self)
        return sample


class RatioSampler(Sampler[int]):
    """Draws ``epoch_length`` indices with the datasets' ratios; shards like DistributedSampler.

    Within a dataset, indices follow a seeded permutation, repeated (with a fresh permutation)
    when the ratio asks for more samples than it has; repeats are offset by the total length so
    their augmentation differs.
    """

    def __init__(self, dataset: MixedDataset, num_replicas: int, rank: int, seed: int) -> None:
        self.dataset = dataset
        self.num_replicas = num_replicas
        self.rank = rank
        self.seed = seed
        self.epoch = 0
        self.num_samples = -(-dataset.epoch_length // num_replicas)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _global_order(self) -> list[int]:
        g = torch.Generator()
        g.manual_seed(self.seed + self.epoch)
        total = len(self.dataset)
        counts = torch.multinomial(
            torch.tensor(self.dataset.ratios), self.dataset.epoch_length, True, generator=g
        ).bincount(minlength=len(self.dataset.datasets))
        chosen: list[int] = []
        for part, count in enumerate(counts.tolist()):
            size = len(self.dataset.datasets[part])
            offset = int(self.dataset.offsets[part])
            for repeat in range(-(-count // size) if size else 0):
                take = min(size, count - repeat * size)
                perm = torch.randperm(size, generator=g)[:take]
                chosen.extend((perm + offset + repeat * total).tolist())
        order = torch.randperm(len(chosen), generator=g).tolist()
        indices = [chosen[i] for i in order]
        padded = self.num_samples * self.num_replicas
        indices += indices[: padded - len(indices)]
        return indices

    def __iter__(self) -> Iterator[int]:
        return iter(self._global_order()[self.rank :: self.num_replicas])

    def __len__(self) -> int:
        return self.num_samples


class StepBatchSampler(Sampler[list[tuple[int, int]]]):
    """Batches of ``(epoch, index)`` for one process: per optimiser step, its ``accumulate``
    micro-batches, each from its own shard of ``world * accumulate``.

    ``skip_steps`` drops the steps an interrupted epoch already did (resume), without loading them.
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        world_size: int = 1,
        rank: int = 0,
        accumulate: int = 1,
        seed: int = 0,
        shuffle: bool = True,
    ) -> None:
        shards = world_size * accumulate
        self.samplers: list[Any] = []
        for micro in range(accumulate):
            shard = rank * accumulate + micro
            if isinstance(dataset, MixedDataset):
                self.samplers.append(RatioSampler(dataset, shards, shard, seed))
            else:
                self.samplers.append(
                    DistributedSampler(
                        dataset, num_replicas=shards, rank=shard, shuffle=shuffle, seed=seed
                    )
                )
        self.batch_size = batch_size
        self.accumulate = accumulate
        self.epoch = 0
        self.skip_steps = 0

    def set_epoch(self, epoch: int, skip_steps: int = 0) -> None:
        self.epoch = epoch
        self.skip_steps = skip_steps
        for sampler in self.samplers:
            sampler.set_epoch(epoch)

    def steps_per_epoch(self) -> int:
        return -(-len(self.samplers[0]) // self.batch_size)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        shards = [list(sampler) for sampler in self.samplers]
        for step in range(self.skip_steps, self.steps_per_epoch()):
            lo, hi = step * self.batch_size, (step + 1) * self.batch_size
            for shard in shards:
                yield [(self.epoch, index) for index in shard[lo:hi]]

    def __len__(self) -> int:
        return (self.steps_per_epoch() - self.skip_steps) * self.accumulate


# ------------------------------------------------------------------------------------------------
# Building datasets from a config

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
        from hfpose.training.crop_dataset import CropCacheDataset

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
    return get_dataset_info(cfg.get("dataset_info", "coco"))
