"""The lease kit's side on the lent GPU machine: take in the transfers, measure the card, train
for the minutes left, and hand back weights and scores in files the tool returns.

Run from the checkout's root there with the machine's own python3 (torch, OpenCV, ONNX Runtime
are installed; nothing can be installed): run as a file, it makes ``hfpose.*`` importable from
this checkout's folders itself. The model card's "Lease kit" section has the call sequence.

    python3 training/lease/device.py receive lease/t1      # each call: its transfer
    python3 training/lease/device.py bench --steps 30      # samples/s on the card
    python3 training/lease/device.py train --minutes 8     # then $OUT holds the result
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]  # training/lease/device.py
PACK_ROOT = "/tmp/hfpose_pack"  # hfpose.training.lease.pack.DEVICE_PACK_ROOT
RUN_DIR = "/tmp/hfpose_lease_run"
# A returned file's limit is 16 MiB; weight parts stay under it.
PART_BYTES = 15 * 2**20
WEIGHT_PART = "weights_part{}.pth"
RETURNED_LOGS = ("budget_result.json", "log.csv", "val.csv", "train.log")


def _make_importable() -> None:
    """``hfpose.engine/models/training`` as links to this checkout's folders (the package is
    not installed on the lent machine; its pyproject maps these folders the same way)."""
    try:
        import hfpose.training  # noqa: F401
    except ImportError:
        site = Path(tempfile.gettempdir()) / "hfpose_site"
        package = site / "hfpose"
        package.mkdir(parents=True, exist_ok=True)
        for name in ("engine", "models", "training"):
            link = package / name
            if link.is_symlink() and link.resolve() != (REPO / name).resolve():
                link.unlink()  # left by another checkout
            if not link.exists():
                link.symlink_to(REPO / name)
        sys.path.insert(0, str(site))


def machine_summary() -> str:
    """Imports what training needs (a module missing on the machine fails here, in the first
    call, not in the training call) and says what it runs on."""
    import torch

    import hfpose.training.run.train_cli  # noqa: F401
    from hfpose.training.dataset import device_batches  # noqa: F401

    card = torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA device"
    return f"torch {torch.__version__}, {card}, {os.cpu_count()} CPUs"


def receive(transfer: Path, pack_root: Path) -> list[str]:
    """Move each folder and file of ``transfer`` to ``pack_root`` (replacing an older copy)."""
    if not transfer.is_dir():
        raise SystemExit(f"no transfer folder {transfer} (was it named in the call's carry?)")
    pack_root.mkdir(parents=True, exist_ok=True)
    moved = []
    for item in sorted(transfer.iterdir()):
        target = pack_root / item.name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        shutil.move(str(item), str(target))
        moved.append(item.name)
    return moved


def config_of_received(pack_root: Path) -> Path:
    """The lease config with only the caches received so far (the first call measures the card
    on the first transfer's people: throughput does not depend on how many there are)."""
    import yaml

    config = yaml.safe_load((pack_root / "lease_config.yaml").read_text())
    train = config["data"]["train"]
    config["data"]["train"] = [e for e in train if Path(e["cache_dir"]).is_dir()]
    if not config["data"]["train"]:
        raise SystemExit(f"no training cache of the lease config has arrived in {pack_root}")
    out = pack_root / "bench_config.yaml"
    out.write_text(yaml.safe_dump(config, sort_keys=False))
    return out


def save_weight_parts(
    state_dict: dict[str, Any], out_dir: Path, meta: dict[str, Any]
) -> list[Path]:
    """fp32 ``state_dict`` in files under :data:`PART_BYTES` each (keys split in order)."""
    import torch

    parts: list[dict[str, Any]] = [{}]
    size = 0
    for key, value in state_dict.items():
        nbytes = value.numel() * value.element_size()
        if parts[-1] and size + nbytes > PART_BYTES - 2**20:
            parts.append({})
            size = 0
        parts[-1][key] = value.detach().cpu()
        size += nbytes
    paths = []
    for i, part in enumerate(parts):
        path = out_dir / WEIGHT_PART.format(i)
        torch.save({"meta": {**meta, "part": i, "parts": len(parts)}, "state_dict": part}, path)
        paths.append(path)
    return paths


def join_weight_parts(parts_dir: Path, out: Path) -> Path:
    """The returned parts joined into one checkpoint ``hfpose-export --checkpoint`` reads."""
    import torch

    first = parts_dir / WEIGHT_PART.format(0)
    if not first.is_file():
        raise SystemExit(f"no {first.name} in {parts_dir}")
    head = torch.load(first, map_location="cpu", weights_only=True)
    count = int(head["meta"]["parts"])
    state: dict[str, Any] = {}
    for i in range(count):
        path = parts_dir / WEIGHT_PART.format(i)
        if not path.is_file():
            raise SystemExit(f"{path.name} of {count} parts is missing in {parts_dir}")
        state.update(torch.load(path, map_location="cpu", weights_only=True)["state_dict"])
    meta = {k: v for k, v in head["meta"].items() if k not in ("part", "parts")}
    torch.save({"meta": meta, "state_dict": state}, out)
    return out


def train(minutes: float, pack_root: Path, run_dir: Path, out_dir: Path, options: list[str]) -> int:
    """Train the packed data from the start weights for ``minutes``; the weights (in parts),
    budget_result.json and the logs to ``out_dir``. The exit status is hfpose-train's."""
    import torch

    from hfpose.training.run.train_cli import main as train_main

    shutil.rmtree(run_dir, ignore_errors=True)
    argv = [str(pack_root / "lease_config.yaml"), "--work-dir", str(run_dir),
            "--load-from", str(pack_root / "start.pth"), "--time-budget", str(minutes),
            "--no-progress"]  # fmt: skip
    if options:
        argv += ["--cfg-options", *options]
    status = train_main(argv)
    out_dir.mkdir(parents=True, exist_ok=True)
    latest = run_dir / "latest.pth"
    if latest.is_file():
        checkpoint = torch.load(latest, map_location="cpu", weights_only=True)
        meta = {k: checkpoint["meta"].get(k) for k in ("config_name", "global_step", "image_size")}
        for path in save_weight_parts(checkpoint["state_dict"], out_dir, meta):
            print(f"{path}: {path.stat().st_size / 2**20:.1f} MiB")
    for name in RETURNED_LOGS:
        if (run_dir / name).is_file():
            shutil.copy2(run_dir / name, out_dir / name)
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pack-root", type=Path, default=Path(PACK_ROOT))
    commands = parser.add_subparsers(dest="command", required=True)
    take = commands.add_parser("receive", help="move a transfer folder's contents into place")
    take.add_argument("transfers", type=Path, nargs="+")
    bench = commands.add_parser("bench", help="samples/s of the device data path and steps")
    bench.add_argument("--steps", type=int, default=30)
    bench.add_argument("--batch", type=int, default=512)
    run = commands.add_parser("train", help="train for MINUTES, results to --out ($OUT)")
    run.add_argument("--minutes", type=float, required=True)
    run.add_argument("--run-dir", type=Path, default=Path(RUN_DIR))
    run.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "lease_out")))
    run.add_argument("--cfg-options", nargs="+", default=[])
    args = parser.parse_args(argv)
    _make_importable()
    if args.command == "receive":
        for transfer in args.transfers:
            print(f"{transfer}: {', '.join(receive(transfer, args.pack_root))} -> {args.pack_root}")
        print(machine_summary())
        return 0
    if args.command == "bench":
        sys.path.insert(0, str(REPO / "benchmarks"))
        from bench_training import main as bench_main

        config = str(config_of_received(args.pack_root))
        return bench_main([config, "--data", "config", "--data-path", "device",
                           "--batch", str(args.batch), "--steps", str(args.steps)])  # fmt: skip
    status = train(args.minutes, args.pack_root, args.run_dir, args.out, args.cfg_options)
    result = args.run_dir / "budget_result.json"
    if result.is_file():
        print(json.dumps(json.loads(result.read_text()), indent=1))
    return status


if __name__ == "__main__":
    sys.exit(main())
