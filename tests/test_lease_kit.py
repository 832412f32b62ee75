"""The lease kit rehearsed end to end on the CPU: pack, start weights, the device's side (in a
process where the package is not installed and the modules the lent machine lacks do not
import), a time-budgeted run, the weights back in parts, export with parity here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from hfpose.models.config import load_config
from hfpose.models.hf_hrnet import build_model
from hfpose.training.dataset.crop_cache import build_cache
from hfpose.training.dataset.encode_cache import parse_setting
from hfpose.training.export.export_cli import main as export_main
from hfpose.training.lease import device as lease_device
from hfpose.training.lease import pack as lease_pack
from hfpose.training.lease.kit import DEFAULT_PACK_SETTING
from hfpose.training.run.onnx_export import export_onnx

REPO = Path(__file__).resolve().parents[1]
CONFIG = "hfpose_hf_hrnet_18_coco_256x192_lspet_mpii"
# Not on the lent machine's image (/work/.library/device/KINDS.md lists what is).
MISSING_ON_DEVICE = ("av", "filterpy", "PySide6", "openvino", "mediapipe", "pycocotools")
# Run at the device's start: no installed hfpose package, and the modules above missing.
_DEVICE_SITE = f"""
import sys
sys.meta_path[:] = [f for f in sys.meta_path
                    if "editable" not in (getattr(f, "__module__", "") or "").lower()]
sys.path[:] = [p for p in sys.path if "__editable__" not in p]

class _Missing:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {MISSING_ON_DEVICE!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (not on the lent machine)")
        return None

sys.meta_path.insert(0, _Missing())
"""


@pytest.fixture(autouse=True)
def _one_thread_no_subnormals():
    """One thread on the shared cores; freshly initialised weights are full of subnormal
    floats, ~100x slower unless flushed (the trainer does this for its own runs)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    yield
    torch.set_num_threads(threads)
    torch.set_flush_denormal(False)


# A one-stage HF-HRNet a few thousand weights strong: every step of the procedure (ONNX read
# back, export with parity, a budgeted run, validation) on a graph that traces in a blink.
TINY_MODEL = [
    "model.backbone.extra.num_stages=1",
    "model.backbone.extra.stem={stem_channels: 8, out_channels: 8, expand_ratio: 1}",
    "model.backbone.extra.stages_spec={num_modules: [1], num_branches: [2], num_blocks: [1], "
    "module_type: [HFHR], with_fuse: [true], reduce_ratios: [4], num_channels: [[8, 16]]}",
    "model.keypoint_head.in_channels=8",
]


def _tiny_config(train_cache: Path, val_cache: Path) -> dict:
    train = [{"type": "CropCacheDataset", "cache_dir": str(train_cache), "sampling_ratio": 1}]
    val = {"type": "CropCacheDataset", "cache_dir": str(val_cache)}
    return load_config(
        CONFIG,
        [
            *TINY_MODEL,
            "data_cfg.image_size=[64,128]",
            "data_cfg.heatmap_size=[16,32]",
            "data.samples_per_gpu=4",
            "data.workers_per_gpu=0",
            "data.train_samples_per_epoch=16",
            f"data.train={json.dumps(train)}",
            f"data.val={json.dumps(val)}",
            "evaluation.interval=100",
            "evaluation.metric=PCK",
            "evaluation.save_best=PCK",
            "log_config.interval=2",
            "lr_config.warmup_iters=2",
            "amp=none",
            "cpu_threads=1",
        ],
    )


def test_lease_rehearsal_on_fixtures(data_dir: Path, tmp_path: Path) -> None:
    coco = json.loads((data_dir / "coco" / "test_coco.json").read_text())
    build_cache(
        coco, data_dir / "coco", tmp_path / "caches" / "people_train", "coco", "train", None
    )
    build_cache(coco, data_dir / "coco", tmp_path / "caches" / "people_val", "coco", "val", None)
    cfg = _tiny_config(tmp_path / "caches" / "people_train", tmp_path / "caches" / "people_val")

