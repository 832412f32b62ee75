"""The lease kit's side here: what goes to a lent GPU machine, packed to its transfer limits.

A call of the device tool sends a copy of the checkout's working tree: its tracked files,
untracked files git does not ignore, ``shared/``, and the ignored paths named in ``carry``; at
most 64 MiB. "Tracked" is git's word: every file in the index, also one a sparse checkout left
off the disk, so a sparse checkout does not make a call lighter by that rule.
The repository's tracked files are 111 MB (assets/ 95 MB), so for a lease the checkout switches
to a branch of its own whose index and disk hold only what training needs (:data:`DEVICE_TREE`,
under 1 MB; :func:`set_kit_tree`), and back after. The data goes in up to three calls, each
carrying one folder ``lease/tN`` (ignored by git):

- ``lease/t1``: the start weights (``start.pth``: the shipped ONNX read back, BatchNorm split out
  and calibrated, fp16), ``lease_config.yaml`` (the training config with every cache pointing at
  where the device puts it) and the first packed caches;
- ``lease/t2``, ``lease/t3``: the rest of the packed caches, a cache split between transfers
  where it does not fit (rows sliced, not re-encoded).

Each transfer is sized so that it plus the kit's tree stays under the limit; :func:`transfer_bytes`
measures a call's tree by the same rule before any lease comes.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from hfpose.models.config import ConfigError, model_input_size
from hfpose.models.hf_hrnet import build_model
from hfpose.training.dataset.builder import build_dataset
from hfpose.training.dataset.crop_cache import ENCODED_IMAGES_FILE, CropCache
from hfpose.training.dataset.encode_cache import PackSetting, encode_cache, slice_packed
from hfpose.training.run.load_from import (
    CALIBRATION_SAMPLES,
    calibration_batches,
    load_initial_weights,
)

TRANSFER_LIMIT = 64 * 2**20
# What the device needs of the checkout (anchored patterns; a trailing / takes a whole folder).
DEVICE_TREE = (
    "/pyproject.toml",
    "/.gitignore",
    "/models/",
    "/engine/",
    "/training/*.py",
    "/training/run/",
    "/training/dataset/",
    "/training/scoring/",
    "/training/lease/",
    "/training/data/splits/",
    "/benchmarks/bench_training.py",
)
LEASE_DIR = "lease"
KIT_BRANCH = "hfpose-lease-tree"  # one commit of the kit files, deleted when the tree goes off
RETURN_FILE = "hfpose-lease-return"  # in the git folder: the branch or commit to come back to
DEVICE_PACK_ROOT = "/tmp/hfpose_pack"  # where the device keeps the packed caches between calls
START_WEIGHTS = "start.pth"
LEASE_CONFIG = "lease_config.yaml"
MANIFEST = "manifest.json"
# Left free in each transfer: npz headers, meta files and the estimate's rounding.
_MARGIN = 2**20


def _git(repo: Path, *args: str, stdin: str | None = None) -> str:
    result = subprocess.run(
        ["git", "-C", str(repo), *args], input=stdin, capture_output=True, text=True, check=False
    )
    if result.returncode:
        raise SystemExit(f"git {' '.join(args)} failed in {repo}: {result.stderr.strip()}")
    return result.stdout


def _git_answer(repo: Path, *args: str) -> str:
    """A query's output, empty where git says no (an unknown ref, a detached HEAD)."""
    result = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else ""


def _path_bytes(path: Path) -> int:
    """Bytes of a file, a link (as a link) or a folder's files."""
    if path.is_symlink() or path.is_file():
        return path.lstat().st_size
    if path.is_dir():
        return sum(_path_bytes(p) for p in path.iterdir())
    return 0


def _tracked_bytes(repo: Path) -> int:
    """Every index entry: its size on disk, or its blob's size where it is not on disk (a
    sparse checkout's skip-worktree file is tracked all the same)."""
    total, missing = 0, []
    for line in _git(repo, "ls-files", "-z", "--cached", "--stage").split("\0"):
        if not line:
            continue
        info, name = line.split("\t", 1)
        path = repo / name
        if path.is_symlink() or path.exists():
            total += _path_bytes(path)
        else:
            missing.append(info.split()[1])
    if missing:
        sizes = _git(repo, "cat-file", "--batch-check=%(objectsize)", stdin="\n".join(missing))
        total += sum(int(size) for size in sizes.split())
    return total


def transfer_bytes(repo: Path, carry: list[str] = ()) -> dict[str, int]:
    """What one device call from ``repo`` sends, by the tool's rule: tracked files (all of the
    index, on disk or not), untracked files git does not ignore, ``shared/``, and the carried
    paths."""
    repo = Path(repo)
    tracked = _git(repo, "ls-files", "-z", "--cached").split("\0")
    untracked = _git(repo, "ls-files", "-z", "--others", "--exclude-standard").split("\0")
    sizes = {
        "tracked": _tracked_bytes(repo),
        "untracked": sum(_path_bytes(repo / name) for name in untracked if name),
        "shared": 0,
        "carried": sum(_path_bytes(repo / name) for name in carry),
    }
    shared = repo / "shared"
    if shared.exists() and not any(n.startswith("shared/") for n in tracked + untracked if n):
        sizes["shared"] = _path_bytes(shared)
    sizes["total"] = sum(sizes.values())
    return sizes


