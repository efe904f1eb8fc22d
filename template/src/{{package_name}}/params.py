"""Typed view of params.yaml: one model per section, unknown keys refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import StageError

Task = Literal["binary_classification", "multiclass_classification", "regression"]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SampleSource(Section):
    rows: int = Field(5000, ge=100)
    seed: int = 42
    drift: float = Field(0.0, ge=0.0, le=5.0)


class FileSource(Section):
    path: str


class SqlSource(Section):
    url: str
    query: str


class ExtractParams(Section):
    source: Literal["sample", "file", "sql"]
    sample: SampleSource | None = None
    file: FileSource | None = None
    sql: SqlSource | None = None

    @model_validator(mode="after")
    def _source_configured(self) -> ExtractParams:
        if getattr(self, self.source) is None:
            raise ValueError(f"extract.source is {self.source!r} but extract.{self.source} is not set")
        return self


class InferSchemaParams(Section):
    target: str
    max_categories: int = Field(50, ge=2)


class ValidateParams(Section):
    max_examples: int = Field(5, ge=1)


class AnalyzeParams(Section):
    max_categories: int = Field(20, ge=2)


class PrepareParams(Section):
    validation_size: float = Field(0.2, gt=0.0, lt=0.5)
    test_size: float = Field(0.2, gt=0.0, lt=0.5)
    seed: int = 42


class TrainParams(Section):
    estimator: Literal["hist_gradient_boosting", "random_forest", "linear"] = "hist_gradient_boosting"
    seed: int = 42
    hyperparameters: dict[str, Any] = Field(default_factory=dict)


class EvaluateParams(Section):
    max_curve_points: int = Field(200, ge=10)


class AcceptParams(Section):
    split: Literal["validation", "test"] = "test"
    thresholds: dict[str, float] = Field(default_factory=dict)
    margin_over_baseline: dict[str, float] = Field(default_factory=dict)


class MlflowParams(Section):
    experiment: str
    registered_model: str


class Params(Section):
    task: Task
    extract: ExtractParams
    infer_schema: InferSchemaParams | None = None
    validate_: ValidateParams = Field(default_factory=ValidateParams, alias="validate")
    analyze: AnalyzeParams = Field(default_factory=AnalyzeParams)
    prepare: PrepareParams = Field(default_factory=PrepareParams)
    train: TrainParams = Field(default_factory=TrainParams)
    evaluate: EvaluateParams = Field(default_factory=EvaluateParams)
    accept: AcceptParams = Field(default_factory=AcceptParams)
    mlflow: MlflowParams

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def parse_params(data: dict[str, Any], source: str = "params.yaml") -> Params:
    """Check the raw mapping and turn each problem into a line that names the key."""
    try:
        return Params.model_validate(data)
    except ValidationError as error:
        lines = [
            f"  {'.'.join(str(part) for part in issue['loc']) or '(top level)'}: {issue['msg']}"
            for issue in error.errors()
        ]
        raise StageError(f"{source} is invalid:\n" + "\n".join(lines)) from None


def load_params(path: Path = Path("params.yaml")) -> Params:
    if not path.exists():
        raise StageError(f"{path} not found: run this command from the project root.")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise StageError(f"{path} is not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise StageError(f"{path} must hold a mapping of sections, not {type(data).__name__}.")
    return parse_params(data, str(path))
