"""dvc.yaml lists, for each stage, exactly the project modules its code imports, and uv.lock.

So editing a project module (features.py, estimators.py, ...) re-runs exactly the stages that use it,
a new version of the library that runs the stages (mlops-runtime, pinned in uv.lock) re-runs them
all, and editing the service (serving.py) re-runs none. The imports are read from the source
(nothing is run), from the stage's module through every project module it reaches, including
imports inside functions; imports under `if TYPE_CHECKING:` do not run and do not count, nor do
packages' `__init__.py` files (no code).
This test needs only the standard library and PyYAML.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
(PACKAGE,) = (path for path in (ROOT / "src").iterdir() if (path / "__init__.py").exists())
STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement that runs: module level or in functions, not under TYPE_CHECKING."""
    found: list[ast.Import | ast.ImportFrom] = []
    pending: list[ast.AST] = [tree]
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        elif isinstance(node, ast.If) and _is_type_checking(node):
            pending.extend(node.orelse)
            continue
        pending.extend(ast.iter_child_nodes(node))
    return found


def _module_file(package_dir: Path, dotted: str) -> Path | None:
    """The project file of a module path below `package_dir`, if it is one."""
    base = package_dir.joinpath(*dotted.split(".")) if dotted else package_dir
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported_project_modules(path: Path, package: Path = PACKAGE) -> set[Path]:
    """The modules of `package` that `path` imports directly."""
    found: set[Path] = set()
    for node in _imports(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [(package.parent, alias.name) for alias in node.names]
        elif node.level:  # relative: from ..metrics import score, from .. import tracking
            base = path.parent
            for _ in range(node.level - 1):
                base = base.parent
            module = node.module or ""
            targets = [(base, module)] + [(base, f"{module}.{alias.name}".strip(".")) for alias in node.names]
        else:
            module = node.module or ""
            targets = [(package.parent, module)] + [(package.parent, f"{module}.{alias.name}") for alias in node.names]
        for base, dotted in targets:
            file = _module_file(base, dotted)
            if file is not None and package in file.parents:
                found.add(file)
    return found


def import_closure(path: Path, package: Path = PACKAGE) -> set[Path]:
    """`path` and every module of `package` it reaches through imports, without packages' __init__.py."""
    seen: set[Path] = set()
    pending = [path]
    while pending:
        module = pending.pop()
        if module in seen:
            continue
        seen.add(module)
        pending.extend(imported_project_modules(module, package))
    return {module for module in seen if module.name != "__init__.py"}


def listed_code(stage: str) -> set[str]:
    source = f"src/{PACKAGE.name}/"
    return {dep for dep in STAGES[stage].get("deps", []) if isinstance(dep, str) and dep.startswith(source)}


@pytest.mark.parametrize("stage", list(STAGES))
def test_each_stage_lists_exactly_the_modules_its_code_imports(stage: str) -> None:
    module = PACKAGE / "pipeline" / f"{stage}.py"
    expected = {str(path.relative_to(ROOT)) for path in import_closure(module)}

    listed = listed_code(stage)

    assert not expected - listed, f"dvc.yaml stage {stage} misses {sorted(expected - listed)}"
    assert not listed - expected, f"dvc.yaml stage {stage} lists modules it never imports: {sorted(listed - expected)}"


@pytest.mark.parametrize("stage", list(STAGES))
def test_each_stage_depends_on_the_locked_library_version(stage: str) -> None:
    assert "uv.lock" in STAGES[stage]["deps"]


def test_the_closure_follows_lazy_imports_and_skips_type_checking_ones(tmp_path: Path) -> None:
    package = tmp_path / "demo"
    (package / "pipeline").mkdir(parents=True)
    files = {
        "__init__.py": "",
        "pipeline/__init__.py": "",
        "pipeline/stage.py": (
            "from typing import TYPE_CHECKING\nfrom .. import shared\n"
            "if TYPE_CHECKING:\n    from ..typing_only import Hint\n"
            "def run():\n    from ..lazy import helper\n    import demo.absolute\n"
        ),
        "shared.py": "from .deep import value\n",
        "deep.py": "import json\n",
        "lazy.py": "",
        "absolute.py": "",
        "typing_only.py": "",
    }
    for name, text in files.items():
        (package / name).write_text(text)

    closure = import_closure(package / "pipeline" / "stage.py", package)

    names = {str(path.relative_to(package)) for path in closure}
    assert names == {"pipeline/stage.py", "shared.py", "deep.py", "lazy.py", "absolute.py"}
