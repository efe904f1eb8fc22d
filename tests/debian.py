"""Tools from Debian's packages that some tests need (promtool, chromium), installed on first use as CI can."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from pathlib import Path

import pytest

LOCK = Path("/tmp/copier-mlops-apt.lock")  # pytest-xdist workers must not run apt-get at once


def debian_tool(binary: str, package: str) -> str:
    """The path of `binary`; installs Debian's `package` first when it is missing and this is root with apt-get."""
    found = shutil.which(binary)
    if found:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.fail(f"{binary} is missing: install the Debian package {package} (apt-get install {package})")
    with LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if shutil.which(binary) is None:
            environment = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
            for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", package]):
                completed = subprocess.run(command, capture_output=True, text=True, env=environment, check=False)
                if completed.returncode != 0:
                    pytest.fail(f"{' '.join(command)} failed:\n{completed.stdout[-2000:]}{completed.stderr[-2000:]}")
    found = shutil.which(binary)
    if found is None:
        pytest.fail(f"the Debian package {package} installed no {binary}")
    return found
