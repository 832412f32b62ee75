"""Top-down keypoint datasets (COCO, MPII, any COCO-format json) and their mix.

A dataset is a list of person records (mmpose 0.x keys, see ``hfpose.training.dataset.transforms``) plus the
config's pipeline. Records are read once, checked (annotation file, image folder and every image
exist; at least one labelled joint) and then only indexed, so a bad path fails before training.

A sample's augmentation is drawn from a generator seeded by (seed, epoch, index), so any process
that draws the same index in the same epoch gets the same sample (see ``hfpose.training.dataset.samplers``).
Configs build these through ``hfpose.training.dataset.builder``; ``hfpose.training.dataset.crop_dataset`` adds crop
caches.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from hfpose.models.config import ConfigError
from hfpose.training.dataset.coco_files import read_json
from hfpose.training.dataset.label_weights import gate_weights, label_weights
from hfpose.training.dataset.transforms import Compose


class DatasetError(ValueError):
    """Data that cannot be trained or evaluated on; the message names the file or folder."""


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
        return read_json(path)
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
        # machine-made labels (hfpose.training.teacher.blazepose_label): trained on, never scored
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
