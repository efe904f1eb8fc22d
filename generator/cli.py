"""`copier-mlops`: new, update, demo and check, a thin layer over copier's Python API.

copier, and everything heavy, is imported inside the commands: `--help` stays instant.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from .errors import GeneratorError
from .project import (
    ANSWERS,
    SHORT_NAMES,
    answers_problems,
    changed_since_head,
    command_problem,
    conflicted_files,
    data_path_note,
    dvc_summary,
    locked_stages,
    newest_release,
    read_answers,
    session_results,
    template_source,
    template_status,
    template_version,
    uncommitted_files,
)
from .template_source import (
    default_ref,
    default_template,
    installed_tag,
    is_installed_template,
    is_local,
    question_names,
    sync_installed_template,
    version,
)

PROG = "copier-mlops"
CURRENT = ":current:"  # copier's name for the project's own template version (update --vcs-ref)


def parse_data(pairs: Sequence[str]) -> dict[str, str]:
    """KEY=VALUE pairs from --data into a mapping; copier casts each value by question type."""
    data: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise GeneratorError(f"--data expects KEY=VALUE, got {pair!r}")
        data[key.strip()] = value
    return data


def check_destination(dest: Path) -> None:
    if dest.exists() and not dest.is_dir():
        raise GeneratorError(f"destination {dest} is a file")
    if dest.is_dir() and any(dest.iterdir()):
        raise GeneratorError(f"destination {dest} is not empty; choose a new folder")


def check_answer_keys(data: dict[str, str], template: str, vcs_ref: str | None) -> None:
    known = question_names(template, vcs_ref)
    unknown = sorted(set(data) - known)
    if unknown:
        raise GeneratorError(f"unknown answer {', '.join(unknown)}; the questions are: {', '.join(sorted(known))}")


def render(
    dest: Path,
    data: dict[str, str],
    *,
    template: str | None = None,
    vcs_ref: str | None = None,
    defaults: bool = True,
    tasks: bool = True,
) -> Path:
    """Render the template into an empty `dest` and run its setup tasks (git init, uv lock)."""
    import copier
    from copier.errors import CopierError, TaskError

    source = template or default_template()
    if is_local(source):  # copier records the path as given; the project's uv source needs it absolute
        source = str(Path(source).expanduser().resolve())
    ref = vcs_ref or default_ref(source)
    check_destination(dest)
    check_answer_keys(data, source, ref)
    if tasks and ref == "HEAD" and is_local(source):
        check_committed(source)
    try:
        copier.run_copy(
            source,
            dest,
            data=data,
            defaults=defaults,
            vcs_ref=ref,
            unsafe=True,
            skip_tasks=not tasks,
            quiet=False,
        )
    except TaskError as error:
        raise GeneratorError(f"setup step failed in {dest}: {error}") from None
    except (ValueError, CopierError) as error:
        raise GeneratorError(" ".join(str(error).split())) from None
    return dest


def check_committed(source: str) -> None:
    """A project installs mlops-runtime from the template's commit (a uv git source): work copier renders from
    a dirty checkout is committed only in copier's temporary clone, so the project could not lock it."""
    dirty = uncommitted_files(Path(source).expanduser())
    if dirty:
        shown = ", ".join(dirty[:5]) + (f" and {len(dirty) - 5} more" if len(dirty) > 5 else "")
        raise GeneratorError(
            f"the template checkout {source} has uncommitted changes ({shown}): the project installs mlops-runtime "
            "from the template's commit, so commit them first"
        )


def update(dest: Path, data: dict[str, str], vcs_ref: str | None) -> None:
    """Pull template changes into a generated project (a clean git tree is required), then check the result.

    Conflicts are left inline, as copier leaves them, and listed; a changed pyproject.toml is relocked.
    """
    import copier
    from copier.errors import CopierError

    answers = read_answers(dest)
    dirty = uncommitted_files(dest)
    if dirty:
        shown = ", ".join(dirty[:5]) + (f" and {len(dirty) - 5} more" if len(dirty) > 5 else "")
        raise GeneratorError(f"{dest} has uncommitted changes ({shown}): commit or stash them, then update")
    source = template_source(dest, answers) if answers.get("_src_path") else ""
    if vcs_ref is None and source and is_installed_template(source):
        sync_installed_template()  # adds this tool's version, if it is new, to the local template repository
        vcs_ref = installed_tag()  # this tool's template: a dev build is a pre-release copier would skip
    if data and source:  # copier would ignore an unknown answer
        target = str(answers.get("_commit")) if vcs_ref == CURRENT else vcs_ref or newest_release(source)
        check_answer_keys(data, source, target)
    try:
        copier.run_update(
            dest,
            data=data,
            vcs_ref=copier.VcsRef.CURRENT if vcs_ref == CURRENT else vcs_ref,
            overwrite=True,
            unsafe=True,
            skip_answered=True,
            defaults=not sys.stdin.isatty(),
        )
    except (ValueError, CopierError) as error:
        raise GeneratorError(" ".join(str(error).split())) from None
    version = read_answers(dest).get("_commit")
    conflicts = conflicted_files(dest)
    relock = (dest / "uv.lock").exists() and changed_since_head(dest, "pyproject.toml")
    if conflicts:
        raise GeneratorError(conflict_message(dest, version, conflicts, relock))
    if relock:
        run_step([shutil.which("uv") or "uv", "lock"], dest)  # pyproject.toml changed: its dependencies may have
    print(f"Updated {dest} to template version {version}: review the changes (git diff HEAD), then commit them.")


