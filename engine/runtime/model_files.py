"""Model files: a shipped model's path in the installed package data, and the metadata an
export wrote into an ONNX file.

Apart from the runtimes so that the keypoint and detector code, the exporter and the training
tools can find a model or read its metadata without building a session. ``ModelError`` is the
one-line failure of every path that loads a model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hfpose.models.package_data import package_folders


class ModelError(RuntimeError):
    """A model file that is missing, unreadable or not a model the runtime accepts."""


def asset_path(relative: str) -> Path:
    """A shipped model (``detectors/nanodet_416.onnx``) in the installed package data
    (``hfpose.assets``: the repository's ``assets/`` in an editable install, the wheel's copy
    otherwise), never looked up relative to a source tree."""
    folders = _asset_folders()
    for folder in folders:
        candidate = folder / relative
        if candidate.is_file():
            return candidate
    raise ModelError(f"shipped model {relative} not found in {', '.join(map(str, folders))}")


def _asset_folders() -> list[Path]:
    folders = package_folders("hfpose.assets")
    if not folders:
        raise ModelError("the hfpose.assets package data is not installed (pip install -e .)")
    return folders


def check_model_file(path: Path) -> None:
    """Raise ``ModelError`` for a path that is missing or a folder, before a runtime tries it."""
    if not path.exists():
        raise ModelError(f"model not found: {path}")
    if not path.is_file():
        raise ModelError(f"not a model file (a folder?): {path}")


def read_onnx_metadata(path: str | Path) -> dict[str, Any]:
    """The exporter's ``metadata_props`` with JSON values decoded (plain strings kept as is)."""
    import onnx

    path = Path(path)
    check_model_file(path)
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as error:  # noqa: BLE001 - protobuf raises several unrelated types
        raise ModelError(f"not an ONNX model: {path} ({type(error).__name__})") from error
    return decode_metadata({p.key: p.value for p in model.metadata_props})


def decode_metadata(props: dict[str, str]) -> dict[str, Any]:
    """ONNX ``metadata_props`` with JSON values decoded (plain strings kept as is)."""
    decoded: dict[str, Any] = {}
    for key, value in props.items():
        try:
            decoded[key] = json.loads(value)
        except (json.JSONDecodeError, TypeError):
            decoded[key] = value
    return decoded
