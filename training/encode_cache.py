"""Pack a crop cache small enough to move: the same people and geometry, crops stored as WebP.

A crop cache (``hfpose.training.crop_cache``) holds raw 384x384 RGB crops, about 440 KB a person, made
to be memory-mapped where it was built. Training elsewhere (a lent GPU machine takes at most
64 MiB a call, and nothing there can be downloaded) needs it some 60x smaller: WebP at quality
65 stores a person in 6-9 KB. The packed folder keeps ``index.npz`` (rows subset) and
``meta.json`` (count updated, ``image_encoding`` added); ``CropCache`` reads either form, so a
config only changes ``cache_dir``. The crops are lossy copies: train on them, but score models on
the original images (``hfpose-test``).

    hfpose-encode-cache /work/cache/lspet_thunder_train /work/pack/lspet_thunder_train \\
        --quality 65 --part 0/2
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np

from hfpose.training.crop_cache import (
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


def encode_cache(
    source: Path, destination: Path, quality: int, part: tuple[int, int] = (0, 1)
) -> dict:
    """Write the rows of ``part`` of the cache at ``source`` to ``destination``; the new meta.

    Written to a temporary folder and renamed at the end, like ``build_cache``.
    """
    cache = CropCache(source)
    rows = np.arange(part[0], len(cache), part[1])
    if len(rows) == 0:
        raise SystemExit(f"part {part[0]}/{part[1]} of {source} holds no person")
    tmp_dir = destination.with_name(destination.name + ".partial")
    shutil.rmtree(tmp_dir, ignore_errors=True)
    tmp_dir.mkdir(parents=True)
    chunks, offsets = [], [0]
    for row in rows:
        bgr = cv2.cvtColor(np.ascontiguousarray(cache.images[row]), cv2.COLOR_RGB2BGR)
        ok, encoded = cv2.imencode(".webp", bgr, [cv2.IMWRITE_WEBP_QUALITY, quality])
        if not ok:
            raise SystemExit(f"OpenCV could not encode crop {row} of {source} as WebP")
        chunks.append(encoded.reshape(-1))
        offsets.append(offsets[-1] + encoded.size)
    np.savez(
        tmp_dir / ENCODED_IMAGES_FILE,
        data=np.concatenate(chunks),
        offsets=np.asarray(offsets, dtype=np.int64),
    )
    # compressed: the index is a fifth of a packed person otherwise (513 bytes, 193 compressed)
    np.savez_compressed(
        tmp_dir / "index.npz", **{key: value[rows] for key, value in cache.index.items()}
    )
    meta = {
        **cache.meta,
        "count": int(len(rows)),
        "image_encoding": {
            "format": "webp",
            "quality": quality,
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
    args = parser.parse_args(argv)
    if not 1 <= args.quality <= 100:
        parser.error("--quality must lie in 1..100")
    try:
        meta = encode_cache(args.source, args.destination, args.quality, args.part)
    except FileNotFoundError as exc:
        raise SystemExit(str(exc)) from None
    size = sum(f.stat().st_size for f in args.destination.iterdir()) / 2**20
    print(f"{args.destination}: {meta['count']} people, {size:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