def conflict_message(dest: Path, version: object, conflicts: list[str], relock: bool) -> str:
    """One line naming the conflicted files, then how to resolve them."""
    lines = [
        f"the update to template version {version} left {len(conflicts)} conflicted file(s) in {dest}: "
        + ", ".join(conflicts),
        "Where your lines and the template's changed the same place, the file shows both:",
        "    <<<<<<< before updating",
        "    your lines",
        "    =======",
        "    the template's new lines",
        "    >>>>>>> after updating",
        "Edit each file to keep what you want and delete the marker lines (a .rej file lists hunks that did not",
        "apply: merge them by hand, then delete it), then `git add` the file. `git diff HEAD` shows the whole",
        "update; commit it when no marker is left.",
    ]
    if relock:
        lines.append("pyproject.toml changed: run `uv lock` once it is resolved.")
    lines.append("To drop the update instead: git reset --hard && git clean -fd")
    return "\n".join(lines)


def run_step(command: list[str], cwd: Path) -> None:
    """One setup step of a generated project, its output shown live."""
    print(f"$ {' '.join(command)}", flush=True)
    try:
        completed = subprocess.run(command, cwd=cwd, check=False, env=_env_without_virtualenv())
    except FileNotFoundError:
        raise GeneratorError(f"{command[0]} not found: install it (uv: https://docs.astral.sh/uv/)") from None
    if completed.returncode != 0:
        raise GeneratorError(f"`{' '.join(command)}` failed with exit code {completed.returncode} in {cwd}")


def demo(dest: Path, template: str | None, vcs_ref: str | None) -> None:
    """Render with defaults, create the environment, run the whole pipeline, say where things are."""
    render(dest, {}, template=template, vcs_ref=vcs_ref)
    uv = shutil.which("uv") or "uv"
    run_step([uv, "sync", "--quiet", "--compile-bytecode"], dest)
    run_step([uv, "run", "--quiet", "dvc", "repro"], dest)
    package = read_answers(dest)["package_name"]
    print(
        f"\nThe demo project is in {dest}:\n"
        f"  metrics     {dest / 'reports/metrics.json'} (uv run dvc metrics show)\n"
        f"  acceptance  {dest / 'models/acceptance.json'}\n"
        f"  model       {dest / 'models/model'} (an MLflow model; runs in {dest / 'mlflow.db'})\n"
        f"  reports     {dest / 'reports/eda/index.html'}, {dest / 'reports/plots'}\n"
        f"Next, in {dest}:\n"
        f"  uv run {package} serve                 # the champion behind a REST API (docs at /docs)\n"
        f"  uv run {package} models                # registry versions and aliases\n"
        "  uv run dvc plots show                  # ROC, calibration, importance... as HTML\n"
        "  uv run mlflow ui --backend-store-uri sqlite:///mlflow.db"
    )


def check(dest: Path, quick: bool = False) -> None:
    """Report the project's template version and the state of what copier, DVC and uv read, then run its checks.

    Its checks are its default nox sessions (lint, type-check, tests) and `dvc status`; `quick` skips them.
    The last line sums it all up.
    """
    answers = read_answers(dest)
    uv = shutil.which("uv") or "uv"
    env = _env_without_virtualenv()
    if answers.get("_src_path") and answers.get("_commit"):
        print(f"{'template':<20}{template_status(dest, answers)}", flush=True)
    lock = [uv, "lock", "--check"]
    dag = [uv, "run", "--frozen", "dvc", "dag"]
    results = {
        ANSWERS: answers_problems(dest, answers),
        "uv.lock": command_problem(lock, dest, env, "out of date with pyproject.toml or missing: run `uv lock`"),
        "dvc.yaml": command_problem(dag, dest, env, "DVC cannot read the pipeline")
        if (dest / "uv.lock").exists()
        else ["not checked: DVC runs in the project's environment, which needs uv.lock"],
    }
    for name, found in results.items():
        print(f"{name:<20}{'; '.join(found) or 'ok'}", flush=True)
    failed = [name for name, found in results.items() if found]
    if failed:
        raise GeneratorError(f"{dest}: {', '.join(failed)} not in order (see above)")
    summary = [f"template {template_version(dest, answers)}"]
    summary += [f"{SHORT_NAMES[name]} ok" for name in results]
    if quick:
        print(f"check: {', '.join(summary)} (--quick: no lint, type-check, tests or dvc status)")
        return
    returncode, output = run_streamed([uv, "run", "--frozen", "nox"], dest)
    sessions = session_results(output)
    summary += [f"{name} {result}" for name, result in sessions.items()]
    if returncode != 0 and not sessions:
        summary.append(f"nox failed with exit code {returncode}")
    summary.append(dvc_status(dest, uv, env))
    print(f"check: {', '.join(summary)}", flush=True)
    broken = [name for name, result in sessions.items() if result == "failed" or "failed" in result]
    if returncode != 0:
        raise GeneratorError(f"{dest}: {', '.join(broken) or 'nox'} failed (see above)")


