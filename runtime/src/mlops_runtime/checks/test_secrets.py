"""Secrets stay out of what the project writes: URL passwords and secret settings are masked in messages and logs."""

import logging
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlops_runtime.cli import app
from mlops_runtime.secrets import mask, mask_log_records, masked

PASSWORD = "hunter2-Secret"
ENVIRONMENT = {
    "DATABASE_URL": f"postgresql+psycopg://mlops:{PASSWORD}@db.internal:5432/warehouse",
    "SERVE_FEEDBACK_TOKEN": "l4bels-token",
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI-K7MDENG",
    "MONITOR_WEBHOOK_URL": "https://hooks.example.com/services/T01/B02/xyzzy-plugh",
    "AWS_ACCESS_KEY_ID": "AKIA-not-secret",
    "SERVE_PORT": "8000",
}


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (f"cannot reach postgresql://mlops:{PASSWORD}@db:5432/log", "cannot reach postgresql://mlops:***@db:5432/log"),
        ("'mysql+pymysql://u:p@ss@w0rd@h/db' refused", "'mysql+pymysql://u:***@h/db' refused"),
        ("token l4bels-token refused", "token *** refused"),
        ("key wJalrXUtnFEMI-K7MDENG", "key ***"),
        ("POST https://hooks.example.com/services/T01/B02/xyzzy-plugh failed", "POST *** failed"),
        (f"the password {PASSWORD} alone", "the password *** alone"),  # DATABASE_URL's, wherever it appears
        ("http://127.0.0.1:8000/predict?user=a@b", "http://127.0.0.1:8000/predict?user=a@b"),  # a port, no password
        ("AKIA-not-secret on port 8000", "AKIA-not-secret on port 8000"),
        ("sqlite:///data/predictions.db", "sqlite:///data/predictions.db"),
    ],
)
def test_mask_hides_url_passwords_and_secret_settings_only(text: str, shown: str) -> None:
    assert mask(text, ENVIRONMENT) == shown


def test_mlflow_params_are_masked_and_keep_their_types(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPTUNA_STORAGE", ENVIRONMENT["DATABASE_URL"])

    logged = masked({"tuning.storage": ENVIRONMENT["DATABASE_URL"], "tuning.n_trials": 20, "winner": "hgb"})

    assert logged == {
        "tuning.storage": "postgresql+psycopg://mlops:***@db.internal:5432/warehouse",
        "tuning.n_trials": 20,
        "winner": "hgb",
    }


def test_a_command_error_shows_the_url_without_its_password(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite://mlops:{PASSWORD}@/{tmp_path / 'absent.db'}"
    monkeypatch.setenv("SERVE_PREDICTION_LOG_URL", url)

    result = CliRunner().invoke(app, ["purge", "--older-than", "30"])

    assert result.exit_code == 1
    assert "no prediction log at 'sqlite://mlops:***@/" in result.output
    assert PASSWORD not in result.output


def test_log_records_of_any_library_are_masked(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    for name, value in ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    mask_log_records()

    with caplog.at_level(logging.INFO):
        logging.getLogger("psycopg.pool").warning("connecting to %s", ENVIRONMENT["DATABASE_URL"])
        logging.getLogger("uvicorn.error").warning("Bearer %s refused", ENVIRONMENT["SERVE_FEEDBACK_TOKEN"])

    assert [record.getMessage() for record in caplog.records] == [
        "connecting to postgresql+psycopg://mlops:***@db.internal:5432/warehouse",
        "Bearer *** refused",
    ]
    assert PASSWORD not in caplog.text


@pytest.mark.parametrize("url", [f"postgresql+nosuchdriver://mlops:{PASSWORD}@db/log", "not a url at all"])
def test_a_prediction_log_url_sqlalchemy_cannot_use_is_one_clear_error(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SERVE_PREDICTION_LOG_URL", url)

    result = CliRunner().invoke(app, ["purge", "--older-than", "30"])

    assert result.exit_code == 1
    assert "cannot use the prediction log URL" in result.output
    assert "Traceback" not in result.output
    assert PASSWORD not in result.output
