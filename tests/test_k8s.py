"""The Kubernetes manifests of a generated project (deploy/k8s), checked offline as no API server runs here.

Each overlay, rendered by kustomize (kubectl's), must pass kubernetes-validate --strict (a misspelt field
fails) for the oldest and the newest Kubernetes version it knows, and checkov with no failed check (each
skipped one says why in its annotation). KServe's InferenceService has no schema in either tool: its
predictor, a pod spec with KServe's scaling fields, is validated as a Pod. The project is rendered with a
40-character name, the longest the render tests use, so every object name must still be a DNS label.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import render
from .debian import debian_tool
from .test_render import dockerfile_stages

KUBERNETES_VERSIONS = ("1.25.0", "1.37.0")  # the oldest and newest kubernetes-validate ships schemas for
CHECKOV = "checkov==3.3.*"  # its own environment (uv tool run): its pinned dependencies stay out of ours
OVERLAYS = ("staging", "production")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
# An InferenceService predictor's own fields; the rest of it is a pod spec.
KSERVE_COMPONENT_FIELDS = {"minReplicas", "maxReplicas", "scaleMetric", "scaleTarget", "containerConcurrency"}
NAME = "Forty Characters Long Project Name Abcde"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = render(tmp_path_factory.mktemp("k8s") / "project", project_name=NAME)
    assert len(yaml.safe_load((root / ".copier-answers.yml").read_text())["project_slug"]) == 40
    return root


def kustomize(folder: Path) -> list[dict[str, Any]]:
    kubectl = debian_tool("kubectl", "kubectl")
    completed = subprocess.run([kubectl, "kustomize", str(folder)], capture_output=True, text=True, check=False)
    assert completed.returncode == 0, completed.stderr
    return [document for document in yaml.safe_load_all(completed.stdout) if document]


def invalid(manifests: list[dict[str, Any]], folder: Path, version: str) -> str:
    """kubernetes-validate --strict's complaints about `manifests` for Kubernetes `version`; empty when valid."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"manifests-{version}.yaml"
    path.write_text(yaml.safe_dump_all(manifests))
    validate = Path(sys.executable).parent / "kubernetes-validate"
    command = [str(validate), "--strict", "--quiet", "--no-warn", "-k", version, str(path)]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    return "" if completed.returncode == 0 else completed.stdout + completed.stderr


def kserve_predictor_as_pod(service: dict[str, Any]) -> dict[str, Any]:
    predictor = {
        key: value for key, value in service["spec"]["predictor"].items() if key not in KSERVE_COMPONENT_FIELDS
    }
    metadata = {key: service["metadata"][key] for key in ("name", "namespace", "labels", "annotations")}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": predictor}


def served_port_and_user(root: Path) -> tuple[int, int]:
    """The port the serving image's CMD listens on and the uid it runs as (the Dockerfile's last stage)."""
    instructions = " ".join(dockerfile_stages(root)[-1][1])
    port = re.search(r'"--port", "(\d+)"', instructions)
    user = re.search(r"useradd [^&]*--uid (\d+)", instructions)
    assert port, "the serving stage's CMD no longer says its port"
    assert user, "the serving stage no longer creates its user with a uid"
    return int(port.group(1)), int(user.group(1))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_overlay_renders_to_valid_manifests_for_old_and_new_kubernetes(
    project: Path, overlay: str, tmp_path: Path
) -> None:
    manifests = kustomize(project / "deploy" / "k8s" / "overlays" / overlay)

    kinds = sorted(manifest["kind"] for manifest in manifests)
    assert kinds == ["Deployment", "HorizontalPodAutoscaler", "NetworkPolicy", "PodDisruptionBudget", "Service"]
    for manifest in manifests:
        namespace, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
        assert namespace != "default", f"{manifest['kind']} {name} lands in the default namespace"
        assert DNS_LABEL.match(name), f"not a DNS label: {name}"
        assert DNS_LABEL.match(namespace), f"not a DNS label: {namespace}"
    for version in KUBERNETES_VERSIONS:
        assert not invalid(manifests, tmp_path, version), invalid(manifests, tmp_path, version)


