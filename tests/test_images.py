"""The project's Dockerfile built and run: the serving image of a trained default project, and the tracking image.

Built with podman from base images made on this machine (tests/images.py says why and how), the library fetched
from its git source as in any build (this checkout, mounted into the build where the project's source names it).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from .conftest import install, render, run, template_source
from .images import BUILD, checked, local_bases, process_uids, running
from .test_e2e import edit_params, free_port, prepared_test_rows, repro

pytestmark = [pytest.mark.e2e, pytest.mark.images]
APP_UID = 10001  # the Dockerfile's `app` and `mlflow` users


def answer(url: str, body: object = None) -> tuple[int, dict[str, object]]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def wait_for(url: str, process_alive: object, log: Path, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            assert time.monotonic() < deadline, f"{url} gave no answer in {seconds} s:\n{log.read_text()[-3000:]}"
            assert process_alive(), f"the container exited:\n{log.read_text()[-3000:]}"  # type: ignore[operator]
            time.sleep(0.5)


def assert_runs_as_the_image_user(session: int, command: str) -> None:
    """`command` runs from the image's environment (/app/.venv), and everything from there runs as the
    image's user, not root (buildah itself, outside the image, runs as root)."""
    from_image = {line: uid for line, uid in process_uids(session).items() if line.startswith("/app/.venv/")}
    assert any(command in line for line in from_image), process_uids(session)
    assert set(from_image.values()) == {APP_UID}, from_image


def test_the_images_build_and_serve_as_their_user_and_a_refused_model_fails_the_build(tmp_path: Path) -> None:
    local_bases()
    root = render(tmp_path / "churn", tasks=True)
    install(root)
    edit_params(root, {"train.tuning.n_trials": 2, "train.candidates": {"linear": {}}})
    repro(root)
    source = template_source()
    assert f"file://{source}" in (root / "pyproject.toml").read_text()  # where the build fetches the library
    mount = ["-v", f"{source}:{source}:ro"]
    serving, tracking = f"localhost/churn-serving-{tmp_path.name}", f"localhost/churn-tracking-{tmp_path.name}"
    try:
        checked([*BUILD, *mount, "-t", serving, "."], cwd=root)
        port, log = free_port(), tmp_path / "serving.log"
        command = ["churn_model", "serve", "--host", "127.0.0.1", "--port", str(port), "--model-source", "local"]
        with running(serving, command, log) as container:
            wait_for(f"http://127.0.0.1:{port}/ready", lambda: container.poll() is None, log)
            status, body = answer(f"http://127.0.0.1:{port}/predict", prepared_test_rows(root)[:3])
            assert status == 200, body
            assert len(body["predictions"]) == 3  # type: ignore[arg-type]
            assert_runs_as_the_image_user(container.pid, "churn_model serve")

        # A model the gate refused: the build stops at check-model, with the gate's reasons.
        verdict = root / "models" / "acceptance.json"
        refused = json.loads(verdict.read_text()) | {
            "accepted": False,
            "checks": [{"name": "thresholds", "passed": False, "message": "roc_auc 0.51 is below 0.70"}],
        }
        verdict.write_text(json.dumps(refused))
        failed = run([*BUILD, *mount, "-t", f"{serving}-refused", "."], root, check=False)
        assert failed.returncode != 0
        assert "was refused by the acceptance gate" in failed.stdout + failed.stderr
        assert "roc_auc 0.51 is below 0.70" in failed.stdout + failed.stderr

        checked([*BUILD, "--target", "tracking", "-t", tracking, "."], cwd=root)
        port, log = free_port(), tmp_path / "tracking.log"
        command = ["mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
        with running(tracking, command, log) as container:
            wait_for(f"http://127.0.0.1:{port}/health", lambda: container.poll() is None, log)
            assert_runs_as_the_image_user(container.pid, "mlflow server")
    finally:
        for image in (serving, tracking):
            run(["podman", "rmi", "--force", image], root, check=False)
        run(["podman", "image", "prune", "--force"], root, check=False)  # the build stages' images: gigabytes
