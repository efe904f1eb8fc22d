"""Typed view of params.yaml: one model per section, unknown keys refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import StageError
from .files import read_yaml
from .metrics import TASK_METRICS

Task = Literal["binary_classification", "multiclass_classification", "regression"]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SampleSource(Section):
    rows: int = Field(5000, ge=100)
    seed: int = 42
    drift: float = Field(0.0, ge=0.0, le=5.0)


class FileSource(Section):
    """extract.file: files read with DuckDB (CSV, Parquet, JSON), with an optional row filter and sample."""

    path: str  # a file, or a folder with `pattern`; dvc.yaml reads it too (its one home)
    pattern: str | None = Field(None, min_length=1)  # in the folder `path`: the files to read (*.csv, **/*.parquet)
    where: str | None = Field(None, min_length=1)  # an SQL condition on the source's columns, pushed into the scan
    sample_rows: int | None = Field(None, ge=1)  # keep this many rows (after `where`), drawn with `seed`
    seed: int = 42
    memory_limit: str = Field("1GB", pattern=r"^\d+(\.\d+)?\s*(B|[KMGT]i?B)$")  # DuckDB's; beyond it, it spills to disk


class SqlSource(Section):
    """extract.sql: a query run on a database URL (SQLAlchemy); the URL may come from the environment."""

    url: str
    query: str


# What real exports write for a missing value: R (NA), Excel (#N/A), databases (NULL, empty), SAS (.) ...
MISSING_MARKERS = ("", "NA", "N/A", "NaN", "nan", "null", "NULL", "None", ".", "?", "-", "#N/A")


class ExtractParams(Section):
    source: Literal["sample", "file", "sql"]
    feedback: bool = True  # add labelled production rows (data/feedback, from `monitor --retrain`)
    missing_values: list[str] = Field(default_factory=lambda: list(MISSING_MARKERS))  # read as missing, whole cell
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


class Range(Section):
    """A search range: ints give an integer parameter, floats a real one."""

    low: int | float
    high: int | float
    log: bool = False
    step: int | float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) is above high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError("a log range needs low > 0")
        return self


class Choices(Section):
    choices: list[Any] = Field(min_length=1)


# A hyperparameter is searched (range or choices) or fixed (a plain value).
SearchSpace = dict[str, Range | Choices | bool | int | float | str | None]


class TuningParams(Section):
    n_trials: int = Field(8, ge=1)
    timeout: float | None = Field(None, gt=0)  # seconds per candidate; a safety cap
    cv_folds: int = Field(0, ge=0, le=20)  # 0: score on the validation split
    # None: in memory (a temporary journal file when workers > 1); or a database URL shared by several
    # machines. The OPTUNA_STORAGE environment variable overrides it (credentials stay out of params.yaml).
    storage: str | None = None
    workers: int = Field(1, ge=1, le=64)  # local processes per study: train plus `tune-worker` subprocesses

    @model_validator(mode="after")
    def _folds(self) -> TuningParams:
        if self.cv_folds == 1:
            raise ValueError("cv_folds must be 0 (use the validation split) or at least 2")
        return self


def _linear_only() -> dict[str, SearchSpace]:
    return {"linear": {}}


class TrainParams(Section):
    seed: int = 42
    primary_metric: str = "roc_auc"
    tuning: TuningParams = TuningParams()  # frozen: one shared default is safe
    candidates: dict[str, SearchSpace] = Field(default_factory=_linear_only, min_length=1)


class FeatureCostParams(Section):
    """Leave-one-feature-out: refit the winner without each feature, on a time budget."""

    budget_seconds: float = Field(10.0, gt=0)  # refits stop here; the features left are reported as not measured
    timing_repeats: int = Field(3, ge=1)  # timed predictions per model, in turns; the fastest counts


class EvaluateParams(Section):
    max_curve_points: int = Field(200, ge=10)
    # Features to slice the test split by: categories, or quantile bins of numbers. Empty: the
    # first categorical feature. Features marked `sensitive` in schema.yaml are always sliced.
    slice_by: list[str] = Field(default_factory=list)
    slice_bins: int = Field(4, ge=2, le=9)
    importance_repeats: int = Field(5, ge=1)
    calibration_bins: int = Field(10, ge=2)
    feature_cost: FeatureCostParams = FeatureCostParams()

    @field_validator("slice_by", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        """`slice_by: plan` (one feature, as earlier versions wrote it) or a list; null is none."""
        return [] if value is None else [value] if isinstance(value, str) else value


class FeatureRules(Section):
    keep: list[str] = Field(default_factory=list)  # features kept on purpose although not shown beneficial
    max_time_share: float = Field(0.9, gt=0.0, le=1.0)  # the most of predict time one feature may cost
    enforce: bool = False  # false: benefit and cost are findings in the verdict; true: they refuse the model


class SliceRules(Section):
    """Per metric: the worst slice's bound, and the widest gap between slices of one feature."""

    minimum: dict[str, float] = Field(default_factory=dict)  # higher-is-better: at least; lower: at most
    max_gap: dict[str, float] = Field(default_factory=dict)
    max_gap_sensitive: dict[str, float] = Field(default_factory=dict)  # for features marked sensitive