def test_a_misspelt_field_fails_the_strict_validation(project: Path, tmp_path: Path) -> None:
    manifests = kustomize(project / "deploy" / "k8s" / "overlays" / "staging")
    deployment = next(manifest for manifest in manifests if manifest["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["livenesProbe"] = container.pop("livenessProbe")

    assert "livenesProbe" in invalid(manifests, tmp_path, KUBERNETES_VERSIONS[-1])


def test_the_deployment_runs_the_serving_image_as_it_is_built(project: Path) -> None:
    """Probes on the service's own routes, at the port the image serves on, as the image's non-root user, on
    a read-only root file system with the journal on a volume, and the log's URL and tokens from a Secret."""
    port, uid = served_port_and_user(project)
    manifests = kustomize(project / "deploy" / "k8s" / "overlays" / "production")
    deployment = next(manifest for manifest in manifests if manifest["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]

    assert re.fullmatch(r"[a-z0-9.-]+/\S+:0\.1\.0", container["image"]), container["image"]  # the overlay's
    assert container["ports"] == [{"name": "http", "containerPort": port}]
    assert (container["livenessProbe"]["httpGet"]["path"], container["readinessProbe"]["httpGet"]["path"]) == (
        "/health",
        "/ready",
    )
    assert pod["securityContext"]["runAsUser"] == uid
    assert pod["securityContext"]["runAsNonRoot"]
    assert container["securityContext"]["readOnlyRootFilesystem"]
    settings = {variable["name"]: variable for variable in container["env"]}
    journal = settings["SERVE_LOG_JOURNAL_DIR"]["value"]
    assert journal in {mount["mountPath"] for mount in container["volumeMounts"]}
    for name in ("SERVE_PREDICTION_LOG_URL", "SERVE_FEEDBACK_TOKEN", "SERVE_RELOAD_TOKEN"):
        assert settings[name]["valueFrom"]["secretKeyRef"]["key"] == name
    hpa = next(manifest for manifest in manifests if manifest["kind"] == "HorizontalPodAutoscaler")
    assert hpa["spec"]["minReplicas"] == 3  # production's patch of the base's 2


def test_the_kserve_predictor_runs_the_same_image_and_is_a_valid_pod(project: Path, tmp_path: Path) -> None:
    (service,) = kustomize(project / "deploy" / "k8s" / "kserve")
    (deployment,) = [
        manifest
        for manifest in kustomize(project / "deploy" / "k8s" / "overlays" / "production")
        if manifest["kind"] == "Deployment"
    ]

    assert (service["apiVersion"], service["kind"]) == ("serving.kserve.io/v1beta1", "InferenceService")
    (container,) = service["spec"]["predictor"]["containers"]
    assert container["image"] == deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    assert container["name"] == "kserve-container"  # the name KServe routes to
    # The same pod as the Deployment's, written twice (KServe's resource is not a Deployment): kept in step here.
    served = deployment["spec"]["template"]["spec"]
    for key in ("env", "resources", "securityContext", "volumeMounts"):
        assert container[key] == served["containers"][0][key], f"the KServe predictor's {key} differs"
    for key in ("securityContext", "volumes", "automountServiceAccountToken"):
        assert service["spec"]["predictor"][key] == served[key], f"the KServe predictor's {key} differs"
    for version in KUBERNETES_VERSIONS:
        pod = [kserve_predictor_as_pod(service)]
        assert not invalid(pod, tmp_path, version), invalid(pod, tmp_path, version)


def test_checkov_fails_no_check_and_every_skipped_check_says_why(project: Path, tmp_path: Path) -> None:
    """One checkov run over both overlays, the KServe predictor and, to show the rules bite, a copy of the
    staging Deployment that may write to its root file system and run as root: only the copy fails."""
    for overlay in OVERLAYS:
        (tmp_path / f"{overlay}.yaml").write_text(
            yaml.safe_dump_all(kustomize(project / "deploy" / "k8s" / "overlays" / overlay))
        )
    (service,) = kustomize(project / "deploy" / "k8s" / "kserve")
    (tmp_path / "kserve-predictor.yaml").write_text(yaml.safe_dump(kserve_predictor_as_pod(service)))
    deployment = next(
        m for m in kustomize(project / "deploy" / "k8s" / "overlays" / "staging") if m["kind"] == "Deployment"
    )
    pod = deployment["spec"]["template"]["spec"]
    del pod["securityContext"], pod["containers"][0]["securityContext"]
    (tmp_path / "loosened.yaml").write_text(yaml.safe_dump(deployment))

    command = ["uv", "tool", "run", "--quiet", "--from", CHECKOV, "checkov", "--directory", str(tmp_path)]
    command += ["--framework", "kubernetes", "--output", "json", "--skip-download"]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    results = json.loads(completed.stdout)["results"]

    failed = {(Path(check["file_path"]).name, check["check_id"]) for check in results["failed_checks"]}
    assert {name for name, _ in failed} == {"loosened.yaml"}, sorted(failed)
    assert {("loosened.yaml", "CKV_K8S_22"), ("loosened.yaml", "CKV_K8S_23")} <= failed  # read-only root, non-root
    checked = {Path(check["file_path"]).name for check in results["passed_checks"]}
    assert checked == {"staging.yaml", "production.yaml", "kserve-predictor.yaml", "loosened.yaml"}
    for check in results["skipped_checks"]:
        assert check["check_result"].get("suppress_comment"), f"{check['check_id']} is skipped without a reason"


def test_the_deploy_workflow_moves_the_image_the_overlays_name(project: Path) -> None:
    """deploy.yml's `kustomize edit set image NAME=...` must name the base's image, or staging never moves."""
    workflow = yaml.safe_load((project / ".github" / "workflows" / "deploy.yml").read_text())
    script = "\n".join(step.get("run", "") for job in workflow["jobs"].values() for step in job["steps"])
    moved = re.search(r'kustomize edit set image "([^=]+)=', script)
    staging = yaml.safe_load((project / "deploy" / "k8s" / "overlays" / "staging" / "kustomization.yaml").read_text())

    assert moved, "deploy.yml no longer sets staging's image"
    assert "cd deploy/k8s/overlays/staging" in script
    assert [image["name"] for image in staging["images"]] == [moved.group(1)]
