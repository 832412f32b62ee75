"""hfpose-train (training/run/train_cli.py): a bad config key, a missing annotation file or image
is named in one line and nothing is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from hfpose.training.run.checkpointing import LATEST
from tests.helpers import COCO_IMAGES, COCO_JSON, small_options

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def test_bad_config_key_and_missing_paths_are_named(tmp_path: Path, capsys) -> None:
    from hfpose.training.run.train_cli import main

    assert main(["hf_hrnet_18_coco_256x192", "--cfg-options", "optimiser.lr=1"]) == 2
    assert "optimiser" in capsys.readouterr().err

    missing_ann = tmp_path / "nope.json"
    code = main(["hf_hrnet_18_coco_256x192", "--work-dir", str(tmp_path / "w"),
                 "--cfg-options", f"data.train.ann_file={missing_ann}"])  # fmt: skip
    assert code == 1 and f"annotation file not found: {missing_ann}" in capsys.readouterr().err

    cfg_options = small_options(COCO_JSON, **{"data.train.img_prefix": tmp_path / "no_images"})
    code = main(["hf_hrnet_18_coco_256x192", "--work-dir", str(tmp_path / "w"), "--cfg-options",
                 *cfg_options])  # fmt: skip
    assert code == 1 and str(tmp_path / "no_images") in capsys.readouterr().err

    images = tmp_path / "three_images"
    images.mkdir()
    for name in ("000000000785.jpg", "000000040083.jpg", "000000196141.jpg"):
        (images / name).write_bytes((COCO_IMAGES / name).read_bytes())
    cfg_options = small_options(COCO_JSON, **{"data.train.img_prefix": images})
    code = main(["hf_hrnet_18_coco_256x192", "--work-dir", str(tmp_path / "w"), "--cfg-options",
                 *cfg_options])  # fmt: skip
    assert code == 1 and str(images / "000000197388.jpg") in capsys.readouterr().err
    assert not (tmp_path / "w" / LATEST).exists()
