"""Bigger-than-memory data on one machine: the file source extracts a 10,000,000-row Parquet glob in
bounded memory (DuckDB reads, filters, samples and writes), and batch prediction streams a glob.

Peak memory is measured per command (RSS of the process); no timing is asserted.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .bigdata import measure, parquet_rows, set_params, write_glob
from .conftest import install, project_env, render, run

pytestmark = pytest.mark.e2e

PACKAGE = "churn_model"
EXTRACT_LIMIT_MB = 2048  # the target for the 10M-row extract


def test_a_10m_row_glob_extracts_in_bounded_memory_and_batch_prediction_streams(tmp_path: Path) -> None:
    root = render(
        tmp_path / "p",
        tasks=True,
        task="binary_classification",
        data_source="file",
        data_path="data/source/*.parquet",
        target_column="label",
    )
    install(root)
    write_glob(root, root / "data" / "source", rows=10_000_000, files=10)
    script = str(root / ".venv" / "bin" / PACKAGE)

    full = measure([script, "extract"], root, project_env())
    assert full.returncode == 0, full.output
    assert full.summary("extract")["rows"] == "10000000"
    assert full.peak_rss_mb < EXTRACT_LIMIT_MB, f"extract of 10M rows peaked at {full.peak_rss_mb} MB"

    # The sample keeps the rest of the pipeline small; the extract still reads all 10M rows.
    set_params(root, {"extract.file.sample_rows": 20_000, "train.tuning.n_trials": 2})
    run(["git", "commit", "-q", "-m", "sample", "--", "params.yaml"], root)
    sampled = measure([script, "extract"], root, project_env())
    assert sampled.summary("extract") == {
        "rows": "20000",
        "columns": "5",
        "source rows": "10000000",
        "feedback rows": "0",
        "output": "data/raw/data.parquet",
    }
    assert sampled.peak_rss_mb < EXTRACT_LIMIT_MB
    first_sample = (root / "data" / "raw" / "data.parquet").read_bytes()
    run(["uv", "run", "--frozen", "dvc", "repro"], root)
    assert (root / "data" / "raw" / "data.parquet").read_bytes() == first_sample  # repeatable, as DVC needs
    assert '"accepted": true' in (root / "models" / "acceptance.json").read_text()

    # Batch prediction over a 4M-row glob peaks no higher than over a 200k-row one (plus slack): it streams.
    write_glob(root, root / "data" / "small", rows=200_000, files=2)
    peaks = {}
    for name, pattern, rows in (
        ("small", "data/small/*.parquet", 200_000),
        ("big", "data/source/part-00[0-3].parquet", 4_000_000),
    ):
        target = f"predictions-{name}.parquet"
        measured = measure([script, "predict", pattern, target], root, project_env())
        assert measured.returncode == 0, measured.output
        summary = re.search(r"predict: (\d+) of (\d+) rows predicted", measured.output)  # predict's one line
        assert summary, measured.output
        assert int(summary.group(1)) == int(summary.group(2)) == rows
        assert parquet_rows(root, str(root / target)) == (rows, rows - 1)  # row numbers run on across files
        peaks[name] = measured.peak_rss_mb
    assert peaks["big"] < peaks["small"] + 256, f"batch prediction peaks grew with the input: {peaks}"
