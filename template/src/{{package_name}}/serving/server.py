"""Run the service under uvicorn, handing every worker process the same config object."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from .app import create_app

if TYPE_CHECKING:
    from .config import ServingConfig


def run_server(config: ServingConfig, host: str, port: int, workers: int) -> None:
    """Serve until interrupted. Workers are spawned processes: each builds its app from a pickled copy of `config`."""
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