def run_streamed(command: list[str], cwd: Path) -> tuple[int, list[str]]:
    """Run `command` in `cwd`, its output shown live and kept: (exit code, output lines)."""
    print(f"$ {' '.join(command)}", flush=True)
    try:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env=_env_without_virtualenv(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
    except FileNotFoundError:
        raise GeneratorError(f"{command[0]} not found: install it (uv: https://docs.astral.sh/uv/)") from None
    lines = []
    assert process.stdout is not None
    with process.stdout:
        for line in process.stdout:
            print(line, end="", flush=True)
            lines.append(line.rstrip("\n"))
    return process.wait(), lines


def dvc_status(dest: Path, uv: str, env: dict[str, str]) -> str:
    """`dvc status` condensed to the stages not run yet and those changed, by name."""
    import json

    command = [uv, "run", "--frozen", "dvc", "status", "--json"]
    completed = subprocess.run(command, cwd=dest, env=env, capture_output=True, text=True, check=False)
    try:
        status = json.loads(completed.stdout.strip().splitlines()[-1]) if completed.returncode == 0 else None
    except (IndexError, ValueError):
        status = None
    if not isinstance(status, dict):
        reason = (completed.stderr.strip().splitlines() or [f"exit code {completed.returncode}"])[-1]
        return f"dvc: status unknown (`dvc status`: {reason})"
    return dvc_summary(status, locked_stages(dest))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Generate a production-grade MLOps project.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add_source_options(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--template",
            help="template source: a git URL or a git checkout (default: this checkout, or the packaged one)",
        )
        sub.add_argument("--vcs-ref", help="git tag, branch or commit of the template (default: HEAD, or this version)")

    new = commands.add_parser("new", help="render a new project into DEST")
    new.add_argument("dest", type=Path, metavar="DEST")
    new.add_argument("--data", "-d", action="append", default=[], metavar="KEY=VALUE", help="an answer (repeatable)")
    new.add_argument("--defaults", action="store_true", help="use the default of every unanswered question")
    new.add_argument("--no-tasks", action="store_true", help="skip setup tasks (git init, uv lock, first commit)")
    add_source_options(new)

    upd = commands.add_parser("update", help="pull template changes into a generated project")
    upd.add_argument("dest", type=Path, nargs="?", default=Path(), metavar="DEST")
    upd.add_argument("--data", "-d", action="append", default=[], metavar="KEY=VALUE", help="a changed answer")
    upd.add_argument(
        "--vcs-ref",
        help="template version to update to (default: the newest tag; installed: this tool's version; "
        f"{CURRENT}: the project's own, to change answers only)",
    )

    dem = commands.add_parser("demo", help="render with defaults, install, run the pipeline")
    dem.add_argument("dest", type=Path, nargs="?", default=Path("mlops-demo"), metavar="DEST")
    add_source_options(dem)

    chk = commands.add_parser(
        "check", help="report a generated project's template version and state, then lint and test it"
    )
    chk.add_argument("dest", type=Path, nargs="?", default=Path(), metavar="DEST")
    chk.add_argument(
        "--quick", action="store_true", help="only the report: not the project's own lint, type-check and tests"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "new":
            data = parse_data(args.data)
            render(
                args.dest,
                data,
                template=args.template,
                vcs_ref=args.vcs_ref,
                defaults=args.defaults or not sys.stdin.isatty(),
                tasks=not args.no_tasks,
            )
            note = data_path_note(args.dest, read_answers(args.dest))
            if note:
                print(f"{PROG}: note: {note}", file=sys.stderr)
        elif args.command == "update":
            update(args.dest, parse_data(args.data), args.vcs_ref)
        elif args.command == "demo":
            demo(args.dest.absolute(), args.template, args.vcs_ref)
        else:
            check(args.dest, quick=args.quick)
    except GeneratorError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    return 0


def _env_without_virtualenv() -> dict[str, str]:
    """uv in the generated project must not pick up this tool's own virtual environment."""
    env = dict(os.environ)
    env.pop("VIRTUAL_ENV", None)
    return env
