"""The keypoint model the engine tests run: the shipped one, else an exported random HF-HRNet-18.

Random weights give meaningless keypoints, so tests using it check structure, counts, timing and
files, never accuracy. The export takes ~20 s; it is cached in pytest's cache folder, keyed by
the model and exporter sources, so later runs reuse it until the network code changes.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIG = "hf_hrnet_18_coco_256x192"
_SOURCES = (
    "models/hf_hrnet.py",
    "models/export.py",
    "models/configs/hf_hrnet_18_coco_256x192.yaml",
)


def pose_model_path(cache_dir: Path) -> Path:
    shipped = REPO_ROOT / "assets" / f"{CONFIG}.onnx"
    if shipped.is_file():
        return shipped
    digest = hashlib.sha256()
    for relative in _SOURCES:
        digest.update((REPO_ROOT / relative).read_bytes())
    target = cache_dir / f"{CONFIG}_random_{digest.hexdigest()[:12]}.onnx"
    if target.is_file():
        return target
    pytest.importorskip("torch", reason="exporting the test model needs torch")
    from hfpose.models.export import main as export_main

    partial = target.with_suffix(f".{os.getpid()}.part.onnx")
    if export_main([CONFIG, "--out", str(partial)]) not in (0, None):
        pytest.fail(f"hfpose-export {CONFIG} failed")
    os.replace(partial, target)
    return target
