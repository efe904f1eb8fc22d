"""Render property test: a project is lint-clean whatever its name (no installs).

The package name lands in imports, console-script calls and patch targets of the generated code, so a
line that fits with `churn_model` can be too long (E501) with a 40-character name, or be joined by
`ruff format` with a 1-character one, and an import block can sort differently (I001). Every task,
data source and model library is rendered with names of 1 to 40 characters that copier.yml accepts:
package names given directly, and project names (capitals, spaces, digits, punctuation) from which
the slug and the package are derived.
"""

from __future__ import annotations

import itertools
import re

import pytest
import yaml
from hypothesis import Phase, example, given, settings
from hypothesis import strategies as st

from . import test_render
from .conftest import REPO, render
from .test_render import LIBRARIES, SOURCES, TASKS

QUESTIONS = yaml.safe_load((REPO / "copier.yml").read_text())
MAX_LENGTH = 40


def validator_pattern(question: str) -> re.Pattern[str]:
    """The regular expression of a question's validator in copier.yml (`regex_search('...')`)."""
    match = re.search(r"regex_search\('([^']+)'\)", QUESTIONS[question]["validator"])
    assert match, f"copier.yml: no regex_search in the validator of {question}"
    return re.compile(match.group(1))


SLUG = validator_pattern("project_slug")
PACKAGE = validator_pattern("package_name")
# Names copier.yml refuses: keywords, the project's dependencies, and the standard library's modules
# (a package named `time` would shadow the module for every import in the project).
REFUSED = {
    name
    for question in ("python_keywords", "reserved_package_names", "standard_modules")
    for name in QUESTIONS[question]["default"]
}


def derived_package(project_name: str) -> str:
    """copier.yml's defaults: project_name -> project_slug -> package_name."""
    slug = re.sub(r"^-+|-+$", "", re.sub(r"[^a-z0-9]+", "-", project_name.lower().strip()))
    return slug.replace("-", "_")


def valid_package(name: str) -> bool:
    return bool(PACKAGE.search(name)) and name not in REFUSED


def valid_project_name(name: str) -> bool:
    package = derived_package(name)
    return bool(name.strip()) and bool(SLUG.search(package.replace("_", "-"))) and valid_package(package)


packages = st.from_regex(rf"[a-z_][a-z0-9_]{{0,{MAX_LENGTH - 1}}}", fullmatch=True).filter(valid_package)
project_names = st.from_regex(rf"[A-Za-z][A-Za-z0-9 .!-]{{0,{MAX_LENGTH - 1}}}", fullmatch=True).filter(
    valid_project_name
)
names = st.one_of(
    packages.map(lambda package: {"package_name": package}),
    project_names.map(lambda project: {"project_name": project}),
)

COMBINATIONS = [
    {"task": task, "data_source": source, "model_library": library}
    for task, source, library in itertools.product(TASKS, SOURCES, LIBRARIES)
]
SHORTEST = {"project_name": "Q"}  # slug q, package q
LONGEST = {"project_name": "Customer Lifetime Value Forecasting Tool"}  # 40 characters, and so is its package
assert len(LONGEST["project_name"]) == len(derived_package(LONGEST["project_name"])) == MAX_LENGTH


@pytest.mark.parametrize("answers", COMBINATIONS, ids=test_render.matrix_id)
# derandomize: the names are drawn from a seed made of the test id (Hypothesis' pytest plugin gives each
# parametrized case its own), so every run draws the same names and passes or fails the same way, while
# the 27 cases still draw different names. Hypothesis draws the simplest name first (package `_`, which
# also sorts before every letter), then one random name: with the two explicit extremes, 4 renders of
# about a second per case. No shrinking, since each step would render a project again: a failure shows
# the names as drawn.
@settings(
    derandomize=True,
    database=None,
    max_examples=2,
    deadline=None,
    phases=(Phase.explicit, Phase.generate),
)
@given(name=names)
@example(name=SHORTEST)
@example(name=LONGEST)
def test_any_valid_name_renders_lint_clean(
    answers: dict[str, str], name: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    root = render(tmp_path_factory.mktemp("names") / "project", **answers, **name)
    package = name.get("package_name") or derived_package(name["project_name"])
    assert yaml.safe_load((root / ".copier-answers.yml").read_text())["package_name"] == package
    assert (root / "src" / package / "cli.py").is_file()
    test_render.test_generated_code_is_lint_clean((root, answers))  # ruff check and ruff format --check


def test_the_strategies_refuse_what_copier_refuses() -> None:
    """Names copier.yml refuses are never drawn (copier's own messages: tests/test_render.py)."""
    assert not any(valid_package(name) for name in ("class", "mlflow", "tests", "9lives", "Churn", "churn-model"))
    assert valid_package("q")
    assert valid_package("_private_model_2")
    assert valid_project_name("Q")
    assert valid_project_name("  Fraud Detector 2!  ")
    assert not valid_project_name("2 Fast")  # the slug would start with a digit
    assert not valid_project_name("If")  # the package would be `if`
    assert not valid_project_name("!!")  # nothing left for the slug
