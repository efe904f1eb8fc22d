"""pre-commit in a generated project: every hook runs offline from the project's own environment; a fresh
project passes, and a committed private key, a 20 MB CSV or conflict markers are refused by their hook.
Installed as git hooks, they refuse a key at commit and, when the commit skipped them, at push.

One render serves every case: each bad commit is made with --no-verify (as a hook-less clone would) and
reset afterwards.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
import yaml

from .conftest import install, render, run

pytestmark = pytest.mark.e2e

# Only the PEM armour matters to the hook; the body is not a usable key.
PRIVATE_KEY = "\n".join(
    [
        "-----BEGIN OPENSSH PRIVATE KEY-----",
        "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ==",
        "-----END OPENSSH PRIVATE KEY-----",
        "",
    ]
)
CONFLICT = "<<<<<<< before updating\nour line\n=======\nthe template's line\n>>>>>>> after updating\n"


def csv_of_megabytes(megabytes: int) -> str:
    """A data file as someone might commit it by mistake: seeded random rows, `megabytes` MB."""
    rng = random.Random(0)
    rows = ["customer_id,monthly_charges,churned"]
    size = len(rows[0]) + 1
    while size < megabytes * 1024 * 1024:
        rows.append(f"{len(rows)},{rng.uniform(10, 120):.2f},{rng.randint(0, 1)}")
        size += len(rows[-1]) + 1
    return "\n".join(rows) + "\n"


def hook_results(output: str) -> dict[str, str]:
    """pre-commit's summary lines: hook name -> Passed, Failed or Skipped."""
    return dict(re.findall(r"^(.+?)\.{3,}(?:\(.*\))?(Passed|Failed|Skipped)$", output, re.MULTILINE))


def commit_hooks(root: Path) -> list[dict[str, str]]:
    """The hooks `pre-commit run` runs: those of the pre-commit stage (the default stage)."""
    config = yaml.safe_load((root / ".pre-commit-config.yaml").read_text())
    hooks = [hook for repo in config["repos"] for hook in repo["hooks"]]
    return [hook for hook in hooks if "pre-commit" in hook.get("stages", config["default_stages"])]


def test_hooks_pass_on_a_fresh_project_and_refuse_keys_large_files_and_conflict_markers(tmp_path: Path) -> None:
    root = render(tmp_path / "project", tasks=True)
    install(root)
    env = {"PRE_COMMIT_HOME": str(tmp_path / "pre-commit-cache")}

    def pre_commit(*args: str) -> tuple[int, str]:
        completed = run(
            ["uv", "run", "--frozen", "pre-commit", "run", "--all-files", *args], root, check=False, env=env
        )
        return completed.returncode, completed.stdout + completed.stderr

    status, output = pre_commit()
    assert status == 0, output
    results = hook_results(output)
    assert {results.get(hook["name"]) for hook in commit_hooks(root)} == {"Passed"}, output
    assert len(commit_hooks(root)) == 8

    bad_commits = [
        ("deploy_key", PRIVATE_KEY, "detect-private-key", "Private key found: deploy_key"),
        ("data/customers.csv", csv_of_megabytes(20), "check-added-large-files", "data/customers.csv (20481 KB)"),
        ("notes.md", CONFLICT, "check-merge-conflict", "notes.md:1: Merge conflict string"),
    ]
    for path, content, hook, message in bad_commits:
        (root / path).write_text(content)
        run(["git", "add", path], root)
        run(["git", "commit", "--quiet", "--no-verify", "-m", f"add {path}"], root)
        status, output = pre_commit()
        run(["git", "reset", "--quiet", "--hard", "HEAD~1"], root)
        assert status == 1, output
        assert f"- hook id: {hook}\n" in output, output
        assert message in output, output
        assert list(hook_results(output).values()).count("Failed") == 1, output

    # DVC's hooks at their own stages: push (nothing to send yet), and checkout after a branch checkout,
    # which names the pipeline outputs a fresh project has not produced yet (as `dvc install` hooks do).
    status, output = pre_commit("--hook-stage", "pre-push")
    assert status == 0, output
    assert "Everything is up to date." in output
    env["PRE_COMMIT_CHECKOUT_TYPE"] = "1"  # a branch checkout, as git tells pre-commit
    status, output = pre_commit("--hook-stage", "post-checkout")
    del env["PRE_COMMIT_CHECKOUT_TYPE"]
    assert status == 1, output
    assert "- hook id: dvc-post-checkout\n" in output, output
    assert "Checkout failed for following targets:" in output, output
    assert re.search(r"^data/raw$", output, re.MULTILINE), output

    # Installed as git hooks they guard real commits and pushes, run by git outside `uv run`.
    run(["uv", "run", "--frozen", "pre-commit", "install"], root, env=env)
    assert all((root / ".git" / "hooks" / name).is_file() for name in ("pre-commit", "pre-push", "post-checkout"))
    (root / "notes.md").write_text("Notes\n")
    run(["git", "add", "notes.md"], root)
    run(["git", "commit", "--quiet", "-m", "notes"], root, env=env)
    (root / "deploy_key").write_text(PRIVATE_KEY)
    run(["git", "add", "deploy_key"], root)
    refused = run(["git", "commit", "--quiet", "-m", "a key"], root, check=False, env=env)
    assert refused.returncode == 1
    assert "Private key found: deploy_key" in refused.stdout + refused.stderr
    run(["git", "commit", "--quiet", "--no-verify", "-m", "a key, hooks skipped"], root)
    run(["git", "init", "--quiet", "--bare", str(tmp_path / "origin.git")], tmp_path)
    run(["git", "remote", "add", "origin", str(tmp_path / "origin.git")], root)
    refused = run(["git", "push", "--quiet", "origin", "main"], root, check=False, env=env)
    assert refused.returncode == 1
    assert "Private key found: deploy_key" in refused.stdout + refused.stderr