class AcceptParams(Section):
    split: Literal["validation", "test"] = "test"
    thresholds: dict[str, float] = Field(default_factory=dict)
    margin_over_baseline: dict[str, float] = Field(default_factory=dict)
    champion_tolerance: float = Field(0.0, ge=0.0)  # how much worse than the champion still promotes
    features: FeatureRules = FeatureRules()
    slices: SliceRules = SliceRules()
    max_slowdown: float = Field(3.0, ge=1.0)  # predict time on the same rows: challenger / champion


class Thresholds(Section):
    """A check warns at `warn` or past it and alerts at `alert` or past it, in the statistic's own unit."""

    warn: float = Field(ge=0)
    alert: float = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> Thresholds:
        if self.warn > self.alert:
            raise ValueError(f"warn ({self.warn}) is above alert ({self.alert})")
        return self


class ProfileParams(Section):
    """What `train` keeps of the training data in the model's reference profile."""

    bins: int = Field(10, ge=2, le=100)  # quantile bins per numeric feature
    sample_size: int = Field(2000, ge=100)  # sorted values kept per numeric feature
    reference_rows: int = Field(2000, ge=100)  # training rows kept for the multivariate check
    seed: int = 42


class MonitorParams(Section):
    """Windows and thresholds of `monitor`; effect sizes decide, so verdicts do not depend on window size."""

    profile: ProfileParams = ProfileParams()
    window_hours: float = Field(24.0, gt=0)  # the default window: the last N hours
    min_rows: int = Field(200, ge=10)  # fewer rows of a version in the window: its drift is not judged
    psi: Thresholds = Thresholds(warn=0.1, alert=0.25)
    effect: Thresholds = Thresholds(warn=0.1, alert=0.2)  # normalised Wasserstein (numeric), Jensen-Shannon
    multivariate_auc: Thresholds = Thresholds(warn=0.6, alert=0.7)  # domain classifier, reference vs window
    prediction_psi: Thresholds = Thresholds(warn=0.1, alert=0.25)
    missing_increase: Thresholds = Thresholds(warn=0.05, alert=0.1)  # missing rate above training's
    refusal_rate: Thresholds = Thresholds(warn=0.02, alert=0.05)  # refused / all predict requests
    performance_drop: Thresholds = Thresholds(warn=0.03, alert=0.07)  # relative, realised vs offline
    estimated_drop: Thresholds = Thresholds(warn=0.03, alert=0.07)  # relative, label-free estimate vs offline
    latency_factor: Thresholds = Thresholds(warn=10.0, alert=25.0)  # p99 latency / one-row predict reference
    age_days: Thresholds = Thresholds(warn=30.0, alert=90.0)  # age of the serving model
    bootstrap: int = Field(200, ge=20)  # resamples for the realised metric's interval
    seed: int = 42


class PromoteParams(Section):
    """What `promote` asks of a version's record in shadow mode (SERVE_SHADOW) before it becomes champion."""

    shadow_min_rows: int = Field(0, ge=0)  # labelled requests it scored in shadow; 0: no shadow record needed
    shadow_tolerance: float = Field(0.0, ge=0.0)  # how much worse than the champion on them still promotes


class MlflowParams(Section):
    experiment: str
    registered_model: str


class Params(Section):
    """params.yaml, typed: one section per stage; unknown keys are refused with their path."""

    task: Task
    extract: ExtractParams
    infer_schema: InferSchemaParams | None = None
    # Sections are frozen, so one shared default instance each is safe.
    validate_: ValidateParams = Field(ValidateParams(), alias="validate")
    analyze: AnalyzeParams = AnalyzeParams()
    prepare: PrepareParams = PrepareParams()
    train: TrainParams = TrainParams()
    evaluate: EvaluateParams = EvaluateParams()
    accept: AcceptParams = AcceptParams()
    monitor: MonitorParams = MonitorParams()
    promote: PromoteParams = PromoteParams()
    mlflow: MlflowParams

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _metric_fits_task(self) -> Params:
        known = TASK_METRICS[self.task]
        if self.train.primary_metric not in known:
            raise ValueError(f"train.primary_metric {self.train.primary_metric!r} is not one of {', '.join(known)}")
        return self


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
    data = read_yaml(path, "run this command from the project root.") or {}
    if not isinstance(data, dict):
        raise StageError(f"{path} must hold a mapping of sections, not {type(data).__name__}.")
    return parse_params(data, str(path))
