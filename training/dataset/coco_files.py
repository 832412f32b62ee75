"""COCO keypoint json files as the labelling tools write them and the crop cache reads them:
plain or gzip-compressed, and the datasets' head/torso points kept beside COCO's 17."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import numpy as np

# Extra head/torso points the datasets keep outside the COCO slots (all x, y, v), and their names.
EXTRA_POINT_NAMES = {
    "lsp_neck_headtop": ("neck", "head_top"),
    "mpii_pelvis_thorax_upperneck_headtop": ("pelvis", "thorax", "upper_neck", "head_top"),
}


def extra_point_field(annotation: dict) -> str | None:
    """The annotation's field of extra points (a key of ``EXTRA_POINT_NAMES``), if it has one."""
    return next((name for name in EXTRA_POINT_NAMES if name in annotation), None)


def extra_points_of(annotation: dict) -> np.ndarray:
    """The annotation's head/torso points outside COCO's slots (M,3), head top last; or (0,3)."""
    name = extra_point_field(annotation)
    if name is None:
        return np.zeros((0, 3))
    return np.asarray(annotation[name], dtype=np.float64).reshape(-1, 3)


def relabelled(coco: dict, header: dict, annotations: list[dict], limit: int | None) -> dict:
    """``coco`` with the labeller's ``annotations`` and its ``header`` as ``info.pseudo_labels``;
    a ``limit``ed run keeps only the images it labelled, so the file stays self-consistent."""
    result = dict(coco)
    result["info"] = dict(coco.get("info", {}), pseudo_labels=header)
    result["annotations"] = annotations
    if limit:
        kept = {a["image_id"] for a in annotations}
        result["images"] = [image for image in coco["images"] if image["id"] in kept]
    return result


def write_json(data: dict, path: Path) -> None:
    """Write ``data`` as json, gzip-compressed when the name ends in .gz (reproducible bytes).

    Through a temporary file renamed into place: an interrupted write (Ctrl+C after hours of
    labelling) leaves no truncated file under the output's name."""
    text = json.dumps(data, separators=(",", ":")).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    try:
        if path.suffix == ".gz":
            with open(partial, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
                gz.write(text)
        else:
            partial.write_bytes(text)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def read_json(path: str | Path) -> dict:
    """Read a json file, plain or gzip-compressed (.gz)."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as file:
        return json.load(file)
