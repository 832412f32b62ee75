"""YAML configs with the authors' (mmpose 0.x) key names.

A config is named (``hf_hrnet_18_coco_256x192``) or given as a path. ``_base_`` lists files,
relative to the config, that are deep-merged first (dicts merge, everything else replaces), as
mmpose's ``_base_`` does, so the six paper configs translate one to one. Every key is checked
against the schema of the shipped configs: a typo or a wrong type is refused with its key path
rather than silently ignored.
"""

from __future__ import annotations

import copy
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
PAPER_CONFIGS = (
    "hf_hrnet_18_coco_256x192",
    "hf_hrnet_18_coco_384x288",
    "hf_hrnet_30_coco_256x192",
    "hf_hrnet_30_coco_384x288",
    "hf_hrnet_18_mpii_256x256",
    "hf_hrnet_30_mpii_256x256",
)
# Keys whose values are free-form (lists of pipeline steps, dataset entries chosen by users).
_OPEN_KEYS = {"train_pipeline", "val_pipeline", "test_pipeline", "data", "channel_cfg"}


class ConfigError(ValueError):
    """A config that cannot be used; the message names the file or key."""


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping at the top level")
    return data


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Deep merge: nested dicts merge key by key; any other value replaces."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _load_with_bases(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    path = path.resolve()
    if path in seen:
        raise ConfigError(f"_base_ cycle through {path}")
    data = _read_yaml(path)
    bases = data.pop("_base_", [])
    if isinstance(bases, str):
        bases = [bases]
    merged: dict[str, Any] = {}
    for base in bases:
        merged = merge(merged, _load_with_bases(path.parent / base, (*seen, path)))
    return merge(merged, data)


def resolve_config_path(name_or_path: str | Path) -> Path:
    """A paper config name, a name with ``.yaml``, or a path to a YAML file."""
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml") and candidate.is_file():
        return candidate
    named = CONFIG_DIR / f"{candidate.stem}.yaml"
    if candidate.parent == Path(".") and named.is_file():
        return named
    if candidate.is_file():
        return candidate
    known = ", ".join(PAPER_CONFIGS)
    raise ConfigError(f"no config named or at {str(name_or_path)!r}; known names: {known}")


@lru_cache(maxsize=1)
def _schema() -> dict[str, Any]:
    """Union of the shipped configs: the keys and value types a config may use."""
    schema: dict[str, Any] = {}
    for name in PAPER_CONFIGS:
        schema = merge(schema, _load_with_bases(CONFIG_DIR / f"{name}.yaml"))
    return schema


def _check(value: Any, schema: Any, key: str) -> None:
    if isinstance(schema, dict):
        if not isinstance(value, dict):
            raise ConfigError(f"config key {key!r} must be a mapping, got {type(value).__name__}")
        for sub, sub_value in value.items():
            path = f"{key}.{sub}" if key else str(sub)
            if sub not in schema:
                raise ConfigError(f"unknown config key {path!r}")
            if sub in _OPEN_KEYS and not key:
                continue
            _check(sub_value, schema[sub], path)
        return
    if schema is None or value is None:
        return
    numeric = (int, float)
    if isinstance(schema, bool) or isinstance(value, bool):
        ok = isinstance(schema, bool) and isinstance(value, bool)
    elif isinstance(schema, numeric):
        ok = isinstance(value, numeric)
    else:
        ok = isinstance(value, type(schema))
    if not ok:
        raise ConfigError(
            f"config key {key!r} must be {type(schema).__name__}, got {type(value).__name__} "
            f"({value!r})"
        )


def parse_override(option: str) -> tuple[str, Any]:
    """``a.b.c=value`` -> (``a.b.c``, YAML-parsed value), as ``--cfg-options`` takes it."""
    if "=" not in option:
        raise ConfigError(f"--cfg-options entry {option!r} must look like key.sub=value")
    key, raw = option.split("=", 1)
    return key.strip(), yaml.safe_load(raw)


def apply_overrides(cfg: dict[str, Any], options: list[str]) -> dict[str, Any]:
    """Set dotted keys (``data_cfg.image_size=[192,256]``) on a copy of ``cfg``."""
    out = copy.deepcopy(cfg)
    for option in options:
        key, value = parse_override(option)
        parts = key.split(".")
        node = out
        for part in parts[:-1]:
            if node.get(part) is None:  # absent, or null as a default ("none of it")
                node[part] = {}
            node = node[part]
            if not isinstance(node, dict):
                raise ConfigError(f"--cfg-options {key!r}: {part!r} is not a mapping")
        node[parts[-1]] = value
    return out


def load_config(name_or_path: str | Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """Load, merge ``_base_`` files, apply ``key=value`` overrides and validate."""
    path = resolve_config_path(name_or_path)
    cfg = _load_with_bases(path)
    if overrides:
        cfg = apply_overrides(cfg, overrides)
    _check(cfg, _schema(), "")
    cfg["config_name"] = path.stem
    return cfg


def model_input_size(cfg: dict[str, Any]) -> tuple[int, int]:
    """(width, height) of the network input, as mmpose's ``image_size`` stores it."""
    width, height = cfg["data_cfg"]["image_size"]
    return int(width), int(height)


def model_heatmap_size(cfg: dict[str, Any]) -> tuple[int, int]:
    width, height = cfg["data_cfg"]["heatmap_size"]
    return int(width), int(height)