def kit_tree_bytes(repo: Path) -> int:
    """Bytes of the tracked files :data:`DEVICE_TREE` keeps (what a lease call's tree holds
    besides its transfer), read from git's index so it holds before the kit's tree is on."""
    files = _git(repo, "ls-files", "-z", "--cached", *_pathspecs()).split("\0")
    return sum(_path_bytes(repo / name) for name in files if name)


def _pathspecs() -> list[str]:
    return [f":(glob){p.strip('/')}{'**' if p.endswith('/') else ''}" for p in DEVICE_TREE]


def kit_tree_is_on(repo: Path) -> bool:
    return _return_file(repo).is_file()


def _return_file(repo: Path) -> Path:
    return repo / _git(repo, "rev-parse", "--git-path", RETURN_FILE).strip()


def set_kit_tree(repo: Path, on: bool) -> str:
    """``on``: the checkout on a branch of one commit whose index and disk hold only
    :data:`DEVICE_TREE` (the rest of the tracked files leave the disk; ignored files stay);
    ``off``: back on the branch or commit it came from, every file restored. A one-line note."""
    repo = Path(repo)
    back = _return_file(repo)
    if on:
        if back.is_file():
            raise SystemExit(f"the lease tree is on already (hfpose-lease tree off returns to "
                             f"{back.read_text().strip()})")  # fmt: skip
        if _git(repo, "status", "--porcelain", "--untracked-files=no").strip():
            raise SystemExit("tracked files have uncommitted changes: commit or stash them first")
        commit = _git(repo, "rev-parse", "HEAD").strip()
        came_from = _git_answer(repo, "symbolic-ref", "-q", "--short", "HEAD") or commit
        kit = [name for name in _git(repo, "ls-files", "-z", *_pathspecs()).split("\0") if name]
        if _git_answer(repo, "rev-parse", "--verify", "-q", f"refs/heads/{KIT_BRANCH}"):
            _git(repo, "branch", "-D", KIT_BRANCH)  # left by a run stopped half way
        back.write_text(f"{came_from}\n")
        _git(repo, "switch", "-q", "--orphan", KIT_BRANCH)
        _git(repo, "checkout", commit, "--pathspec-from-file=-", "--pathspec-file-nul",
             stdin="".join(f":(literal){name}\0" for name in kit))  # fmt: skip
        # committed, so the checkout looks like any other to whatever copies it (a HEAD, a
        # clean status); the branch is deleted when the tree goes off
        identity = ["-c", "user.name=hfpose-lease", "-c", "user.email=hfpose-lease@localhost"]
        _git(repo, *identity, "-c", "commit.gpgSign=false", "commit", "-q", "--no-verify",
             "-m", f"lease tree: the kit files of {commit[:12]}")  # fmt: skip
        files = len(_git(repo, "ls-files", "-z").split("\0")) - 1
        return f"lease tree on: {files} tracked files, {kit_tree_bytes(repo) / 2**20:.1f} MiB"
    if not back.is_file():
        raise SystemExit("the lease tree is not on (no hfpose-lease tree on to undo)")
    target = back.read_text().strip()
    if _git_answer(repo, "rev-parse", "--verify", "-q", f"refs/heads/{target}"):
        _git(repo, "switch", "-q", target)
    else:
        _git(repo, "switch", "-q", "--detach", target)
    _git(repo, "branch", "-D", KIT_BRANCH)
    back.unlink()
    return f"lease tree off: back on {target}"


def make_start_weights(
    cfg: dict[str, Any], onnx_path: Path, out: Path, samples: int = CALIBRATION_SAMPLES
) -> str:
    """The shipped ONNX read back into the config's model, BatchNorm split out and calibrated
    on ``samples`` training crops (``load_from``'s way), saved as an fp16 state dict (half the
    bytes of a transfer); a one-line summary."""
    model = build_model(cfg)
    dataset = build_dataset(cfg, "train", int(cfg.get("seed", 0)))
    batches = calibration_batches(dataset, samples)
    note = load_initial_weights(model, onnx_path, model_input_size(cfg), batches)
    state = {key: value.half() if value.is_floating_point() else value
             for key, value in model.state_dict().items()}  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"meta": {"source": str(onnx_path), "load_from": note}, "state_dict": state}, out)
    return note


@dataclass
class PackedPiece:
    """A packed cache (or a slice of one) in a transfer, and the training entry naming it."""

    transfer: int
    role: str  # train or val
    name: str
    people: int
    bytes: int
    entry: dict[str, Any]


