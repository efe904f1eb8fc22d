"""Where every stage reads and writes: the same names as in dvc.yaml."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MODEL_ARTIFACT = "model.pkl"  # the pickled Pipeline inside an MLflow model folder
VERDICT = "acceptance.json"  # accept's verdict, next to the model folder it judged (see verdict.py)


@dataclass(frozen=True)
class Paths:
    """File locations, relative to the project root (the folder holding dvc.yaml)."""

    root: Path = Path()

    @property
    def params(self) -> Path:
        return self.root / "params.yaml"

    @property
    def schema(self) -> Path:
        return self.root / "schema.yaml"

    @property
    def mlflow_store(self) -> Path:
        """The embedded MLflow tracking store and registry (SQLite), when no server is configured."""
        return self.root / "mlflow.db"

    @property
    def prediction_log(self) -> Path:
        """The embedded prediction log (SQLite), when no database URL is configured."""
        return self.root / "predictions.db"

    @property
    def raw_dir(self) -> Path:
        return self.root / "data" / "raw"

    @property
    def raw(self) -> Path:
        return self.raw_dir / "data.parquet"

    @property
    def prepared_dir(self) -> Path:
        return self.root / "data" / "prepared"

    def split(self, name: str) -> Path:
        """One of the prepared splits: train, validation or test."""
        return self.prepared_dir / f"{name}.parquet"

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    @property
    def model(self) -> Path:
        """The MLflow model folder: the whole fitted scikit-learn Pipeline."""
        return self.models_dir / "model"

    @property
    def model_file(self) -> Path:
        """The pickled Pipeline inside the MLflow model folder (what `serve` loads without MLflow)."""
        return self.model / MODEL_ARTIFACT

    @property
    def model_profile(self) -> Path:
        """The reference profile of the model's training data, outputs and speed (see monitoring/)."""
        return self.model / "profile.json"

    @property
    def run_info(self) -> Path:
        return self.models_dir / "run.json"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def validation_report(self) -> Path:
        return self.reports / "validation.json"

    @property
    def eda_dir(self) -> Path:
        return self.reports / "eda"

    @property
    def leaderboard(self) -> Path:
        return self.reports / "leaderboard.json"

    @property
    def slices(self) -> Path:
        return self.reports / "slices.json"

    @property
    def metrics(self) -> Path:
        return self.reports / "metrics.json"

    @property
    def plots_dir(self) -> Path:
        return self.reports / "plots"

    @property
    def acceptance(self) -> Path:
        """The acceptance verdict, next to the model it judged (see verdict.py)."""
        return self.model.parent / VERDICT

    @property
    def feature_cost(self) -> Path:
        return self.reports / "feature_cost.json"

    @property
    def stability(self) -> Path:
        return self.reports / "stability.json"

    @property
    def scorecard(self) -> Path:
        """The ML Test Score table of the last `nox -s ml_test_score` (and the test evidence it read)."""
        return self.reports / "ml_test_score.md"

    @property
    def scorecard_tests(self) -> Path:
        return self.reports / "ml_test_score_tests.json"

    @property
    def monitoring_dir(self) -> Path:
        """One folder per monitoring run (reports/monitoring/<UTC timestamp>/), and the last run's state."""
        return self.reports / "monitoring"

    @property
    def monitoring_state(self) -> Path:
        return self.monitoring_dir / "last_run.json"

    @property
    def feedback_dir(self) -> Path:
        """Labelled production rows exported by `monitor --retrain`: extract adds them to the training data."""
        return self.root / "data" / "feedback"

    @property
    def feedback_rows(self) -> Path:
        return self.feedback_dir / "labelled.parquet"
