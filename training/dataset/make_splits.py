"""Write the fixed validation lists of the shipped model's data (never trained on).

Rule: an image is in validation when its file name is among the ``count`` names with the smallest
``sha256(f"{SEED}:{file_name}")``. A hash of the name, unlike a shuffled index, does not depend
on the annotation file's order, on numpy's random generator or on the platform, so the lists can be
re-derived anywhere and a renamed or added image does not reshuffle the others. MPII is split by
frame, so every person of a validation frame is held out with it. Everything not listed is train.

    python -m hfpose.training.dataset.make_splits --lspet ../shared/datasets/lspet/lspet_coco17.json \
        --mpii ../shared/datasets/mpii_train/mpii_train_coco17.json --out-dir training/data/splits
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Iterable
from pathlib import Path

SEED = "hfpose-val-v1"
LSPET_VAL_IMAGES = 500
MPII_VAL_FRAMES = 100


def split_key(file_name: str, seed: str = SEED) -> str:
    return hashlib.sha256(f"{seed}:{file_name}".encode()).hexdigest()


def choose_validation(file_names: Iterable[str], count: int, seed: str = SEED) -> list[str]:
    """The ``count`` names with the smallest seeded hash, returned sorted by name."""
    names = sorted(set(file_names))
    if count > len(names):
        raise ValueError(f"asked for {count} validation images but only {len(names)} exist")
    return sorted(sorted(names, key=lambda n: split_key(n, seed))[:count])


def read_split(path: str | Path) -> set[str]:
    """File names listed one per line in a split file (blank lines and # comments ignored)."""
    lines = Path(path).read_text().splitlines()
    return {line.strip() for line in lines if line.strip() and not line.startswith("#")}


def _image_names(annotation_file: Path) -> list[str]:
    try:
        data = json.loads(annotation_file.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise SystemExit(f"cannot read annotations {annotation_file}: {error}") from None
    return [image["file_name"] for image in data["images"]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lspet", type=Path, required=True, help="lspet_coco17.json")
    parser.add_argument("--mpii", type=Path, required=True, help="mpii_train_coco17.json")
    parser.add_argument("--out-dir", type=Path, default=Path("training/data/splits"))
    args = parser.parse_args(argv)

    args.out_dir.mkdir(parents=True, exist_ok=True)
    for annotation_file, count, out_name in (
        (args.lspet, LSPET_VAL_IMAGES, "lspet_val.txt"),
        (args.mpii, MPII_VAL_FRAMES, "mpii_val.txt"),
    ):
        names = choose_validation(_image_names(annotation_file), count)
        (args.out_dir / out_name).write_text("\n".join(names) + "\n")
        print(f"{args.out_dir / out_name}: {len(names)} validation images")
    return 0


if __name__ == "__main__":
    sys.exit(main())
