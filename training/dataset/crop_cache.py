"""Person crops cut once from the full images, so training never decodes a full image.

Training on these CPUs runs at about 8 images per second; decoding and cropping full images in
the loop would cost as much as the model. Each annotated person is therefore cut ONCE, at a fixed
scale, with enough context around the network's box that scale (+-25%), rotation (+-30 degrees)
and centre-shift augmentations stay inside the crop, and the training pipeline then treats a
cached crop exactly like a full image with a box: it receives ``center``/``scale`` (and the box,
keypoints, ...) in the cached image's coordinates and warps it with the usual affine crop.

Geometry (mmpose 0.x conventions, :mod:`hfpose.models.processing`): the person's box gives the network
box with ``bbox_xywh_to_cs(box, 192/256, padding 1.25)``; the cached crop is the square of side
``CONTEXT`` x that box's height centred on it, resized to ``CROP_SIZE`` x ``CROP_SIZE``. So the
network box is 256 px tall in the cache (the 256x192 input's own resolution: LSPET's boxes are
enlarged by a median 1.1x to get there, MPII's shrunk by 0.8x, so little detail is lost) and the
crop is 1.5x the input. At rest (no augmentation) the network crop is an exact copy of the cache's
centre; rotation by 30 degrees at scale 1.25 reaches just past the crop's corners (zero there, as
beyond a full image's border).
The transform is a uniform scaling plus translation (no rotation), stored per person.

Format of one cache (a folder, e.g. ``/work/cache/lspet_train``):

- ``images.npy``: uint8 (N, CROP_SIZE, CROP_SIZE, 3) RGB, read with ``np.load(mmap_mode="r")``.
- ``index.npz``, one row per person, all geometry in CACHE-image pixels:
  ``to_crop`` (N,2,3) float64 affine from original-image pixels to the cache image
  (``cv2.invertAffineTransform`` gives the way back); ``keypoints`` (N,17,3) float32 x, y, v
  (COCO-17; v=0 rows are zero); ``pseudo_mask`` (N,17) bool, True where the keypoint is a
  pseudo-label (:mod:`hfpose.training.teacher.blazepose_label`, :mod:`hfpose.training.teacher.label_cli`), not a human label;
  ``label_weight`` (N,17) float32, each label's loss weight before gating
  (:mod:`hfpose.training.dataset.label_weights`: 1 human, the teacher's score for its points; caches built
  before it existed lack it and weigh every label 1); ``bbox`` (N,4) x, y,
  w, h; ``center`` (N,2) and ``scale`` (N,2) (``scale`` in units of 200 px, padding 1.25 and
  192:256 aspect included, as ``bbox_xywh_to_cs`` gives them); ``head_size`` (N,) float32, the
  PCKh normaliser (MPII; NaN for LSPET); ``extra_points`` (N,4,3) float32 the dataset's head and
  torso points outside COCO's slots, named in ``meta.json`` (LSPET: neck, head top, for the
  torso-normalised PCK; MPII: pelvis, thorax, upper neck, head top), unused rows zero;
  ``image_id``, ``annotation_id`` (N,) int64; ``file_name`` (N,) str.
- ``meta.json``: format version, dataset, split, sizes, source annotation file and its sha256,
  the validation list used, keypoint names, extra point names, build time.

    hfpose-cache-crops training/data/lspet_coco17_pseudo.json.gz ../shared/datasets/lspet/images \
        --dataset lspet --val-list training/data/splits/lspet_val.txt --out-dir /work/cache
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from hfpose.engine.runtime.auto import file_sha256
from hfpose.models.metainfo import COCO
from hfpose.models.processing import PIXEL_STD, bbox_xywh_to_cs, get_affine_transform
from hfpose.training.dataset.coco_files import (
    EXTRA_POINT_NAMES,
    extra_point_field,
    extra_points_of,
    read_json,
)
from hfpose.training.dataset.label_weights import label_weights
from hfpose.training.dataset.make_splits import read_split

FORMAT_VERSION = 1
NETWORK_INPUT_WH = (192, 256)
CONTEXT = 1.5  # crop side / network box height
CROP_SIZE = int(round(CONTEXT * NETWORK_INPUT_WH[1]))  # 384: network box is 256 px tall
MAX_EXTRA_POINTS = 4
ENCODED_IMAGES_FILE = (
    "images_webp.npz"  # a packed cache's crops (hfpose.training.dataset.encode_cache)
)


def crop_geometry(bbox_xywh: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Affine (2,3) original -> cache image, and the network box's centre/scale in the cache."""
    aspect = NETWORK_INPUT_WH[0] / NETWORK_INPUT_WH[1]
    centers, scales = bbox_xywh_to_cs(np.asarray(bbox_xywh, dtype=np.float64)[None], aspect)
    side = CONTEXT * scales[0, 1]  # in PIXEL_STD units, like scale
    to_crop = get_affine_transform(centers[0], (side, side), 0.0, (CROP_SIZE, CROP_SIZE))
    zoom = CROP_SIZE / (side * PIXEL_STD)
    center = np.array([CROP_SIZE / 2.0, CROP_SIZE / 2.0])
    return to_crop, center, scales[0] * zoom


