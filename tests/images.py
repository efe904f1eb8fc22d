"""Container images built and run with podman and buildah, from base images made on this machine.

Registries are out of reach here, and so is every OCI runtime: runc and crun both fail to start a
container in this sandbox (setrlimit: operation not permitted). Builds therefore run their steps with
chroot isolation, and a built image runs the same way (`buildah run --isolation chroot`): its file
system, its user, its environment and its command, on the host's network.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from .debian import LOCK, debian_tool

PYTHON_BASE = "docker.io/library/python:3.11-slim"  # what the Dockerfile's FROM names, made from Debian's python3.11
UV_IMAGE = "ghcr.io/astral-sh/uv:0.5"  # what its COPY --from names: this machine's uv binary
BUILD = ["podman", "build", "--isolation", "chroot", "--pull=never", "--format", "docker"]  # docker: keeps HEALTHCHECK


def container_tools() -> None:
    """podman, buildah and mmdebstrap, installed from Debian when missing."""
    for tool in ("podman", "buildah", "mmdebstrap"):
        debian_tool(tool, tool)


def local_bases() -> None:
    """The base images the Dockerfile names, made here once (podman's store keeps them).

    The Python base is a Debian bookworm root with python3.11 (mmdebstrap, about 20 s). It trusts this
    machine's own certificate authorities and tells uv to use the system's certificates: PyPI is reached
    through this machine's TLS proxy, which the official image, on an open network, never meets.
    """
    container_tools()
    with LOCK.open("w") as lock:  # one xdist worker makes them
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not image_exists(PYTHON_BASE):
            with tempfile.TemporaryDirectory(prefix="python-base-") as folder:
                root = Path(folder) / "root.tar"
                hooks = [
                    'cp /usr/local/share/ca-certificates/*.crt "$1/usr/local/share/ca-certificates/" || true',
                    'chroot "$1" update-ca-certificates',
                    'mkdir -p "$1/etc/uv" && printf "native-tls = true\\n" > "$1/etc/uv/uv.toml"',
                ]
                command = ["mmdebstrap", "--variant=minbase", "--include=python3.11,python-is-python3,ca-certificates"]
                command += [f"--customize-hook={hook}" for hook in hooks]
                checked([*command, "bookworm", str(root)])
                checked(["podman", "import", "--change", 'CMD ["python3"]', str(root), PYTHON_BASE])
        if not image_exists(UV_IMAGE):
            with tempfile.TemporaryDirectory(prefix="uv-image-") as folder:
                uv = shutil.which("uv")
                assert uv is not None, "uv is not on PATH"
                shutil.copy(uv, Path(folder) / "uv")
                checked(["tar", "-C", folder, "-cf", f"{folder}/uv.tar", "uv"])
                checked(["podman", "import", f"{folder}/uv.tar", UV_IMAGE])


def image_exists(name: str) -> bool:
    return subprocess.run(["podman", "image", "exists", name], check=False).returncode == 0


def image_size_mb(name: str) -> int:
    return int(checked(["podman", "image", "inspect", "--format", "{{.Size}}", name]).strip()) // 1_000_000


def checked(command: list[str], cwd: Path | None = None) -> str:
    """Run `command`; on failure, the test fails with its output's end."""
    completed = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False, timeout=1800)
    if completed.returncode != 0:
        pytest.fail(
            f"{' '.join(command)} exited {completed.returncode}:\n{completed.stdout[-3000:]}{completed.stderr[-3000:]}"
        )
    return completed.stdout


@contextmanager
def running(image: str, command: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`image` run with its own user, environment and working folder, `command` for its CMD; stopped on exit."""
    container = checked(["buildah", "from", "--pull=never", image]).strip()
    with log.open("wb") as output:
        process = subprocess.Popen(
            ["buildah", "run", "--isolation", "chroot", container, "--", *command],
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # buildah, its chroot and the command: one group to stop
        )
    try:
        yield process
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        subprocess.run(["buildah", "rm", container], capture_output=True, check=False)


def process_uids(session: int) -> dict[str, int]:
    """The command line and real uid of every process in `session` (a `running` container's group)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getsid(int(entry.name)) != session:
                continue
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
            uid = next(line for line in (entry / "status").read_text().splitlines() if line.startswith("Uid:"))
        except (OSError, ProcessLookupError):  # ended meanwhile
            continue
        found[command] = int(uid.split()[1])
    return found
