"""Keypoint metadata of the datasets the HF-HRNet configs are trained on.

Kept free of torch so the runtime, the renderer and the exporter (which writes it into the ONNX
file) all read one definition.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class DatasetInfo:
    """Names, symmetry and skeleton of one keypoint layout."""

    name: str
    keypoint_names: tuple[str, ...]
    flip_pairs: tuple[tuple[int, int], ...]
    skeleton: tuple[tuple[int, int], ...]
    # "left", "right" or "center" per keypoint: drives the mmpose colour scheme.
    sides: tuple[str, ...]
    sigmas: tuple[float, ...] = field(default=())

    @property
    def num_keypoints(self) -> int:
        return len(self.keypoint_names)

    def flip_index(self) -> np.ndarray:
        """Permutation that maps each keypoint to its mirror image (itself for centre joints)."""
        index = np.arange(self.num_keypoints)
        for a, b in self.flip_pairs:
            index[a], index[b] = b, a
        return index

    def to_dict(self) -> dict:
        return {
            "dataset_name": self.name,
            "keypoint_names": list(self.keypoint_names),
            "flip_pairs": [list(p) for p in self.flip_pairs],
            "skeleton": [list(s) for s in self.skeleton],
            "sides": list(self.sides),
            "sigmas": list(self.sigmas),
        }

    @classmethod
    def from_dict(cls, data: dict) -> DatasetInfo:
        return cls(
            name=str(data["dataset_name"]),
            keypoint_names=tuple(data["keypoint_names"]),
            flip_pairs=tuple(tuple(p) for p in data["flip_pairs"]),
            skeleton=tuple(tuple(s) for s in data["skeleton"]),
            sides=tuple(data["sides"]),
            sigmas=tuple(float(s) for s in data.get("sigmas", ())),
        )


def _side(name: str) -> str:
    if name.startswith("left") or name.startswith("l_"):
        return "left"
    if name.startswith("right") or name.startswith("r_"):
        return "right"
    return "center"


_COCO_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip

COCO = DatasetInfo(
    name="coco",
    keypoint_names=_COCO_NAMES,
    flip_pairs=((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)),
    # mmpose's coco skeleton: legs, torso, arms, face.
    skeleton=(
        (15, 13),
        (13, 11),
        (16, 14),
        (14, 12),
        (11, 12),
        (5, 11),
        (6, 12),
        (5, 6),
        (5, 7),
        (6, 8),
        (7, 9),
        (8, 10),
        (1, 2),
        (0, 1),
        (0, 2),
        (1, 3),
        (2, 4),
        (3, 5),
        (4, 6),
    ),  # fmt: skip
    sides=tuple(_side(n) for n in _COCO_NAMES),
    sigmas=(
        0.026,
        0.025,
        0.025,
        0.035,
        0.035,
        0.079,
        0.079,
        0.072,
        0.072,
        0.062,
        0.062,
        0.107,
        0.107,
        0.087,
        0.087,
        0.089,
        0.089,
    ),  # fmt: skip
)

_MPII_NAMES = (
    "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle",
    "pelvis", "thorax", "upper_neck", "head_top",
    "right_wrist", "right_elbow", "right_shoulder", "left_shoulder", "left_elbow", "left_wrist",
)  # fmt: skip

MPII = DatasetInfo(
    name="mpii",
    keypoint_names=_MPII_NAMES,
    flip_pairs=((0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13)),
    skeleton=(
        (0, 1),
        (1, 2),
        (2, 6),
        (6, 3),
        (3, 4),
        (4, 5),
        (6, 7),
        (7, 8),
        (8, 9),
        (7, 12),
        (12, 11),
        (11, 10),
        (7, 13),
        (13, 14),
        (14, 15),
    ),  # fmt: skip
    sides=tuple(_side(n) for n in _MPII_NAMES),
    # mmpose's MPII sigmas; MPII itself is scored by PCKh, these only serve OKS tracking.
    sigmas=(
        0.089,
        0.083,
        0.107,
        0.107,
        0.083,
        0.089,
        0.026,
        0.026,
        0.026,
        0.026,
        0.062,
        0.072,
        0.179,
        0.179,
        0.072,
        0.062,
    ),  # fmt: skip
)

DATASETS: dict[str, DatasetInfo] = {"coco": COCO, "mpii": MPII}


def get_dataset_info(name: str) -> DatasetInfo:
    """Look up a keypoint layout by its mmpose dataset name (``coco``, ``mpii``)."""
    try:
        return DATASETS[name.lower()]
    except KeyError:
        known = ", ".join(sorted(DATASETS))
        raise KeyError(f"unknown keypoint layout {name!r}; known: {known}") from None
