"""The generated project is what a newcomer can own: its size, and why each file that every answer set renders
the same is still the project's rather than the library's."""

from __future__ import annotations

import hashlib
from pathlib import Path

from .conftest import render
from .test_render import MATRIX, project_files

YOURS = "the user's to edit"
# Every file rendered byte for byte the same for every answer set of the matrix, and why it belongs to the
# project (machinery that is the same everywhere belongs in mlops-runtime instead).
IDENTICAL_AND_WHY = {
    ".dockerignore": f"{YOURS}: what the image build leaves out",
    ".dvc/.gitignore": "DVC's own file in the project's repository",
    ".dvcignore": f"{YOURS}: what DVC leaves out",
    ".github/dependabot.yml": f"{YOURS}: the repository's dependency-update policy (schedule, reviewers)",
    ".github/model-report.sh": f"{YOURS}: what the pull request's model report shows",
    ".gitignore": f"{YOURS}: the repository's ignore rules",
    ".pre-commit-config.yaml": f"{YOURS}: the team's hooks",
    "data/feedback/README.md": "explains the project's labelled-feedback folder, next to it",
    "deploy/postgres/init.sql": f"{YOURS}: the team stack's databases and users",
    "deploy/k8s/base/deployment.yaml": f"{YOURS}: the cluster's replicas, probes, resources and Secret",
    "deploy/k8s/base/hpa.yaml": f"{YOURS}: how the service scales on the team's cluster",
    "deploy/k8s/base/kustomization.yaml": f"{YOURS}: what the team deploys to Kubernetes",
    "deploy/k8s/base/networkpolicy.yaml": f"{YOURS}: who may reach the service, and what it may reach",
    "deploy/k8s/base/pdb.yaml": f"{YOURS}: the availability kept through node drains",
    "deploy/k8s/base/service.yaml": f"{YOURS}: how the cluster reaches the service",
    "deploy/k8s/kserve/images.yaml": f"{YOURS}: the KServe deployment's image, for kustomize",
    "deploy/k8s/kserve/inferenceservice.yaml": f"{YOURS}: the service on KServe, for clusters that run it",
    "deploy/k8s/kserve/kustomization.yaml": f"{YOURS}: the KServe deployment's namespace and image",
    "deploy/k8s/overlays/production/kustomization.yaml": f"{YOURS}: production's namespace, image and sizes",
    "deploy/k8s/overlays/staging/kustomization.yaml": f"{YOURS}: staging's namespace and image, moved by deploy.yml",
    "noxfile.py": f"{YOURS}: the project's sessions, which CI calls; a team adds its own",
    "prometheus/alerts.test.yml": f"{YOURS}: the test of the team's alert rules",
    "prometheus/alerts.yml": f"{YOURS}: the team's alert rules and thresholds",
    "src/churn_model/__init__.py": "the project's package and its version",
    "src/churn_model/cli.py": f"{YOURS}: the console script, where the project adds commands",
    "src/churn_model/features.py": f"{YOURS}: the preprocessor, where derived features go",
    "src/churn_model/metrics.py": f"{YOURS}: the project's own metrics",
    "src/churn_model/model.py": f"{YOURS}: which families, features and metrics training uses",
    "src/churn_model/monitoring.py": f"{YOURS}: the project's own monitoring checks",
    "src/churn_model/pipeline/__init__.py": "the project's stage package",
    "src/churn_model/pipeline/accept.py": f"{YOURS}: the stage's recipe and the project's own gate rules",
    "src/churn_model/pipeline/analyze.py": f"{YOURS}: the stage's recipe",
    "src/churn_model/pipeline/evaluate.py": f"{YOURS}: the stage's recipe",
    "src/churn_model/pipeline/extract.py": f"{YOURS}: the data access for the project's source",
    "src/churn_model/pipeline/infer_schema.py": f"{YOURS}: the stage's recipe",
    "src/churn_model/pipeline/prepare.py": f"{YOURS}: the stage's recipe",
    "src/churn_model/pipeline/train.py": f"{YOURS}: the stage's recipe",
    "src/churn_model/pipeline/validate.py": f"{YOURS}: the stage's recipe",
    "src/churn_model/sample_data.py": f"{YOURS}: the synthetic data the project's tests and demos draw",
    "src/churn_model/serving.py": f"{YOURS}: the service's routes, middleware and authentication",
    "tests/__init__.py": "the project's test package",
    "tests/conftest.py": f"{YOURS}: the project's own fixtures",
    "tests/test_dvc_yaml.py": "tests the project's dvc.yaml against the project's modules",
    "tests/test_extract.py": "tests the project's data access",
    "tests/test_features.py": "tests the project's features and families",
    "tests/test_model_quality.py": "tests the project's model families",
    "tests/test_pipeline.py": "tests the project's stages",
    "tests/test_readme.py": "tests the project's README",
    "tests/test_service.py": "tests the project's own service module (serving.py): its routes and auth",
}


def test_every_file_the_same_in_every_render_is_one_the_user_owns(tmp_path: Path) -> None:
    common: dict[str, str] | None = None
    for number, answers in enumerate(MATRIX):
        root = render(tmp_path / str(number), **answers)
        digests = {
            str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest() for path in project_files(root)
        }
        common = (
            digests
            if common is None
            else {name: digest for name, digest in common.items() if digests.get(name) == digest}
        )
    assert common is not None
    assert set(common) == set(IDENTICAL_AND_WHY), (
        f"identical in every render but not explained: {sorted(set(common) - set(IDENTICAL_AND_WHY))}; "
        f"explained but no longer identical: {sorted(set(IDENTICAL_AND_WHY) - set(common))}"
    )


def lines(paths: list[Path]) -> int:
    return sum(len(path.read_text().splitlines()) for path in paths)


def test_the_default_project_is_small_enough_to_own(tmp_path: Path) -> None:
    root = render(tmp_path / "p")
    assert lines(list((root / "src").rglob("*.py"))) <= 1500
    assert lines(list((root / "tests").rglob("*.py"))) <= 1000
    assert lines([root / "README.md"]) <= 200