    # the shipped model's stand-in (the tiny config's shape), read back as start weights
    shipped = export_onnx(cfg, build_model(cfg), tmp_path / "shipped.onnx")
    start = tmp_path / "start.pth"
    assert "BatchNorm split back" in lease_pack.make_start_weights(cfg, shipped, start, 8)
    state = torch.load(start, weights_only=True)["state_dict"]
    assert any(key.endswith("running_var") for key in state)
    assert all(v.dtype == torch.float16 for v in state.values() if v.is_floating_point())

    # packed into transfers under a limit small enough to need more than one
    tree = lease_pack.kit_tree_bytes(REPO)
    assert 0 < tree < 4 * 2**20
    limit = tree + start.stat().st_size + lease_pack._MARGIN + 64 * 1024 + 100 * 1024
    lease = tmp_path / "lease"
    pack_root = tmp_path / "device_pack"
    setting = parse_setting(DEFAULT_PACK_SETTING)
    manifest = lease_pack.pack_for_lease(
        cfg, lease, start, tree, setting, transfers=3, limit=limit, pack_root=str(pack_root)
    )
    assert len(manifest["transfers"]) >= 2
    assert all(size + tree <= limit for size in manifest["transfers"].values())
    assert manifest["train_people"] == len(coco_people(coco))
    assert manifest["setting"] == setting.label()
    lease_cfg = yaml.safe_load((lease / "t1" / lease_pack.LEASE_CONFIG).read_text())
    assert lease_cfg["data_preprocessor"]["type"] == "DeviceBatchAugment"
    ratios = sum(e["sampling_ratio"] for e in lease_cfg["data"]["train"])
    assert ratios == pytest.approx(1.0)

    # the device's side: the transfers taken in by a process like the lent machine's (no
    # hfpose installed, its missing modules absent), which imports all that training needs
    site = tmp_path / "device_site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(_DEVICE_SITE)
    env = {**os.environ, "PYTHONPATH": str(site), "OMP_NUM_THREADS": "1"}
    transfers = sorted(str(lease / name) for name in manifest["transfers"])
    receive = [sys.executable, str(REPO / "training" / "lease" / "device.py"), "--pack-root",
               str(pack_root), "receive", *transfers]  # fmt: skip
    taken = subprocess.run(receive, env=env, cwd=tmp_path, capture_output=True, text=True)
    assert taken.returncode == 0 and "torch" in taken.stdout, taken.stdout + taken.stderr
    assert not (lease / "t1").exists() or not any((lease / "t1").iterdir())

    # the card measured on what has arrived, then the training call (both in this process:
    # the same code, without another start-up)
    bench = ["--pack-root", str(pack_root), "bench", "--steps", "1", "--batch", "4"]
    assert lease_device.main(bench) == 0
    run_dir, out = tmp_path / "run", tmp_path / "OUT"
    assert lease_device.train(0.02, pack_root, run_dir, out, []) == 0
    assert "stopped at the end of the time budget" in (run_dir / "train.log").read_text()
    result = json.loads((out / "budget_result.json").read_text())
    assert result["steps"] > 0 and result["onnx_parity_ok"]
    assert "PCK" in result["validation"]
    returned = sorted(p.name for p in out.iterdir())
    assert "weights_part0.pth" in returned and len(returned) <= 8

    # back here: the parts joined, exported with hfpose-export's parity check
    joined = lease_device.join_weight_parts(out, tmp_path / "lease.pth")
    onnx = tmp_path / "lease.onnx"
    config = str(pack_root / lease_pack.LEASE_CONFIG)
    assert export_main([config, "--checkpoint", str(joined), "--out", str(onnx)]) == 0
    assert onnx.is_file()


def coco_people(coco: dict) -> list[dict]:
    return [a for a in coco["annotations"] if any(v > 0 for v in a["keypoints"][2::3])]


@pytest.mark.slow
def test_weights_return_in_parts_under_the_file_limit(tmp_path: Path) -> None:
    cfg = load_config(CONFIG)
    model = build_model(cfg)
    paths = lease_device.save_weight_parts(model.state_dict(), tmp_path, {"global_step": 3})
    assert len(paths) >= 2 and all(p.stat().st_size < lease_device.PART_BYTES for p in paths)
    joined_path = lease_device.join_weight_parts(tmp_path, tmp_path / "all.pth")
    joined = torch.load(joined_path, weights_only=True)
    for key, value in model.state_dict().items():
        assert torch.equal(joined["state_dict"][key], value)
    paths[-1].unlink()
    with pytest.raises(SystemExit, match="missing"):
        lease_device.join_weight_parts(tmp_path, tmp_path / "again.pth")


_GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
            "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}  # fmt: skip


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=repo, env={**os.environ, **_GIT_ENV}, check=True,
                          capture_output=True, text=True)  # fmt: skip
    return done.stdout