def cut_crop(image: np.ndarray, to_crop: np.ndarray) -> np.ndarray:
    """Warp ``image`` into the cache crop; shrinking goes through an area resize first.

    Bilinear warping samples only 4 pixels per output pixel, so shrinking with it aliases; the
    cache is resampled again by every augmentation, so it should hold the cleanest version.
    """
    zoom = to_crop[0, 0]  # uniform scaling, no rotation
    if zoom < 1.0:
        height, width = image.shape[:2]
        size = (max(1, round(width * zoom)), max(1, round(height * zoom)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        # cv2.resize maps pixel centres: x' = (x + 0.5) * size / width - 0.5.
        sx, sy = size[0] / width, size[1] / height
        resized_from_original = np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5]])
        to_crop = to_crop @ np.vstack([cv2.invertAffineTransform(resized_from_original), [0, 0, 1]])
    return cv2.warpAffine(image, to_crop, (CROP_SIZE, CROP_SIZE), flags=cv2.INTER_LINEAR)


def _map_points(points: np.ndarray, to_crop: np.ndarray) -> np.ndarray:
    """(K,3) x, y, v -> the same in cache coordinates; unlabelled (v=0) points stay zero."""
    out = np.zeros_like(points, dtype=np.float32)
    labelled = points[:, 2] > 0
    out[labelled, :2] = points[labelled, :2] @ to_crop[:, :2].T + to_crop[:, 2]
    out[labelled, 2] = points[labelled, 2]
    return out


