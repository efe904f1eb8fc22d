"""Run the service under uvicorn, handing every worker process the same config object."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from fastapi import FastAPI

    from .config import ServingConfig


def run_server(
    create_app: Callable[[ServingConfig], FastAPI], config: ServingConfig, host: str, port: int, workers: int
) -> None:
    """Serve the app `create_app(config)` builds until interrupted. Workers are spawned processes: each builds
    its app from a pickled copy of `config`, so `create_app` must be a module-level function (the project's)."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    settings = uvicorn.Config(
        partial(create_app, config),
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        access_log=False,
    )
    if workers == 1:
        uvicorn.Server(settings).run()
        return
    # What uvicorn.run does for workers, which it allows only for an import string (no config object then).
    Multiprocess(settings, sockets=[settings.bind_socket()]).run()