def _repo_with_assets(tmp_path: Path) -> Path:
    """A checkout like the project's: code the device needs, a heavy assets/ folder."""
    repo = tmp_path / "repo"
    (repo / "models").mkdir(parents=True)
    (repo / "assets").mkdir()
    (repo / ".gitignore").write_text("/lease/\n")
    (repo / "models" / "net.py").write_text("x = 1\n")
    (repo / "assets" / "model.onnx").write_bytes(b"w" * 50_000)
    _git(repo, "init", "-q", "-b", "work")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "c")
    return repo


def test_transfer_size_counts_what_a_call_sends(tmp_path: Path) -> None:
    repo = _repo_with_assets(tmp_path)
    (repo / "loose.txt").write_bytes(b"y" * 500)  # untracked, not ignored: travels
    (repo / "lease" / "t1").mkdir(parents=True)
    (repo / "lease" / "t1" / "data.npz").write_bytes(b"z" * 7000)  # ignored: only if carried
    plain = lease_pack.transfer_bytes(repo)
    assert plain["tracked"] == len("/lease/\n") + 6 + 50_000 and plain["untracked"] == 500
    assert lease_pack.transfer_bytes(repo, ["lease/t1"])["total"] == plain["total"] + 7000


def test_a_sparse_checkout_leaves_its_files_tracked_and_counted(tmp_path: Path) -> None:
    repo = _repo_with_assets(tmp_path)
    whole = lease_pack.transfer_bytes(repo)["total"]
    _git(repo, "sparse-checkout", "set", "--no-cone", "/models/", "/.gitignore")
    assert not (repo / "assets" / "model.onnx").exists()
    assert "assets/model.onnx" in _git(repo, "ls-files")
    assert lease_pack.transfer_bytes(repo)["total"] == whole


def test_the_lease_tree_holds_only_the_kit_and_goes_back(tmp_path: Path) -> None:
    repo = _repo_with_assets(tmp_path)
    head = _git(repo, "rev-parse", "HEAD")
    (repo / "lease").mkdir()
    (repo / "lease" / "keep.npz").write_bytes(b"k" * 100)  # ignored: stays on disk

    assert "lease tree on" in lease_pack.set_kit_tree(repo, True)
    assert _git(repo, "ls-files").split() == [".gitignore", "models/net.py"]
    assert not (repo / "assets").exists() and (repo / "lease" / "keep.npz").is_file()
    assert lease_pack.transfer_bytes(repo)["total"] == lease_pack.kit_tree_bytes(repo)
    with pytest.raises(SystemExit, match="on already"):
        lease_pack.set_kit_tree(repo, True)

    assert lease_pack.set_kit_tree(repo, False) == "lease tree off: back on work"
    assert (repo / "assets" / "model.onnx").stat().st_size == 50_000
    assert _git(repo, "rev-parse", "HEAD") == head
    assert _git(repo, "branch", "--list").split() == ["*", "work"]
    assert not _git(repo, "status", "--porcelain", "--untracked-files=no")
    with pytest.raises(SystemExit, match="not on"):
        lease_pack.set_kit_tree(repo, False)


def test_the_lease_tree_refuses_uncommitted_changes(tmp_path: Path) -> None:
    repo = _repo_with_assets(tmp_path)
    (repo / "models" / "net.py").write_text("x = 2\n")
    with pytest.raises(SystemExit, match="uncommitted"):
        lease_pack.set_kit_tree(repo, True)
    assert not lease_pack.kit_tree_is_on(repo) and (repo / "assets" / "model.onnx").is_file()
