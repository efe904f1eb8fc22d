"""The prediction log's local journal: where log rows wait, on disk, while the log's database is down.

Each service process appends to a file of its own (JSON lines, fsync'd before its requests are
answered) and holds an exclusive lock on it while it lives. A file nobody holds belongs to a process
that died before writing it to the database: the next process to look claims it and writes it too.
The journal is bounded: past `max_rows` rows it refuses more (JournalFullError), and the service
answers 503 rather than a prediction it could not log.
"""

from __future__ import annotations

import fcntl
import json
import os
import uuid
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

SUFFIX = ".jsonl"


class JournalFullError(Exception):
    """The journal holds `max_rows` rows: it takes no more until the database is back."""


@dataclass(frozen=True)
class Entry:
    """One log row waiting for the database: its table's name and its values."""

    table: str
    row: dict[str, Any]


class Journal:
    """This process's journal file in `folder`, created on first use; `rows` counts what it holds."""

    def __init__(self, folder: Path, max_rows: int) -> None:
        self.folder = folder
        self.max_rows = max_rows
        self.rows = 0
        self._file: IO[str] | None = None

    @property
    def path(self) -> Path | None:
        return None if self._file is None else self.folder / os.path.basename(self._file.name)

    def append(self, entries: list[Entry]) -> None:
        """Write `entries` and fsync them: once this returns, a crash loses none of them."""
        if self.rows + len(entries) > self.max_rows:
            raise JournalFullError(f"the journal holds {self.rows} rows, its limit (SERVE_LOG_JOURNAL_MAX_ROWS)")
        file = self._open()
        file.write("".join(json.dumps({"table": entry.table, "row": entry.row}) + "\n" for entry in entries))
        file.flush()
        os.fsync(file.fileno())
        self.rows += len(entries)

    def entries(self) -> list[Entry]:
        """What this process's file holds."""
        return [] if self.path is None else read_entries(self.path)

    def clear(self) -> None:
        """Empty this process's file, once its entries are in the database."""
        if self._file is not None:
            self._file.truncate(0)
            self._file.seek(0)
            os.fsync(self._file.fileno())
        self.rows = 0

    def close(self) -> None:
        if self._file is not None:
            path = self.path
            self._file.close()  # releases the lock
            self._file = None
            if self.rows == 0 and path is not None:
                path.unlink(missing_ok=True)

    def _open(self) -> IO[str]:
        if self._file is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            file = (self.folder / f"journal-{os.getpid()}-{uuid.uuid4().hex[:8]}{SUFFIX}").open("a+")
            fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            self._file = file
        return self._file


def read_entries(path: Path) -> list[Entry]:
    """A journal file's entries; a last line cut short by a crash (never fsync'd, so never answered) is skipped."""
    entries = []
    for line in path.read_text().splitlines():
        try:
            item = json.loads(line)
        except ValueError:
            continue
        entries.append(Entry(item["table"], item["row"]))
    return entries


def orphans(folder: Path, own: Path | None) -> Iterator[tuple[Path, IO[str]]]:
    """Journal files no living process holds, each locked for the caller while it writes them to the database."""
    if not folder.is_dir():
        return
    for path in sorted(folder.glob(f"journal-*{SUFFIX}")):
        if path == own:
            continue
        file = path.open("a+")
        try:
            fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # a living process holds it
            file.close()
            continue
        try:
            yield path, file
        finally:
            file.close()
