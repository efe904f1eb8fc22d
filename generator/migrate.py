"""Migration steps for `_migrations` in copier.yml, run by `copier update` inside the project being updated.

A standalone script: copier runs it with its own interpreter (`_copier_python`, which has copier and PyYAML)
from the template's new version, so it works the same under stock `copier update` and `copier-mlops update`,
from a checkout, a git URL or the installed tool. For a release vX.Y.Z that renames a question and moves a
file (an entry with `version` runs only on updates from a version older than vX.Y.Z):

    _migrations:
      - version: vX.Y.Z
        when: "{{ _stage == 'before' }}"  # before: the update then reads the answer under its new name
        command: ["{{ _copier_python }}", "{{ _copier_conf.src_path }}/generator/migrate.py",
                  "rename-answer", "old_name", "new_name"]
      - version: vX.Y.Z  # after the update (copier's default stage)
        command: ["{{ _copier_python }}", "{{ _copier_conf.src_path }}/generator/migrate.py",
                  "move-file", "old/path", "new/path"]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ANSWERS = Path(".copier-answers.yml")
# copier's own labels for inline conflicts: `copier-mlops update` finds conflicts by them.
LABELS = ["-L", "before updating", "-L", "last update", "-L", "after updating"]


def rename_answer(old: str, new: str) -> None:
    """Rename a stored answer in the answers file, so the renamed question keeps the user's answer."""
    text = ANSWERS.read_text()
    if re.search(rf"^{re.escape(new)}:", text, flags=re.MULTILINE):
        return
    renamed, count = re.subn(rf"^{re.escape(old)}:", f"{new}:", text, flags=re.MULTILINE)
    if count:
        ANSWERS.write_text(renamed)
        print(f"migration: answer {old} renamed to {new}", flush=True)


def move_files(moves: list[tuple[str, str]]) -> None:
    """Carry the user's changes to each moved file over to its new place, with a three-way merge.

    copier has removed the old file and rendered the new one from the new version. The user's version is the
    old file at HEAD; the merge base is the old file as the previous version of the template rendered it.
    """
    carried = [(old, new, ours) for old, new in moves if (ours := git_show(old)) is not None and Path(new).is_file()]
    if not carried:
        return
    with tempfile.TemporaryDirectory(prefix="copier-mlops-migrate-") as folder:
        previous = render_previous_version(Path(folder) / "previous")
        for old, new, ours in carried:
            base = (previous / old).read_bytes() if (previous / old).is_file() else b""
            if ours == base:
                continue  # not edited: the template's new file stands as rendered
            merged, conflicts = merge(Path(folder), ours, base, Path(new).read_bytes())
            Path(new).write_bytes(merged)
            detail = f", with {conflicts} conflict(s) to resolve in {new}" if conflicts else ""
            print(f"migration: your changes to {old} carried over to {new}{detail}", flush=True)


LEGACY = Path("legacy")
LEGACY_NOTE = """# Your edits to files the template no longer writes

copier-mlops v0.3.0 moved the project's machinery (contract, stages, tuning, gate, registry, service,
monitoring) into the library mlops-runtime, which the project now imports. `copier update` removed the
files the library provides. The ones you had edited are kept here, at their old paths, so nothing you
wrote is lost; nothing imports them. Carry each change to its place in the new layout, then delete this
folder:

- features, derived columns: src/<package>/features.py
- model families: src/<package>/estimators.py (and train.candidates in params.yaml)
- routes, middleware, authentication: src/<package>/serving.py
- a stage's steps: src/<package>/pipeline/<stage>.py
- a change to the machinery itself: the library's extension points (see its documentation), or a
  pull request to copier-mlops
"""


def keep_removed_edits() -> None:
    """Restore, under legacy/, each file the update removed that the user had edited; note what to do with them.

    copier removes a file the new version no longer renders, edited or not. The user's version is the file at
    HEAD; it was edited when it differs from the previous version's render.
    """
    removed = [path for path in committed_files() if not Path(path).exists() and not path.startswith(f"{LEGACY}/")]
    if not removed:
        return
    with tempfile.TemporaryDirectory(prefix="copier-mlops-migrate-") as folder:
        previous = render_previous_version(Path(folder) / "previous")
        kept = []
        for path in removed:
            ours = git_show(path)
            base = (previous / path).read_bytes() if (previous / path).is_file() else None
            if ours is None or ours == base:
                continue  # never edited (or the user's own file removed by the user): gone with the update
            (LEGACY / path).parent.mkdir(parents=True, exist_ok=True)
            (LEGACY / path).write_bytes(ours)
            kept.append(path)
    if kept:
        (LEGACY / "README.md").write_text(LEGACY_NOTE)
        print(
            f"migration: {len(kept)} file(s) you edited are no longer part of the template; your versions are kept"
            f" in {LEGACY}/ ({', '.join(kept)}): see {LEGACY}/README.md for where each change goes now",
            flush=True,
        )


def committed_files() -> list[str]:
    """The files committed at HEAD (before the update)."""
    completed = subprocess.run(["git", "ls-tree", "-r", "--name-only", "HEAD"], capture_output=True, check=True)
    return completed.stdout.decode().splitlines()


def git_show(path: str) -> bytes | None:
    """The file as committed at HEAD (before the update), or None if it was not there."""
    completed = subprocess.run(["git", "show", f"HEAD:./{path}"], capture_output=True, check=False)
    return completed.stdout if completed.returncode == 0 else None


def render_previous_version(dest: Path) -> Path:
    """The project as the template rendered it at the last update, from the answers committed at HEAD."""
    import copier
    import yaml

    answers = yaml.safe_load(git_show(str(ANSWERS)) or b"{}")
    copier.run_copy(
        str(answers["_src_path"]),
        dest,
        data={key: value for key, value in answers.items() if not key.startswith("_")},
        vcs_ref=str(answers["_commit"]),
        defaults=True,
        overwrite=True,
        quiet=True,
        skip_tasks=True,
        unsafe=True,
    )
    return dest


def merge(folder: Path, ours: bytes, base: bytes, theirs: bytes) -> tuple[bytes, int]:
    """`git merge-file`: the merged text (conflicts marked inline) and the number of conflicts."""
    files = []
    for name, content in (("ours", ours), ("base", base), ("theirs", theirs)):
        (folder / name).write_bytes(content)
        files.append(str(folder / name))
    completed = subprocess.run(["git", "merge-file", "-p", *LABELS, *files], capture_output=True, check=False)
    if completed.returncode < 0 or completed.returncode > 127:
        sys.exit(f"migration: git merge-file failed: {completed.stderr.decode(errors='replace').strip()}")
    return completed.stdout, completed.returncode


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="migrate.py", description=__doc__.splitlines()[0])
    steps = parser.add_subparsers(dest="step", required=True)
    rename = steps.add_parser("rename-answer", help="before the update: rename a stored answer")
    rename.add_argument("old")
    rename.add_argument("new")
    move = steps.add_parser("move-file", help="after the update: carry the user's changes to moved files")
    move.add_argument("paths", nargs="+", metavar="OLD NEW", help="pairs of old and new paths")
    steps.add_parser("keep-removed-edits", help="after the update: keep edited files it removed, under legacy/")
    args = parser.parse_args(argv)
    if args.step == "rename-answer":
        rename_answer(args.old, args.new)
    elif args.step == "keep-removed-edits":
        keep_removed_edits()
    else:
        if len(args.paths) % 2:
            parser.error("move-file takes pairs of paths: OLD NEW [OLD NEW ...]")
        move_files(list(zip(args.paths[::2], args.paths[1::2], strict=True)))


if __name__ == "__main__":
    main()
