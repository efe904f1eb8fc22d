"""The serving environment's installed size: the project with its machinery copied in (v0.2.0's layout)
against the project that imports mlops-runtime[serving], each `uv pip install`ed into an empty venv
(what the serving image's `uv sync --no-default-groups` installs). Prints one JSON object.

Run: `uv run python benchmarks/serving_size.py [--before REF]` (REF: a commit with the copied layout).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COPIED_LAYOUT = "1479f46"  # the last commit before mlops-runtime


def render(ref: str, source: Path, dest: Path) -> Path:
    import copier

    copier.run_copy(str(source), dest, defaults=True, vcs_ref=ref, unsafe=True, skip_tasks=True, quiet=True)
    return dest


def installed(project: Path, folder: Path) -> dict[str, float | int]:
    """Megabytes of site-packages and the number of packages, after installing `project` into a new venv."""
    venv = folder / "venv"
    subprocess.run(["uv", "venv", "--quiet", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(["uv", "pip", "install", "--quiet", "--python", str(python), str(project)], check=True)
    site = next(venv.glob("lib/python*/site-packages"))
    size = sum(path.stat().st_size for path in site.rglob("*") if path.is_file())
    packages = len(list(site.glob("*.dist-info")))
    return {"megabytes": round(size / 1e6, 1), "packages": packages}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default=COPIED_LAYOUT, help="a commit of the copied layout")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="serving-size-") as folder:
        root = Path(folder)
        # A clean clone: a project installs mlops-runtime from the template's commit, which must exist.
        subprocess.run(["git", "clone", "--quiet", str(REPO), str(root / "repo")], check=True)
        before = installed(render(args.before, root / "repo", root / "before"), root / "b")
        after = installed(render("HEAD", root / "repo", root / "after"), root / "a")
    json.dump({"serving_environment": {"before": before, "after": after}}, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
