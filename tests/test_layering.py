"""The floors: each folder imports only the floors below it, and no module imports itself back.

Read from the sources with ``ast`` (nothing is imported), counting imports inside functions too,
since a function-level import that closes a cycle is still a cycle. Floors, bottom up:
``models`` (network, processing, metadata) <- ``engine`` <- ``training`` <- export tooling
(``training/export``) and the app (``hfpose_app``), which stand side by side.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from functools import cache
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
# folder -> installed name (pyproject.toml's package-dir)
FOLDERS = {"models": "models", "engine": "engine", "training": "training", "hfpose_app": "app"}
# floor -> the floors its modules may import (its own included)
ALLOWED = {
    "models": {"models"},
    "engine": {"models", "engine"},
    "training": {"models", "engine", "training"},
    "export": {"models", "engine", "training", "export"},
    "app": {"models", "engine", "app"},
}
# What a function may import late: optional extras, the GUI toolkit, and core packages slow to
# import that a command's --help and the runtime path load only when used.
HEAVY = {
    "torch", "openvino", "mediapipe", "PySide6", "ai_edge_litert", "ai_edge_quantizer",
    "litert_torch", "tensorflow", "tf2onnx", "pycocotools", "onnxconverter_common",
    "onnx", "onnxruntime", "av", "scipy", "cv2", "tqdm", "google", "shiboken6", "pyqtgraph",
}  # fmt: skip
# the standard library's modules that exist on one platform only: imported where they apply
PLATFORM_ONLY = {"fcntl", "msvcrt"}
# runs on a lent machine where nothing is installed: it makes the package importable first,
# so everything it needs beyond the standard library is imported late, where it is used
BARE_MACHINE = {"hfpose.training.lease.device"}


@dataclass(frozen=True)
class Import:
    source: str
    target: str
    line: int
    in_function: bool


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
    parts[0] = FOLDERS[parts[0]]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(["hfpose", *parts])


def floor(module: str) -> str:
    return "export" if module.startswith("hfpose.training.export") else module.split(".")[1]


def _modules() -> dict[str, Path]:
    return {
        module_name(path): path for folder in FOLDERS for path in (REPO_ROOT / folder).rglob("*.py")
    }


def _is_type_checking_block(node: ast.AST) -> bool:
    if not isinstance(node, ast.If):
        return False
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(module: str, path: Path, modules: dict[str, Path]) -> list[Import]:
    found: list[Import] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                targets = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                # `from hfpose.models import hf_hrnet` names a module, not an attribute
                targets = [
                    f"{child.module}.{alias.name}"
                    if f"{child.module}.{alias.name}" in modules
                    else child.module
                    for alias in child.names
                ]
            else:
                targets = []
            found.extend(Import(module, target, child.lineno, in_function) for target in targets)
            if _is_type_checking_block(child):
                continue  # read by type checkers only: no import at run time
            nested = isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            visit(child, in_function or nested)

    visit(ast.parse(path.read_text(encoding="utf-8")), False)
    return found


@cache
def _project_graph() -> tuple[dict[str, Path], tuple[Import, ...]]:
    modules = _modules()
    return modules, tuple(i for m, p in modules.items() for i in _imports(m, p, modules))


def _loads_heavy(module: str, modules: dict[str, Path], imports: tuple[Import, ...]) -> bool:
    """True when importing ``module`` loads a heavy package (its own or a dependency's
    module-level imports)."""
    seen, todo = set(), [module]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        for i in imports:
            if i.source == current and not i.in_function:
                if i.target.split(".")[0] in HEAVY:
                    return True
                if i.target in modules:
                    todo.append(i.target)
    return False


def test_every_project_import_points_down_or_sideways_within_its_floor():
    modules, imports = _project_graph()
    upward = [
        f"{modules[i.source].relative_to(REPO_ROOT)}:{i.line} imports {i.target}"
        for i in imports
        if i.target.startswith("hfpose.") and floor(i.target) not in ALLOWED[floor(i.source)]
    ]
    assert upward == []


def test_no_import_cycle_counting_function_level_imports():
    modules, imports = _project_graph()
    graph: dict[str, set[str]] = {module: set() for module in modules}
    for i in imports:
        if i.target in modules and i.target != i.source:
            graph[i.source].add(i.target)
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as error:
        cycle = reversed(error.args[1])  # graphlib lists it against the import direction
        raise AssertionError(f"import cycle: {' -> '.join(cycle)}") from None


def test_function_level_imports_are_only_for_heavy_dependencies():
    """A late import hides a module's real dependencies; it is kept only where the module it
    names is slow to load or optional (heavy itself, or a project module that loads one)."""
    modules, imports = _project_graph()
    stdlib = set(sys.stdlib_module_names)
    light = []
    for i in imports:
        if not i.in_function or i.source in BARE_MACHINE:
            continue
        top = i.target.split(".")[0]
        if top == "hfpose":
            heavy = i.target in modules and _loads_heavy(i.target, modules, imports)
        else:
            heavy = (top in HEAVY and top not in stdlib) or top in PLATFORM_ONLY
        if not heavy:
            light.append(f"{modules[i.source].relative_to(REPO_ROOT)}:{i.line} {i.target}")
    assert light == []


def test_the_reader_sees_late_imports_and_floors():
    """The checks above rest on this reader: it must see an import inside a method and name the
    floors right, or they would pass on an empty graph."""
    modules, imports = _project_graph()
    assert floor("hfpose.training.export.export_cli") == "export"
    assert floor("hfpose.app.worker") == "app" and floor("hfpose.models.metainfo") == "models"
    sessions = [
        i for i in imports if i.source == "hfpose.engine.runtime.sessions" and i.in_function
    ]
    assert "hfpose.models.hf_hrnet" in {i.target for i in sessions}
    assert _loads_heavy("hfpose.models.hf_hrnet", modules, imports)
    assert not _loads_heavy("hfpose.models.metainfo", modules, imports)
