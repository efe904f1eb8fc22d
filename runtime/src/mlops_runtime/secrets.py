"""Secrets stay out of what the project writes: messages, logs, reports and MLflow params and tags.

Two kinds are masked: the password of any URL (`postgresql://user:***@host/db`), and the value of any
environment variable whose name says it is a secret (SERVE_FEEDBACK_TOKEN, MLFLOW_TRACKING_PASSWORD,
AWS_SECRET_ACCESS_KEY, MONITOR_WEBHOOK_URL, ...), wherever either appears in the text.
"""

from __future__ import annotations

import functools
import logging
import os
import re
from collections.abc import Mapping

MASK = "***"
SECRET_NAME = re.compile(r"PASSWORD|PASSWD|TOKEN|SECRET|CREDENTIAL|WEBHOOK|PRIVATE|_KEY$")
# scheme://user:password@host - the password ends at the last "@" before the host (people write "@" unquoted).
URL_PASSWORD = re.compile(r"(?P<head>\b[a-z][a-z0-9+.-]*://[^:/@\s'\"]*:)(?P<password>[^\s'\"/]+)(?=@)", re.IGNORECASE)
# Shorter values would mask ordinary words and numbers; no secret setting this short protects anything.
SHORTEST_SECRET = 6


def mask(text: str, environ: Mapping[str, str] | None = None) -> str:
    """`text` with URL passwords and the values of secret settings replaced by ***."""
    text = URL_PASSWORD.sub(lambda match: match["head"] + MASK, text)
    for value in _secret_values_of(frozenset((os.environ if environ is None else environ).items())):
        text = text.replace(value, MASK)
    return text


@functools.lru_cache(maxsize=4)
def _secret_values_of(environ: frozenset[tuple[str, str]]) -> tuple[str, ...]:
    """secret_values, once per environment: a log record pays a lookup, not a scan of every setting."""
    return tuple(secret_values(dict(environ)))


def masked(values: Mapping[str, object]) -> dict[str, object]:
    """Params or tags for MLflow, their text masked (a storage URL in params.yaml, a git remote with a token)."""
    return {key: mask(value) if isinstance(value, str) else value for key, value in values.items()}


def secret_values(environ: Mapping[str, str]) -> list[str]:
    """What must not be written: secret settings' values and URL passwords, longest first (a value that holds
    another is masked whole). Of any other setting, a URL's password (DATABASE_URL, MLFLOW_TRACKING_URI)."""
    values: set[str] = set()
    for name, value in environ.items():
        if SECRET_NAME.search(name.upper()):
            values.add(value.strip())
        else:
            values |= {match["password"] for match in URL_PASSWORD.finditer(value)}
    return sorted((value for value in values if len(value) >= SHORTEST_SECRET), key=len, reverse=True)


def shown_url(url: str) -> str:
    """A URL as a message shows it: without its password."""
    return URL_PASSWORD.sub(lambda match: match["head"] + MASK, url)


def mask_log_records() -> None:
    """Mask every log record this process writes, whichever library logs it (SQLAlchemy, MLflow, uvicorn)."""
    make_record = logging.getLogRecordFactory()
    if getattr(make_record, "masks_secrets", False):
        return

    def masked_record(*args: object, **kwargs: object) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a malformed call: logging reports it when the record is written
            return record
        masked = mask(message)
        if masked != message:
            record.msg, record.args = masked, None
        return record

    masked_record.masks_secrets = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(masked_record)
