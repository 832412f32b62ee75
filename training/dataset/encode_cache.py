"""Pack a crop cache small enough to move: the same people and geometry, crops stored as WebP.

A crop cache (``hfpose.training.dataset.crop_cache``) holds raw 384x384 RGB crops, about 440 KB a person, made
to be memory-mapped where it was built. Training elsewhere (a lent GPU machine takes at most
64 MiB a call, and nothing there can be downloaded) needs it some 60x smaller: WebP at quality
65 stores a person in 6-9 KB. The packed folder keeps ``index.npz`` (rows subset) and
``meta.json`` (count updated, ``image_encoding`` added); ``CropCache`` reads either form, so a
config only changes ``cache_dir``. The crops are lossy copies: train on them, but score models on
the original images (``hfpose-test``).

A crop may also be stored smaller than the cache's side (``--side``), and no larger than the
pixels its source photo had (``--fit-source``: a person from a small web image was enlarged into
the cache, a zoom the index keeps, so storing it at side/zoom loses nothing the photo held).
Reading resizes it back to the cache's side with the pixel centres kept, so the index's geometry
holds unchanged. ``benchmarks/bench_pack_cost.py`` measures what each setting costs.

    hfpose-encode-cache /work/cache/lspet_thunder_train /work/pack/lspet_thunder_train \\
        --quality 65 --part 0/2
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from hfpose.training.dataset.crop_cache import (
    CROP_SIZE,
    ENCODED_IMAGES_FILE,
    CropCache,
    EncodedImages,
    replace_folder,
)


def parse_part(text: str) -> tuple[int, int]:
    """``I/N`` -> (I, N): rows I, I+N, I+2N, ... of the cache (each part spans all of it)."""
    try:
        index, count = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--part takes I/N, e.g. 0/2, not {text!r}") from None
    if not 0 <= index < count:
        raise argparse.ArgumentTypeError(f"--part {text}: need 0 <= I < N")
    return index, count


@dataclass(frozen=True)
class PackSetting:
    """How a packed cache stores its crops: WebP ``quality``, the stored ``side`` (None: the
    cache's own), and ``fit_source``: no larger than the source photo's pixels."""

    quality: int = 65
    side: int | None = None
    fit_source: bool = False

    def label(self) -> str:
        side = f"_s{self.side}" if self.side else ""
        return f"webp_q{self.quality}{side}{'_fit' if self.fit_source else ''}"


def parse_setting(text: str) -> PackSetting:
    """``QUALITY[,SIDE][,fit]`` (``65``, ``65,320``, ``65,320,fit``) -> a :class:`PackSetting`."""
    fields = text.split(",")
    fit = fields[-1] == "fit"
    numbers = fields[:-1] if fit else fields
    try:
        values = [int(x) for x in numbers]
    except ValueError:
        values = []
    if not 1 <= len(values) <= 2 or not 1 <= values[0] <= 100 or min(values[1:], default=16) < 16:
        raise argparse.ArgumentTypeError(
            f"a pack setting is QUALITY[,SIDE][,fit] (quality 1-100, side >= 16), not {text!r}"
        )
    return PackSetting(values[0], values[1] if len(values) > 1 else None, fit)


def stored_sides(zoom: np.ndarray, cache_side: int, setting: PackSetting) -> np.ndarray:
    """The side each crop is stored at: the setting's side, and with ``fit_source`` no more than
    the cache side over the zoom from the source photo (``to_crop``'s scale; > 1 enlarged)."""
    side = np.full(len(zoom), min(setting.side or cache_side, cache_side))
    if setting.fit_source:
        side = np.minimum(side, np.ceil(cache_side / np.maximum(zoom, 1e-6)))
    return side.astype(int)


def encode_cache(
    source: Path,
    destination: Path,
    setting: PackSetting,
    part: tuple[int, int] = (0, 1),
    threads: int = 1,
) -> dict:
    """Write the rows of ``part`` of the cache at ``source`` to ``destination``; the new meta.

    ``setting``: how the crops are stored; ``threads`` encode side by side (the result is the
    same). Written to a temporary folder and renamed at the end, like ``build_cache``.
    """
    cache = CropCache(source)
    rows = np.arange(part[0], len(cache), part[1])
    if len(rows) == 0:
        raise SystemExit(f"part {part[0]}/{part[1]} of {source} holds no person")
    cache_side = int(cache.meta.get("crop_size", CROP_SIZE))
    sides = stored_sides(cache.index["to_crop"][rows, 0, 0], cache_side, setting)
    tmp_dir = destination.with_name(destination.name + ".partial")
    shutil.rmtree(tmp_dir, ignore_errors=True)
    tmp_dir.mkdir(parents=True)

    def encode(row_side: tuple[int, int]) -> np.ndarray:
        row, side = row_side
        bgr = cv2.cvtColor(np.ascontiguousarray(cache.images[row]), cv2.COLOR_RGB2BGR)
        if side < bgr.shape[0]:
            bgr = cv2.resize(bgr, (side, side), interpolation=cv2.INTER_AREA)
        ok, encoded = cv2.imencode(".webp", bgr, [cv2.IMWRITE_WEBP_QUALITY, setting.quality])
        if not ok:
            raise SystemExit(f"OpenCV could not encode crop {row} of {source} as WebP")
        return encoded.reshape(-1)

    # OpenCV lets go of the GIL while it encodes: threads use every core
    with ThreadPoolExecutor(max(1, threads)) as pool:
        chunks = list(pool.map(encode, zip(rows.tolist(), sides.tolist())))
    offsets = np.concatenate([[0], np.cumsum([len(c) for c in chunks])]).astype(np.int64)
    np.savez(tmp_dir / ENCODED_IMAGES_FILE, data=np.concatenate(chunks), offsets=offsets)
    # compressed: the index is a fifth of a packed person otherwise (513 bytes, 193 compressed)
    np.savez_compressed(
        tmp_dir / "index.npz", **{key: value[rows] for key, value in cache.index.items()}
    )
    meta = {
        **cache.meta,
        "count": int(len(rows)),
        "image_encoding": {
            "format": "webp",
            "quality": setting.quality,
            "side": setting.side or cache_side,
            "fit_source": setting.fit_source,
            "mean_stored_side": round(float(sides.mean()), 1),
            "source": str(source),
            "part": f"{part[0]}/{part[1]}",
        },
    }
    (tmp_dir / "meta.json").write_text(json.dumps(meta, indent=1))
    replace_folder(tmp_dir, destination)
    return meta


def slice_packed(source: Path, destination: Path, rows: np.ndarray) -> dict:
    """Copy ``rows`` of a packed cache to ``destination`` without decoding or re-encoding them
    (how the lease kit splits a packed cache between transfers); the new meta."""
    cache = CropCache(source)
    if not isinstance(cache.images, EncodedImages):
        raise SystemExit(f"{source} is not a packed cache (hfpose-encode-cache writes those)")
    packed = cache.images
    chunks = [packed.encoded(int(row)) for row in rows]
    offsets = np.concatenate([[0], np.cumsum([len(c) for c in chunks])]).astype(np.int64)
    destination.mkdir(parents=True, exist_ok=True)
    np.savez(destination / ENCODED_IMAGES_FILE, data=np.concatenate(chunks), offsets=offsets)
    np.savez_compressed(
        destination / "index.npz", **{key: value[rows] for key, value in cache.index.items()}
    )
    meta = {**cache.meta, "count": int(len(rows))}
    meta["image_encoding"] = {
        **meta["image_encoding"],
        "rows_of_source": [int(rows[0]), int(rows[-1]) + 1],
    }
    (destination / "meta.json").write_text(json.dumps(meta, indent=1))
    return meta


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("source", type=Path, help="a crop cache folder (hfpose-cache-crops)")
    parser.add_argument("destination", type=Path, help="the packed cache folder to write")
    parser.add_argument("--quality", type=int, default=65, help="WebP quality 1-100 (65)")
    parser.add_argument("--part", type=parse_part, default=(0, 1), help="I/N: every N-th row")
    parser.add_argument("--side", type=int, help="store crops at this side (the cache's: 384)")
    parser.add_argument(
        "--fit-source", action="store_true", help="no larger than the source photo's pixels"
    )
    parser.add_argument("--threads", type=int, default=1, help="encoding threads (1)")
    args = parser.parse_args(argv)
    if not 1 <= args.quality <= 100:
        parser.error("--quality must lie in 1..100")
    if args.side is not None and args.side < 16:
        parser.error("--side must be at least 16")
    setting = PackSetting(args.quality, args.side, args.fit_source)
    try:
        meta = encode_cache(args.source, args.destination, setting, args.part, args.threads)
    except FileNotFoundError as exc:
        raise SystemExit(str(exc)) from None
    size = sum(f.stat().st_size for f in args.destination.iterdir()) / 2**20
    print(f"{args.destination}: {meta['count']} people, {size:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
