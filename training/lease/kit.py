"""``hfpose-lease``: prepare a GPU lease here, check what a call would send, bring the result back.

    hfpose-lease weights CONFIG --onnx assets/hf_hrnet_18_coco_256x192.onnx   # lease/start.pth
    hfpose-lease pack CONFIG                  # lease/t1..t3 + lease/manifest.json
    hfpose-lease tree on                      # the checkout holds only what the device needs
    hfpose-lease size --carry lease/t1        # bytes a call would send; fails over 64 MiB
    hfpose-lease tree off                     # back on the branch, every file back
    hfpose-lease unpack DIR --out lease.pth   # the returned weight parts as one checkpoint

The device's side is ``training/lease/device.py``; the model card's "Lease kit" section has the
whole sequence. Packing and the transfer rule: :mod:`hfpose.training.lease.pack`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hfpose.models.config import ConfigError, load_config
from hfpose.training.dataset.encode_cache import parse_setting
from hfpose.training.lease.device import join_weight_parts

DEFAULT_ONNX = "assets/hf_hrnet_18_coco_256x192.onnx"
# WebP 45, crops no larger than their photo: ~4.1 KB a person, so 40k people fit three
# transfers; storing them smaller (320 px) cost more than the lower quality (the model card's
# "What travels", benchmarks/bench_pack_cost.py)
DEFAULT_PACK_SETTING = "45,fit"


def _repo() -> Path:
    return Path.cwd()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hfpose-lease", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    weights = commands.add_parser("weights", help="the start weights from an exported ONNX")
    weights.add_argument("config")
    weights.add_argument("--onnx", type=Path, default=Path(DEFAULT_ONNX))
    weights.add_argument("--out", type=Path, default=Path("lease/start.pth"))
    weights.add_argument("--cfg-options", nargs="+", default=[])
    pack = commands.add_parser("pack", help="pack the config's caches into transfers")
    pack.add_argument("config")
    pack.add_argument("--start-weights", type=Path, default=Path("lease/start.pth"))
    pack.add_argument("--out", type=Path, default=Path("lease"))
    pack.add_argument(
        "--setting", type=parse_setting, default=parse_setting(DEFAULT_PACK_SETTING),
        help=f"QUALITY[,SIDE][,fit]: WebP quality, stored side, no larger than the source photo "
        f"({DEFAULT_PACK_SETTING}; benchmarks/bench_pack_cost.py measures each)",
    )  # fmt: skip
    pack.add_argument("--transfers", type=int, default=3)
    pack.add_argument("--threads", type=int, default=2, help="encoding threads (2)")
    pack.add_argument("--limit-mib", type=float, default=64.0, help="per call (64)")
    pack.add_argument("--cfg-options", nargs="+", default=[])
    tree = commands.add_parser("tree", help="the checkout as a lease call needs it: on or off")
    tree.add_argument("state", choices=("on", "off"))
    size = commands.add_parser("size", help="what a device call from here would send")
    size.add_argument("--carry", nargs="*", default=[])
    size.add_argument("--limit-mib", type=float, default=64.0)
    unpack = commands.add_parser("unpack", help="join returned weight parts into a checkpoint")
    unpack.add_argument("parts_dir", type=Path)
    unpack.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    from hfpose.training.lease import pack as lease_pack

    try:
        if args.command == "weights":
            cfg = load_config(args.config, args.cfg_options)
            if not args.onnx.is_file():
                raise SystemExit(f"hfpose-lease: no ONNX file {args.onnx}")
            note = lease_pack.make_start_weights(cfg, args.onnx, args.out)
            print(f"{args.out}: {args.out.stat().st_size / 2**20:.1f} MiB, {note}")
        elif args.command == "pack":
            cfg = load_config(args.config, args.cfg_options)
            if not args.start_weights.is_file():
                raise SystemExit(f"hfpose-lease: no {args.start_weights}: run hfpose-lease weights")
            tree = lease_pack.kit_tree_bytes(_repo())
            manifest = lease_pack.pack_for_lease(
                cfg, args.out, args.start_weights, tree, args.setting, args.transfers,
                int(args.limit_mib * 2**20), threads=args.threads,
            )  # fmt: skip
            for name, nbytes in manifest["transfers"].items():
                print(
                    f"{args.out / name}: {nbytes / 2**20:.1f} MiB (+ {tree / 2**20:.1f} MiB tree)"
                )
            print(f"{manifest['train_people']} training people, {manifest['bytes_per_person']} "
                  f"bytes per person ({args.setting.label()})")  # fmt: skip
        elif args.command == "tree":
            print(lease_pack.set_kit_tree(_repo(), args.state == "on"))
        elif args.command == "size":
            sizes = lease_pack.transfer_bytes(_repo(), args.carry)
            limit = args.limit_mib * 2**20
            parts = ", ".join(f"{k} {v / 2**20:.1f}" for k, v in sizes.items() if k != "total")
            verdict = "fits" if sizes["total"] <= limit else "OVER the limit"
            print(f"a call would send {sizes['total'] / 2**20:.1f} MiB ({parts} MiB): {verdict} "
                  f"({args.limit_mib:g} MiB)")  # fmt: skip
            return 0 if sizes["total"] <= limit else 1
        else:
            print(f"wrote {join_weight_parts(args.parts_dir, args.out)}")
    except ConfigError as exc:
        print(f"hfpose-lease: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