def build_cache(
    coco: dict,
    image_dir: Path,
    out_dir: Path,
    dataset: str,
    split: str,
    file_names: set[str] | None,
    source: dict | None = None,
) -> dict:
    """Cut every labelled person of the images in ``file_names`` (all if None) into ``out_dir``.

    Written to a temporary folder and renamed at the end, so an interrupted build never leaves a
    cache that looks complete. Returns the meta dict.
    """
    started = time.perf_counter()
    images = {
        image["id"]: image
        for image in coco["images"]
        if file_names is None or image["file_name"] in file_names
    }
    people = [
        annotation
        for annotation in coco["annotations"]
        if annotation["image_id"] in images
        and np.any(np.asarray(annotation["keypoints"]).reshape(17, 3)[:, 2] > 0)
        and not annotation.get("iscrowd", 0)
    ]
    people.sort(key=lambda a: (images[a["image_id"]]["file_name"], a["id"]))
    if not people:
        raise SystemExit(f"no labelled person in the {split} split of {dataset}")

    count = len(people)
    tmp_dir = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(tmp_dir, ignore_errors=True)
    tmp_dir.mkdir(parents=True)
    crops = np.lib.format.open_memmap(
        tmp_dir / "images.npy", mode="w+", dtype=np.uint8, shape=(count, CROP_SIZE, CROP_SIZE, 3)
    )
    index = {
        "to_crop": np.zeros((count, 2, 3), np.float64),
        "keypoints": np.zeros((count, 17, 3), np.float32),
        "pseudo_mask": np.zeros((count, 17), bool),
        "label_weight": np.zeros((count, 17), np.float32),
        "bbox": np.zeros((count, 4), np.float64),
        "center": np.zeros((count, 2), np.float64),
        "scale": np.zeros((count, 2), np.float64),
        "head_size": np.full(count, np.nan, np.float32),
        "extra_points": np.zeros((count, MAX_EXTRA_POINTS, 3), np.float32),
        "image_id": np.zeros(count, np.int64),
        "annotation_id": np.zeros(count, np.int64),
        "file_name": np.array([images[a["image_id"]]["file_name"] for a in people]),
    }
    extra_names: tuple[str, ...] = ()
    loaded_name, rgb = None, None
    for row, annotation in enumerate(people):
        file_name = images[annotation["image_id"]]["file_name"]
        if file_name != loaded_name:
            bgr = cv2.imread(str(image_dir / file_name), cv2.IMREAD_COLOR)
            if bgr is None:
                shutil.rmtree(tmp_dir, ignore_errors=True)
                raise SystemExit(f"cannot read image {image_dir / file_name}")
            rgb, loaded_name = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), file_name
        to_crop, center, scale = crop_geometry(annotation["bbox"])
        crops[row] = cut_crop(rgb, to_crop)
        zoom = to_crop[0, 0]  # uniform scaling, no rotation
        x, y, w, h = annotation["bbox"]
        index["to_crop"][row] = to_crop
        index["keypoints"][row] = _map_points(
            np.asarray(annotation["keypoints"], np.float64).reshape(17, 3), to_crop
        )
        index["pseudo_mask"][row] = np.asarray(annotation.get("pseudo_keypoints", [0] * 17)) > 0
        index["label_weight"][row] = label_weights(annotation, 17)
        index["bbox"][row] = (*(np.array([x, y]) * zoom + to_crop[:, 2]), w * zoom, h * zoom)
        index["center"][row] = center
        index["scale"][row] = scale
        if "head_size" in annotation:
            index["head_size"][row] = annotation["head_size"] * zoom
        extra = extra_points_of(annotation)
        field = extra_point_field(annotation)
        extra_names = EXTRA_POINT_NAMES[field] if field else ()
        index["extra_points"][row, : len(extra)] = _map_points(extra, to_crop)
        index["image_id"][row] = annotation["image_id"]
        index["annotation_id"][row] = annotation["id"]
    crops.flush()
    del crops
    np.savez(tmp_dir / "index.npz", **index)
    meta = {
        "format_version": FORMAT_VERSION,
        "dataset": dataset,
        "split": split,
        "count": count,
        "images": len({a["image_id"] for a in people}),
        "crop_size": CROP_SIZE,
        "context": CONTEXT,
        "network_input_wh": list(NETWORK_INPUT_WH),
        "keypoint_names": list(COCO.keypoint_names),
        "extra_point_names": list(extra_names),
        "source": source or {},
        "build_seconds": round(time.perf_counter() - started, 1),
    }
    (tmp_dir / "meta.json").write_text(json.dumps(meta, indent=1))
    replace_folder(tmp_dir, out_dir)
    return meta


