"""The acceptance verdict on the model in models/: written by `accept`, required by whatever serves it.

`train` writes models/model before `accept` judges it, so the folder alone cannot say whether the
gate passed. The verdict (models/acceptance.json, next to the model) names the artifact it judged
by its digest; `serve`, batch prediction and the serving image load a local model only when a
verdict for that very artifact says accepted. A refused model therefore carries its refusal.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from .errors import StageError
from .paths import MODEL_ARTIFACT, VERDICT

if TYPE_CHECKING:
    from pathlib import Path


def verdict_path(model_dir: Path) -> Path:
    return model_dir.parent / VERDICT


def model_digest(model_dir: Path) -> str:
    """SHA-256 of the artifact: the verdict's link to the exact model it judged."""
    digest = hashlib.sha256()
    with (model_dir / MODEL_ARTIFACT).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_verdict(model_dir: Path, result: dict[str, Any]) -> dict[str, Any]:
    """Record `result` (accepted, checks, registry) as the verdict on the model in `model_dir`."""
    verdict = {"model_sha256": model_digest(model_dir)} | result
    verdict_path(model_dir).write_text(json.dumps(verdict, indent=2, sort_keys=True, default=str) + "\n")
    return verdict


def require_accepted(model_dir: Path) -> None:
    """Refuse, with one clear error, a model that `accept` refused or has not judged."""
    path = verdict_path(model_dir)
    if not path.exists():
        raise StageError(f"{model_dir} has no acceptance verdict ({path}): run `dvc repro` through `accept`.")
    try:
        verdict = json.loads(path.read_text())
    except ValueError:
        raise StageError(f"{path} is not valid JSON: run `dvc repro` through `accept` again.") from None
    if verdict.get("model_sha256") != model_digest(model_dir):
        raise StageError(
            f"{path} judged another model than {model_dir}: the model changed since `accept` ran;"
            " run `dvc repro` through `accept`."
        )
    if not verdict.get("accepted"):
        failed = [check.get("message", "") for check in verdict.get("checks", []) if not check.get("passed", True)]
        raise StageError(
            f"the model in {model_dir} was refused by the acceptance gate ({path}); it is not served:\n"
            + "\n".join(f"  - {message}" for message in failed)
        )
