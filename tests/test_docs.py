"""The library's documentation site builds offline and strictly, and documents every name a project imports."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import griffe

from .conftest import REPO, render


def test_the_site_builds_offline_with_strict_checks(tmp_path: Path) -> None:
    mkdocs = Path(sys.executable).parent / "mkdocs"
    env = os.environ | {"NO_MKDOCS_2_WARNING": "1"}
    completed = subprocess.run(
        [str(mkdocs), "build", "--strict", "--quiet", "--site-dir", str(tmp_path / "site")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert (tmp_path / "site" / "extending" / "index.html").is_file()


def imported_names(root: Path) -> set[str]:
    """Every `mlops_runtime...` name the project's code uses: imported by name, or as `stage.name` of a stage
    module it imports whole (`from mlops_runtime.stages import train`, then `train.tune(...)`)."""
    names = set()
    for path in (root / "src").rglob("*.py"):
        tree = ast.parse(path.read_text())
        modules = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mlops_runtime"):
                for alias in node.names:
                    dotted = f"{node.module}.{alias.name}"
                    if node.module == "mlops_runtime.stages":
                        modules[alias.asname or alias.name] = dotted
                    else:
                        names.add(dotted)
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules:
                names.add(f"{modules[node.value.id]}.{node.attr}")
    return names


def test_every_name_a_project_imports_is_documented(tmp_path: Path) -> None:
    root = render(tmp_path / "p")
    reference = (REPO / "docs" / "reference.md").read_text()
    documented = set(re.findall(r"^::: (\S+)$", reference, flags=re.MULTILINE))
    imported = imported_names(root)
    assert imported, "the project imports nothing from the library?"
    assert not imported - documented, f"docs/reference.md lacks {sorted(imported - documented)}"
    library = griffe.load("mlops_runtime", search_paths=[REPO / "runtime" / "src"])
    undocumented = [
        dotted for dotted in sorted(imported) if not library[dotted.removeprefix("mlops_runtime.")].docstring
    ]
    assert not undocumented, f"no docstring: {undocumented}"


def test_the_ml_test_score_page_lists_every_item_as_the_scorecard_names_it() -> None:
    from mlops_runtime.scorecard import ITEMS

    page = (REPO / "docs" / "ml-test-score.md").read_text()
    missing = [item.id for item in ITEMS if f"| {item.id} | {item.title} |" not in page]
    assert not missing, f"docs/ml-test-score.md misses {missing}"
