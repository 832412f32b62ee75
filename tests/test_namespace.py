"""The installed package: one top-level name (``hfpose``) and console scripts that run anywhere.

The wheel is built from a copy of the repository's folders and installed with ``--no-deps`` into
a fresh venv that sees the test venv's site-packages for the dependencies (numpy, ONNX Runtime,
OpenCV) through a plain path entry, so the editable install of this checkout is NOT visible
there: everything ``hfpose`` imports must come from the wheel. No network is needed.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
WALK = REPO_ROOT / "tests" / "data" / "videos" / "intel_asl_walk_1s5.mp4"
FOLDERS = ("engine", "models", "training", "hfpose_app", "assets")
OLD_TOP_LEVEL = ("engine", "models", "training", "hfpose_app")


def _run(command: list[str], cwd: Path, **kw) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    return subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, **kw
    )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The project's wheel, built from a copy so no build/ or egg-info lands in the checkout."""
    source = tmp_path_factory.mktemp("source")
    for folder in FOLDERS:
        shutil.copytree(
            REPO_ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__")
        )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO_ROOT / name, source / name)
    out = tmp_path_factory.mktemp("wheel")
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
             "--no-index", "-w", str(out), str(source)]  # fmt: skip
    result = _run(build, cwd=out)
    assert result.returncode == 0, result.stdout + result.stderr
    (built,) = out.glob("hfpose-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A fresh venv holding only the wheel; the dependencies come from this venv by path."""
    root = tmp_path_factory.mktemp("venv")
    venv.create(root, with_pip=False)
    python = root / "bin" / "python"
    site = Path(
        _run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], root
        ).stdout.strip()
    )
    # A path line, not a site dir: the .pth files there (our editable finder) are not run.
    (site / "dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    install = [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
               "--no-index", str(wheel)]  # fmt: skip
    result = _run(install, cwd=root)
    assert result.returncode == 0, result.stdout + result.stderr
    return root


@pytest.mark.slow
def test_wheel_installs_only_the_hfpose_name(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/", 1)[0] for name in names}
    assert top_level == {"hfpose", wheel.name.split("-py3")[0] + ".dist-info"}, top_level
    for shipped in (
        "hfpose/assets/hf_hrnet_18_coco_256x192.onnx",
        "hfpose/assets/detectors/nanodet_416.onnx",
        "hfpose/assets/detectors/blazepose_detector.onnx",
        "hfpose/models/configs/_base_/coco_topdown.yaml",
        "hfpose/app/__main__.py",
    ):
        assert shipped in names


@pytest.mark.slow
def test_installed_venv_finds_its_own_assets_and_not_the_old_names(installed, tmp_path):
    python = installed / "bin" / "python"
    code = (
        "import importlib.util, sys\n"
        "from hfpose.engine.runtime.model_files import asset_path\n"
        "print(asset_path('detectors/nanodet_416.onnx'))\n"
        f"print([n for n in {OLD_TOP_LEVEL!r} if importlib.util.find_spec(n)])\n"
    )
    result = _run([str(python), "-c", code], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    found, old_names = result.stdout.splitlines()
    assert Path(found).resolve().is_relative_to(installed.resolve())
    assert old_names == "[]"


@pytest.mark.slow
def test_console_script_runs_outside_the_repository(installed, tmp_path):
    """hfpose-video with the shipped HF-HRNet and NanoDet, run from a folder outside the repo."""
    out = tmp_path / "walk.mp4"
    command = [str(installed / "bin" / "hfpose-video"), str(WALK), "--out", str(out),
               "--device", "cpu", "--max-persons", "1"]  # fmt: skip
    result = _run(command, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert out.stat().st_size > 0
    help_text = _run([str(installed / "bin" / "hfpose-export"), "--help"], cwd=tmp_path)
    assert help_text.returncode == 0 and "usage: hfpose-export" in help_text.stdout


def test_no_module_imports_an_old_top_level_name():
    """Every import goes through hfpose.*: a leftover `import engine` would load a second copy."""
    offenders = []
    for folder in (*OLD_TOP_LEVEL, "tests", "benchmarks"):
        for path in (REPO_ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                offenders += [
                    f"{path.relative_to(REPO_ROOT)}: {name}"
                    for name in names
                    if name.split(".")[0] in OLD_TOP_LEVEL
                ]
    assert offenders == []