def replace_folder(finished: Path, destination: Path) -> None:
    """Put a finished cache folder in place of ``destination`` by renames: deleting the old
    cache in place first left, when stopped during the delete, a half-deleted cache under the
    finished name."""
    old = destination.with_name(destination.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if destination.exists():
        destination.rename(old)
    finished.rename(destination)
    shutil.rmtree(old, ignore_errors=True)


class EncodedImages:
    """The crops of a packed cache (``hfpose.training.dataset.encode_cache``): WebP bytes, decoded per row.

    Indexing gives the same RGB uint8 (side, side, 3) array ``images.npy`` would: a crop stored
    smaller is resized back (pixel centres kept, so the index's geometry holds unchanged).
    """

    def __init__(self, path: Path, side: int = CROP_SIZE) -> None:
        with np.load(path) as packed:
            self._data, self._offsets = packed["data"], packed["offsets"]
        self.side = side

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def encoded(self, row: int) -> np.ndarray:
        """The WebP bytes of one crop."""
        return self._data[self._offsets[row] : self._offsets[row + 1]]

    def __getitem__(self, row: int) -> np.ndarray:
        bgr = cv2.imdecode(self.encoded(row), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f"crop {row} of a packed cache does not decode (corrupt file?)")
        if bgr.shape[:2] != (self.side, self.side):
            bgr = cv2.resize(bgr, (self.side, self.side), interpolation=cv2.INTER_LINEAR)
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


class CropCache:
    """Read one cache folder; items look like a full image with a person box.

    The image array is memory-mapped on first access in each process (and dropped when pickled),
    so DataLoader workers share the page cache instead of copying gigabytes.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        meta_file = self.path / "meta.json"
        if not meta_file.is_file():
            raise FileNotFoundError(f"no crop cache at {self.path} (missing meta.json)")
        self.meta = json.loads(meta_file.read_text())
        if self.meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"crop cache {self.path} has format {self.meta.get('format_version')}, "
                f"this code reads {FORMAT_VERSION}: rebuild it with hfpose-cache-crops"
            )
        with np.load(self.path / "index.npz") as index:
            self.index = {key: index[key] for key in index.files}
        self._images: np.ndarray | None = None

    @property
    def images(self) -> np.ndarray | EncodedImages:
        """Crops by row: the memory-mapped array, or WebP decoded per row in a packed cache."""
        if self._images is None:
            if (self.path / "images.npy").is_file():
                self._images = np.load(self.path / "images.npy", mmap_mode="r")
            elif (self.path / ENCODED_IMAGES_FILE).is_file():
                side = int(self.meta.get("crop_size", CROP_SIZE))
                self._images = EncodedImages(self.path / ENCODED_IMAGES_FILE, side)
            else:
                raise FileNotFoundError(
                    f"crop cache {self.path} has neither images.npy nor {ENCODED_IMAGES_FILE}"
                )
        return self._images

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_images"] = None
        return state

    def __len__(self) -> int:
        return int(self.meta["count"])

    def __getitem__(self, i: int) -> dict:
        if not -len(self) <= i < len(self):
            raise IndexError(f"person {i} out of range for a cache of {len(self)}")
        row = {key: value[i] for key, value in self.index.items()}
        to_crop = row["to_crop"]
        return {
            "image": np.array(self.images[i]),
            "keypoints": row["keypoints"].copy(),
            "pseudo_mask": row["pseudo_mask"].copy(),
            "center": row["center"].copy(),
            "scale": row["scale"].copy(),
            "bbox": row["bbox"].copy(),
            "head_size": float(row["head_size"]),
            "extra_points": row["extra_points"].copy(),
            "to_crop": to_crop.copy(),
            "crop_to_image": cv2.invertAffineTransform(to_crop),
            "image_id": int(row["image_id"]),
            "annotation_id": int(row["annotation_id"]),
            "file_name": str(row["file_name"]),
            "dataset": self.meta["dataset"],
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("annotations", type=Path, help="COCO json (.json or .json.gz)")
    parser.add_argument("image_dir", type=Path, help="folder holding the json's images")
    parser.add_argument("--dataset", required=True, help="name, e.g. lspet or mpii")
    parser.add_argument(
        "--val-list", type=Path, help="validation file names; builds <dataset>_train and _val"
    )
    parser.add_argument("--out-dir", type=Path, default=Path("/work/cache"))
    args = parser.parse_args(argv)

    for path, kind in ((args.annotations, "annotation file"), (args.val_list, "validation list")):
        if path is not None and not path.is_file():
            raise SystemExit(f"{kind} not found: {path}")
    if not args.image_dir.is_dir():
        raise SystemExit(f"image folder not found: {args.image_dir}")
    coco = read_json(args.annotations)
    source = {
        "annotations": str(args.annotations),
        "annotations_sha256": file_sha256(args.annotations),
        "image_dir": str(args.image_dir),
    }
    all_names = {image["file_name"] for image in coco["images"]}
    if args.val_list is None:
        splits = {"all": all_names}
    else:
        val_names = read_split(args.val_list)
        missing = val_names - all_names
        if missing:
            raise SystemExit(f"{len(missing)} names of {args.val_list} are not in the json")
        source["val_list"] = str(args.val_list)
        source["val_list_sha256"] = file_sha256(args.val_list)
        splits = {"train": all_names - val_names, "val": val_names}
    for split, names in splits.items():
        out = args.out_dir / f"{args.dataset}_{split}"
        try:
            meta = build_cache(coco, args.image_dir, out, args.dataset, split, names, source)
        except KeyboardInterrupt:
            shutil.rmtree(out.with_name(out.name + ".partial"), ignore_errors=True)
            print(f"hfpose-cache-crops: interrupted; {out} was not written (a cache already "
                  "there is unchanged)", file=sys.stderr)  # fmt: skip
            return 130
        size = (out / "images.npy").stat().st_size / 2**30
        print(
            f"{out}: {meta['count']} people from {meta['images']} images, "
            f"{size:.2f} GiB, {meta['build_seconds']} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