def _entries(cfg: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    train = cfg["data"]["train"]
    train = train if isinstance(train, list) else [train]
    val = cfg["data"].get("val")
    for entry in [*train, *([val] if val else [])]:
        if entry.get("type") != "CropCacheDataset" or not entry.get("cache_dir"):
            raise ConfigError("the lease kit packs crop caches only (type: CropCacheDataset)")
    return train, val


def _row_bytes(packed: Path) -> tuple[np.ndarray, int]:
    """Cumulative WebP bytes by row of a packed cache, and index bytes per row."""
    with np.load(packed / ENCODED_IMAGES_FILE) as data:
        offsets = data["offsets"]
    cache = CropCache(packed)
    per_row = sum(v.nbytes for v in cache.index.values()) // max(1, len(cache))
    return offsets, per_row


def pack_for_lease(
    cfg: dict[str, Any],
    out_dir: Path,
    start_weights: Path,
    tree_bytes: int,
    setting: PackSetting,
    transfers: int = 3,
    limit: int = TRANSFER_LIMIT,
    pack_root: str = DEVICE_PACK_ROOT,
    threads: int = 1,
) -> dict[str, Any]:
    """Pack every cache of ``cfg`` (train and val) into ``out_dir/t1..tN``, each under
    ``limit`` with the tree; write the device's config and a manifest; return the manifest."""
    train, val = _entries(cfg)
    capacity = limit - tree_bytes - _MARGIN
    shutil.rmtree(out_dir, ignore_errors=True)
    scratch = out_dir / "whole"
    t1 = out_dir / "t1"
    t1.mkdir(parents=True)
    shutil.copy2(start_weights, t1 / START_WEIGHTS)
    free = capacity - _path_bytes(t1 / START_WEIGHTS) - 64 * 1024  # the config file
    transfer, pieces, sources = 1, [], []
    for role, entry in [("val", val), *(("train", e) for e in train)]:
        if entry is None:
            continue
        source = Path(entry["cache_dir"])
        packed = scratch / source.name
        meta = encode_cache(source, packed, setting, threads=threads)
        offsets, index_row = _row_bytes(packed)
        people = int(meta["count"])
        sources.append({"cache": str(source), "people": people,
                        "webp_bytes": int(offsets[-1]), "role": role})  # fmt: skip
        start = 0
        while start < people:
            cost = (
                offsets[start + 1 :] - offsets[start] + index_row * np.arange(1, people - start + 1)
            )
            fit = int(np.searchsorted(cost, free, side="right"))
            if role == "val" and fit < people:
                fit = 0  # the validation set travels whole
            if fit == 0:
                transfer += 1
                if transfer > transfers:
                    raise SystemExit(
                        f"the caches do not fit {transfers} transfers of {limit / 2**20:.0f} MiB "
                        f"with a {tree_bytes / 2**20:.1f} MiB tree: a smaller --setting or less data"
                    )
                free = capacity
                continue
            name = source.name if fit == people and start == 0 else f"{source.name}_r{start}"
            piece_dir = out_dir / f"t{transfer}" / name
            slice_packed(packed, piece_dir, np.arange(start, start + fit))
            size = _path_bytes(piece_dir)
            free -= size
            piece_entry = {**entry, "cache_dir": f"{pack_root}/{name}"}
            if role == "train":
                ratio = float(entry.get("sampling_ratio", people))
                piece_entry["sampling_ratio"] = ratio * fit / people
            pieces.append(PackedPiece(transfer, role, name, fit, size, piece_entry))
            start += fit
    shutil.rmtree(scratch)
    lease_cfg = {key: value for key, value in cfg.items() if key != "config_name"}
    lease_cfg["data"] = {
        **cfg["data"],
        "train": [p.entry for p in pieces if p.role == "train"],
    }
    if val is not None:
        lease_cfg["data"]["val"] = next(p.entry for p in pieces if p.role == "val")
    lease_cfg["data_preprocessor"] = cfg.get("data_preprocessor") or {"type": "DeviceBatchAugment"}
    lease_cfg["load_from"] = f"{pack_root}/{START_WEIGHTS}"
    (t1 / LEASE_CONFIG).write_text(
        f"# written by hfpose-lease pack from {cfg.get('config_name')}: every cache at "
        f"{pack_root} on the device\n" + yaml.safe_dump(_plain(lease_cfg), sort_keys=False)
    )
    people = sum(p.people for p in pieces if p.role == "train")
    webp = sum(p.bytes for p in pieces)
    manifest = {
        "setting": setting.label(),
        "tree_bytes": tree_bytes,
        "limit_bytes": limit,
        "train_people": people,
        "bytes_per_person": round(webp / max(1, sum(p.people for p in pieces))),
        "transfers": {f"t{t}": _path_bytes(out_dir / f"t{t}") for t in range(1, transfer + 1)},
        "pieces": [p.__dict__ for p in pieces],
        "sources": sources,
    }
    for name, size in manifest["transfers"].items():
        if size + tree_bytes > limit:
            raise SystemExit(f"{name} came to {size / 2**20:.1f} MiB, over the limit with the tree")
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return manifest


def _plain(value: Any) -> Any:
    """Config values as YAML's plain types (tuples to lists)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
