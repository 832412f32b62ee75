"""``CropCacheDataset``: a crop cache (``hfpose.training.dataset.crop_cache``) as a top-down training/val set.

Decoding and cropping full images would cost as much CPU as the model on the 2-core machines; a
cache holds every person cut once at a fixed scale with margin for the augmentations. Each record
here is the cached crop standing in for the full image: box, centre/scale and keypoints are in
the cache image's pixels, so the unchanged pipeline (``train_pipeline``/``val_pipeline``) warps it
exactly as it would warp the original, and ``LoadImageFromFile`` is skipped because the pixels come
with the sample. Scores are ratios of distances (PCKh, torso PCK), so they are the same in cache
pixels as in the original image's.

Config entry (``data.train`` item or ``data.val``)::

    {type: CropCacheDataset, cache_dir: /work/cache/lspet_train,
     exclude_image_list: training/data/splits/lr_mirrored.txt, sampling_ratio: 9033}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from hfpose.models.config import ConfigError
from hfpose.training.dataset.crop_cache import NETWORK_INPUT_WH, CropCache
from hfpose.training.dataset.label_weights import gate_weights
from hfpose.training.dataset.records import DatasetError, TopDownDataset
from hfpose.training.dataset.transforms import Compose

CACHE_ASPECT = NETWORK_INPUT_WH[0] / NETWORK_INPUT_WH[1]


class CropCacheDataset(TopDownDataset):
    """People of one cache folder, optionally filtered by the original images' file names."""

    def __init__(
        self,
        entry: dict[str, Any],
        pipeline: Compose,
        ann_info: dict[str, Any],
        seed: int = 0,
        include: set[str] | None = None,
        exclude: set[str] | None = None,
    ) -> None:
        if not entry.get("cache_dir"):
            raise ConfigError("a CropCacheDataset entry needs cache_dir (see hfpose-cache-crops)")
        try:
            self.cache = CropCache(entry["cache_dir"])
        except (FileNotFoundError, ValueError) as exc:
            raise DatasetError(str(exc)) from None
        names = list(self.cache.meta["keypoint_names"])
        if len(names) != ann_info["num_joints"]:
            raise DatasetError(
                f"crop cache {entry['cache_dir']} has {len(names)} keypoints, the config expects "
                f"{ann_info['num_joints']}"
            )
        width, height = ann_info["image_size"]
        # The cache stores centre/scale for 3:4 inputs; another aspect (progressive resolution
        # at 192x128) leaves them to TopDownGetBboxCenterScale, from the box, undistorted.
        keep_scale = np.isclose(width / height, CACHE_ASPECT)
        records = self._records(include, exclude, keep_scale)
        name = f"CropCache:{self.cache.meta.get('dataset')}_{self.cache.meta.get('split')}"
        super().__init__(records, pipeline, ann_info, name, seed, source={**entry})

    def _records(
        self, include: set[str] | None, exclude: set[str] | None, keep_scale: bool
    ) -> list[dict]:
        index = self.cache.index
        records = []
        for row, file_name in enumerate(index["file_name"]):
            file_name = str(file_name)
            if include is not None and file_name not in include:
                continue
            if exclude is not None and file_name in exclude:
                continue
            keypoints = index["keypoints"][row]
            labelled = keypoints[:, 2] > 0
            if not labelled.any():
                continue
            joints = np.zeros((len(keypoints), 3), dtype=np.float32)
            joints[:, :2] = keypoints[:, :2]
            weight = labelled.astype(np.float32)
            if "label_weight" in index:
                weight = gate_weights(index["label_weight"][row])
            visible = np.zeros((len(keypoints), 3), dtype=np.float32)
            # the label's loss weight (hfpose.training.dataset.label_weights)
            visible[:, :2] = weight[:, None]
            record = {
                "cache_row": row,
                "image_file": str(Path(self.cache.path) / f"images.npy[{row}]"),
                "file_name": file_name,
                "image_id": int(index["image_id"][row]),
                "ann_id": int(index["annotation_id"][row]),
                "bbox": index["bbox"][row].astype(np.float64),
                "center": index["center"][row].astype(np.float64) if keep_scale else None,
                "scale": index["scale"][row].astype(np.float64) if keep_scale else None,
                "bbox_score": 1.0,
                "joints_3d": joints,
                "joints_3d_visible": visible,
                # machine-made face labels: trained on, never scored (hfpose.training.scoring.evaluation)
                "pseudo": index["pseudo_mask"][row].astype(bool),
                "bbox_id": len(records),
            }
            head_size = float(index["head_size"][row])
            if np.isfinite(head_size):
                record["head_size"] = head_size
            records.append(record)
        return records

    def load_image(self, record: dict[str, Any]) -> np.ndarray:
        """The cached crop (RGB uint8), copied out of the memory map."""
        return np.array(self.cache.images[record["cache_row"]])
